#!/usr/bin/env python3
"""Test worker with a cost to see: it forks a child that touches --child-mib MiB of memory and
burns --child-cpu seconds of CPU, then creates --done FILE and waits; the parent serves HTTP
(http_worker.py, graceful stop) meanwhile. The child leaves with the parent's process group's
SIGTERM, or at once once done with --child-exits (its CPU then counts only in the worker's cgroup)."""
import argparse
import os
import signal
import time

import http_worker


def child(mib, cpu_seconds, done, exits):
    memory = b"x" * (mib << 20)   # bytes() writes every page
    started = time.process_time()
    while time.process_time() - started < cpu_seconds:
        pass
    with open(done + ".tmp", "w") as f:
        f.write(str(len(memory)))
    os.rename(done + ".tmp", done)
    if exits:
        return
    while True:
        signal.pause()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child-mib", type=int, required=True)
    parser.add_argument("--child-cpu", type=float, required=True)
    parser.add_argument("--done", required=True)
    parser.add_argument("--child-exits", action="store_true")
    options = parser.parse_args()
    if options.child_exits:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # reaped by the kernel: no zombie stays
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        child(options.child_mib, options.child_cpu, options.done, options.child_exits)
        os._exit(0)
    http_worker.serve(http_worker.listener_fds(False, None), graceful=True)


if __name__ == "__main__":
    main()
