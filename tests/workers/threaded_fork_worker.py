#!/usr/bin/env python3
"""Test worker whose child is forked by a second thread, so that only that thread's
/proc/PID/task/TID/children lists it; once the thread has ended, the kernel has moved the child to
the main thread, and the worker runs on that one thread alone. It writes the child's pid to
--forked FILE, and ends the second thread when the FIFO --release is opened for writing and closed.
No listener: run it with `--ready exec`. Worker and child end by SIGTERM's default action."""
import argparse
import os
import signal
import threading


def fork_then_wait(forked, release):
    child = os.fork()
    if child == 0:
        while True:
            signal.pause()
    with open(forked + ".tmp", "w") as f:
        f.write(str(child))
    os.rename(forked + ".tmp", forked)
    with open(release) as fifo:  # blocks until the test opens it for writing, then reads to its close
        fifo.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--forked", required=True)
    parser.add_argument("--release", required=True)
    options = parser.parse_args()
    thread = threading.Thread(target=fork_then_wait, args=(options.forked, options.release))
    thread.start()
    thread.join()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
