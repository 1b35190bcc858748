"""Requests/s and p99 latency of one setup under wrk, keep-alive and one request per connection.

    wrk -t2 -c64 -d10s --latency --timeout 5s http://127.0.0.1:PORT/
    wrk -t2 -c64 -d10s --latency --timeout 5s -H "Connection: close" http://127.0.0.1:PORT/

Every setup is started once for both loads and gets a 1 s keep-alive warm-up first (not counted:
Node's JIT and the workers' first allocations). With "Connection: close" every response closes
its connection and wrk opens a new one: each request is then an accept() in some process, which
is where the supervisors differ.

Each run also records the CPU time used by wrk (its rusage), by the workers and by the supervisor
process (clusterd, the Node primary, the PM2 daemon; /proc/PID/stat before and after): on a
2-core machine where the load client shares the CPUs with the servers, how the scheduler splits
CPU time between them moves req/s as much as the servers' own efficiency does.
"""
import os
import re
import subprocess
import threading

from .reload_bench import reload

LOADS = {"keep-alive": [], "close": ["-H", "Connection: close"]}
WRK_TIMEOUT_S = 5
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a live process (all its threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def connections_per_worker(port, pids):
    """How many established connections to `port` each pid holds. ss asks the kernel for just
    those sockets; /proc/net/tcp lists every socket of the machine, TIME_WAIT ones included (over
    100 000 after a few one-request-per-connection runs), too slow to read while the load runs."""
    done = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                          capture_output=True, text=True, timeout=10)
    owners = [int(pid) for pid in re.findall(r"pid=(\d+),", done.stdout)]
    return [owners.count(pid) for pid in pids]


def wrk(port, load, duration, connections):
    """Runs wrk to its end; returns its parsed figures and the CPU seconds it used."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", f"{WRK_TIMEOUT_S}s",
           *LOADS[load], f"http://127.0.0.1:{port}/"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = proc.stdout.read()  # wrk ends by itself after `duration`
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): do not leave wrk running
        proc.kill()
        proc.wait()
        raise
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here, for its rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    parsed = reload.parse_wrk(out)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(m.group(1)) if m else None, "p99_ms": parsed["p99_ms"], "max_ms": parsed["max_ms"],
            "errors": sum(parsed["errors"].values()), "error_detail": {k: v for k, v in parsed["details"].items() if v},
            "non200": parsed["errors"]["non200"], "problem": parsed.get("problem"), "cmd": " ".join(cmd),
            "raw": out, "cpu": {"client": usage.ru_utime + usage.ru_stime}}


def measure(setup, port, workers, duration, connections):
    """Starts the setup, warms it up, runs both loads; returns {load: result}."""
    try:
        setup.start(port, workers)
        pids = setup.worker_pids()
        supervisor = setup.supervisor_pid()
        wrk(port, "keep-alive", 1, connections)
        results = {}
        for load in LOADS:
            before = {pid: cpu_seconds(pid) for pid in pids + [supervisor] if pid}
            # keep-alive: how wrk's connections ended up spread over the workers, half-way through
            spread = []
            sampler = threading.Timer(duration / 2, lambda: spread.extend(connections_per_worker(port, pids)))
            if load == "keep-alive":
                sampler.start()
            result = wrk(port, load, duration, connections)
            sampler.cancel()
            result["spread"] = spread
            used = {pid: (cpu_seconds(pid) or 0) - (start or 0) for pid, start in before.items()}
            result["cpu"]["workers"] = sum(used[pid] for pid in pids)
            result["cpu"]["supervisor"] = used.get(supervisor)
            results[load] = result
        after = setup.worker_pids()
        if not setup.running() or after != pids:
            for result in results.values():
                result["problem"] = f"the workers changed during the run (pids {pids} before, {after} after)"
        return results
    finally:
        setup.stop()
