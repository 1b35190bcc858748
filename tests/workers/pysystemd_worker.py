#!/usr/bin/env python3
"""Test worker that reports readiness the way Python services do, with python3-systemd:
`systemd.daemon.notify("READY=1")` (libsystemd's sd_notify underneath, sent from this pid), then
serves HTTP (http_worker.py, graceful stop) on its first listener.

Options:
  --ready-after SECS   start up for SECS before READY=1 (default 0)
"""
import argparse
import os
import signal
import time

from systemd import daemon

import http_worker


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-after", type=float, default=0.0)
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if options.ready_after > 0:
        time.sleep(options.ready_after)        # the worker's own slow start
    if not daemon.notify("READY=1\nSTATUS=python3-systemd worker serving"):
        raise SystemExit("pysystemd_worker: sd_notify sent nothing (is NOTIFY_SOCKET set?)")
    http_worker.serve(http_worker.listener_fds(False, None), graceful=True)


if __name__ == "__main__":
    main()
