#!/usr/bin/env python3
"""Job-style test worker (needs no listener): writes what it was started with to a JSON file
REPORT_DIR/report-<pid>.json (atomically), then waits until SIGTERM (exit 0) or SIGKILL.

The report holds pid, ppid, process group, session, slot/generation/worker count, the whole
environment, argv, uid/gid/groups, cwd, and the fds it holds with their targets (listed honestly:
the fd that listing /proc/self/fd opens is closed again and is not reported).

Options:
  --report-dir DIR   where to write the report (required)
  --orphan           once per REPORT_DIR: double-fork a `sleep 1000` grandchild (same process group)
                     whose intermediate parent exits, so it is orphaned and reparented; its pid is in
                     the report as "orphan"
  --exit-after SECS  exit with --exit-code after SECS instead of waiting for a signal
  --exit-code N      (default 1)
Unknown arguments are accepted and only recorded in argv (placeholder tests).
"""
import argparse
import json
import os
import signal
import sys
import time


def open_fds():
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    still_open = []
    for fd in listed:
        try:
            os.fstat(fd)   # the listing's own fd is closed by now: EBADF
        except OSError:
            continue
        still_open.append(fd)
    return sorted(still_open)


FDS = open_fds()   # first thing: before this worker opens anything itself


def fd_targets(fds):
    targets = {}
    for fd in fds:
        try:
            targets[str(fd)] = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            pass
    return targets


def spawn_orphan():
    """Double fork: the grandchild execs sleep; the child exits at once; returns the grandchild pid."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        grandchild = os.fork()
        if grandchild == 0:
            os.close(write_end)
            os.execv("/bin/sleep", ["sleep", "1000"])
        os.write(write_end, str(grandchild).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    while True:
        chunk = os.read(read_end, 64)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    os.waitpid(child, 0)
    return int(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--report-dir", required=True)
    parser.add_argument("--orphan", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--exit-code", type=int, default=1)
    options, _unknown = parser.parse_known_args()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    report = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "slot": os.environ.get("CLUSTERD_WORKER_ID"),
        "workers": os.environ.get("CLUSTERD_WORKERS"),
        "generation": os.environ.get("CLUSTERD_GENERATION"),
        "env": dict(os.environ),
        "argv": sys.argv,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "cwd": os.getcwd(),
        "fds": FDS,
        "fd_targets": fd_targets(FDS),
        "orphan": None,
    }
    if options.orphan:
        try:
            marker = os.open(os.path.join(options.report_dir, "orphan-spawned"),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(marker)
            report["orphan"] = spawn_orphan()
        except FileExistsError:
            pass
    path = os.path.join(options.report_dir, "report-%d.json" % os.getpid())
    with open(path + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(path + ".tmp", path)

    if options.exit_after is not None:
        time.sleep(options.exit_after)
        os._exit(options.exit_code)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
