"""The only worker SIGKILLed under load: what clients see until the supervisor's replacement answers.

The setup runs with 1 worker. bench/reload's Python client opens a new connection for every
request (2 processes x 2 threads, each request with a 3 s timeout) for `duration` seconds; at
`kill_at` seconds this script asks for the worker's pid (the `X-Worker-Pid` of one response) and
SIGKILLs it. Reported: failed requests by kind (refused: nothing listened on the port; reset;
timeout: no answer within 3 s; eof: closed without an answer), the slowest answered request, and
the time from the SIGKILL until the first answer from a new pid ("never" if none came before the
load ended).

A supervisor that keeps the listening socket (clusterd, and the Node cluster primary) lets
connections wait in the accept queue while the worker is replaced; a worker that binds the port
itself (PM2 fork mode with SO_REUSEPORT) takes the socket with it, and the port refuses
connections until the new worker has bound it again.
"""
import os
import signal
import time

from .reload_bench import reload
from .setups import ask_pid

CONNECTIONS = 4
TIMEOUT = 3.0


def measure(setup, port, duration, kill_at):
    row = {"problem": None}
    try:
        setup.start(port, 1)
        load = reload.PyLoad(port, keepalive=False, duration=duration, connections=CONNECTIONS,
                             max_requests=1_000_000, timeout=TIMEOUT)
        time.sleep(max(0.0, load.deadline - duration + kill_at - time.monotonic()))
        victim = ask_pid(port)
        killed_at = time.monotonic()
        if victim:
            os.kill(victim, signal.SIGKILL)
        result = load.result(duration)
        if not victim:
            row["problem"] = "no worker pid answered before the SIGKILL"
            return row
        firsts = [first for pid, (first, last, count) in result["pids"].items() if pid != victim]
        row.update(victim=victim, errors=result["errors"], failed=sum(result["errors"].values()),
                   answered=result["ok"], max_ms=result["max_ms"], details=result["details"],
                   new_pid_after_ms=(min(firsts) - killed_at) * 1000 if firsts else None,
                   window_s=duration - kill_at)
        return row
    except Exception as error:  # reported in the table; the next setup still runs
        row["problem"] = f"{type(error).__name__}: {error}"
        return row
    finally:
        setup.stop()
