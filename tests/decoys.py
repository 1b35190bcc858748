#!/usr/bin/python3
"""Decoy clusterd instances for CI: other instances on the machine that the suite must not meet.

    tests/decoys.py start DIR CLUSTERD   starts them, records each in DIR/decoys.json
    tests/decoys.py stop DIR             checks each was left alone, then stops it by its pid

A decoy carries a name the tests use (python3, shop, hello, ...) and opens its control socket in
a default directory a client searches (/run/clusterd or /tmp/clusterd-UID), as an operator's
instance would. A test that lets a client discover sockets outside its private mount namespace
finds one of these and fails ("several control sockets found"), and a test that stops, scales or
reloads the wrong instance shows up at `stop`: every decoy must still run generation 1 with its
one worker, its worker never replaced. `stop` exits 1 when one was touched or died.
"""
import json
import os
import signal
import subprocess
import sys
import time

# Names that tests give their instances, or that clusterd gives them from their programs.
NAMES = ["python3", "shop", "hello", "private", "one", "two", "nosuch", "web", "http", "example",
         "a", "b", "admin", "public", "other", "sh", "node", "sleep", "true", "clusterd-ready"]
# Also in /tmp/clusterd-UID, where a non-root instance (or a root one with that RUNTIME_DIRECTORY) puts them.
SECOND_DIRECTORY_NAMES = ["python3", "shop", "hello"]


def default_directory():
    return "/run/clusterd" if os.geteuid() == 0 else "/tmp/clusterd-%d" % os.geteuid()


def client(binary, path, *args):
    result = subprocess.run([binary, *args, "--json", "--control", path], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("decoys: timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def start(directory, binary):
    os.makedirs(directory, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
    placements = [(name, default_directory(), None) for name in NAMES]
    if os.geteuid() == 0:
        second = "/tmp/clusterd-0"
        placements += [(name, second, second) for name in SECOND_DIRECTORY_NAMES]
    decoys = []
    for name, socket_directory, runtime in placements:
        env = dict(base_env)
        if runtime:
            env["RUNTIME_DIRECTORY"] = runtime
        log = open(os.path.join(directory, "%s-%d.log" % (name, len(decoys))), "wb")
        # A worker that only waits: the decoys cost no CPU while the suite runs.
        process = subprocess.Popen([binary, "--name", name, "--workers", "1", "--", "sleep", "infinity"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd="/",
                                   start_new_session=True)
        decoys.append({"name": name, "pid": process.pid, "socket": os.path.join(socket_directory, name + ".sock")})
    for decoy in decoys:
        wait_for(lambda: client(binary, decoy["socket"], "status")[0] == 0
                 and json.loads(client(binary, decoy["socket"], "status")[1])["workers_ready"] == 1,
                 30, "decoy %s at %s" % (decoy["name"], decoy["socket"]))
        reply = json.loads(client(binary, decoy["socket"], "status")[1])
        if reply["pid"] != decoy["pid"]:
            raise SystemExit("decoys: %s answers as pid %d, not the decoy %d: another clusterd holds that name"
                             % (decoy["socket"], reply["pid"], decoy["pid"]))
        decoy["worker"] = reply["workers"][0]["pid"]
    with open(os.path.join(directory, "decoys.json"), "w") as f:
        json.dump({"binary": binary, "decoys": decoys}, f, indent=1)
    for decoy in decoys:
        print("decoy %-14s pid %-7d %s" % (decoy["name"], decoy["pid"], decoy["socket"]))


def stop(directory):
    with open(os.path.join(directory, "decoys.json")) as f:
        recorded = json.load(f)
    binary, decoys = recorded["binary"], recorded["decoys"]
    touched = []
    for decoy in decoys:
        code, out, err = client(binary, decoy["socket"], "status")
        if code != 0:
            touched.append("%s (pid %d): status exited %d: %s" % (decoy["socket"], decoy["pid"], code, err.strip()))
            continue
        reply = json.loads(out)
        seen = (reply["pid"], reply["generation"], reply["workers_wanted"], [w["pid"] for w in reply["workers"]])
        if seen != (decoy["pid"], 1, 1, [decoy["worker"]]):
            touched.append("%s: expected pid %d, generation 1, 1 worker %d; found pid %d, generation %d, "
                           "%d wanted, workers %s" % ((decoy["socket"], decoy["pid"], decoy["worker"]) + seen))
    for decoy in decoys:
        try:
            os.kill(decoy["pid"], signal.SIGTERM)
        except ProcessLookupError:
            continue
    for decoy in decoys:
        wait_for(lambda: not os.path.exists("/proc/%d" % decoy["pid"])
                 or open("/proc/%d/stat" % decoy["pid"]).read().rsplit(")", 1)[1].split()[0] == "Z",
                 30, "decoy %s (pid %d) to exit" % (decoy["name"], decoy["pid"]))
    if touched:
        print("decoys: the suite touched %d decoy instance(s):\n  %s" % (len(touched), "\n  ".join(touched)))
        return 1
    print("decoys: all %d left alone by the suite, now stopped" % len(decoys))
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "start":
        start(sys.argv[2], os.path.abspath(sys.argv[3]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "stop":
        return stop(sys.argv[2])
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
