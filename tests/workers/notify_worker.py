#!/usr/bin/env python3
"""Test worker that speaks sd_notify by hand (standard library only): it sends its datagrams to
$NOTIFY_SOCKET itself, from its own pid, and serves HTTP (http_worker.py, graceful stop) on its
listeners once it is ready. Without NOTIFY_SOCKET it sends nothing and serves at once.

Options:
  --ready-after SECS         send READY=1 SECS after start (default 0): a slow start
  --slot-delay SECS          ...plus SECS times its slot (CLUSTERD_WORKER_ID)
  --never-ready              never send READY=1 (nor serve)
  --ready-on-usr1            send READY=1 when SIGUSR1 arrives, not before
  --ready-when FILE          send READY=1 once FILE exists, not before (a gate the test opens)
  --exit-when FILE           never send READY=1; exit 1 once FILE exists
  --ready-once FILE          only the first worker that creates FILE sends READY=1 (its
                             replacements never do)
  --extend-timeout SECS      send EXTEND_TIMEOUT_USEC=<SECS in µs> at start
  --trigger-after SECS       send WATCHDOG=trigger SECS after READY=1
  --status TEXT              sent as STATUS= with READY=1
  --watchdog-every SECS      once ready, send WATCHDOG=1 every SECS
  --stop-watchdog-after SECS ...and stop sending it SECS after READY=1
  --grow-rss MB              once ready, allocate and touch MB MiB of memory (VmRSS grows)
  --grow-when FILE           ...not once ready but once FILE exists (a gate the test opens)
  --once FILE                --stop-watchdog-after and --grow-rss apply only to the first worker
                             that creates FILE (its replacements behave)
  --report DIR               write DIR/notify-<pid>.json (atomically, updated on each event): pid,
                             slot, generation, NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, and the
                             times (time.time()) it sent READY=1 (`ready_sent_at`), last sent
                             WATCHDOG=1 (`watchdog_last_at`) and stopped pinging
                             (`watchdog_stopped_at`); and DIR/notify-<pid>.term: the time it got
                             SIGTERM (written from the signal handler, so without the report's lock)
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

import http_worker

REPORT = {}
REPORT_LOCK = threading.Lock()
OPTIONS = None
MEMORY = []   # keeps --grow-rss allocations alive


def report(**fields):
    if not OPTIONS.report:
        return
    with REPORT_LOCK:
        REPORT.update(fields)
        path = os.path.join(OPTIONS.report, "notify-%d.json" % os.getpid())
        with open(path + ".tmp", "w") as f:
            json.dump(REPORT, f)
        os.rename(path + ".tmp", path)


def record_term():
    """Safe in a signal handler: no lock, nothing shared with the threads."""
    if not OPTIONS.report:
        return
    path = os.path.join(OPTIONS.report, "notify-%d.term" % os.getpid())
    with open(path + ".tmp", "w") as f:
        f.write(repr(time.time()))
    os.rename(path + ".tmp", path)


def notify(message):
    """One datagram to $NOTIFY_SOCKET (a path, or @abstract); False when there is none."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    if target.startswith("@"):
        target = "\0" + target[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), target)
    return True


def first_with(path):
    """True for the one worker that creates path first (or always, without --once)."""
    if not path:
        return True
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


def wait_for_file(path):
    """Returns once path exists: the test's gate (polled, as the standard library has no inotify)."""
    while not os.path.exists(path):
        time.sleep(0.01)


def watchdog_pinger(every, stop_after):
    started = time.monotonic()
    while stop_after is None or time.monotonic() - started < stop_after:
        sent_at = time.time()       # just before: clusterd cannot have it earlier
        notify("WATCHDOG=1")
        report(watchdog_last_at=sent_at)
        time.sleep(every)
    report(watchdog_stopped_at=time.time())


def become_ready(special):
    message = "READY=1"
    if OPTIONS.status:
        message += "\nSTATUS=" + OPTIONS.status
    report(ready_sent_at=time.time())
    notify(message)
    if OPTIONS.watchdog_every:
        stop_after = OPTIONS.stop_watchdog_after if special else None
        threading.Thread(target=watchdog_pinger, args=(OPTIONS.watchdog_every, stop_after),
                         daemon=True).start()
    if OPTIONS.trigger_after is not None:
        threading.Timer(OPTIONS.trigger_after, lambda: notify("WATCHDOG=trigger")).start()
    if OPTIONS.grow_rss and special:
        def grow():
            if OPTIONS.grow_when:
                wait_for_file(OPTIONS.grow_when)
            MEMORY.append(b"x" * (OPTIONS.grow_rss << 20))   # bytes() writes every page
            report(grown_mib=OPTIONS.grow_rss)
        threading.Thread(target=grow, daemon=True).start()


def main():
    global OPTIONS
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--slot-delay", type=float, default=0.0)
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--ready-on-usr1", action="store_true")
    parser.add_argument("--ready-when")
    parser.add_argument("--exit-when")
    parser.add_argument("--ready-once")
    parser.add_argument("--extend-timeout", type=float)
    parser.add_argument("--trigger-after", type=float)
    parser.add_argument("--status")
    parser.add_argument("--watchdog-every", type=float)
    parser.add_argument("--stop-watchdog-after", type=float)
    parser.add_argument("--grow-rss", type=int)
    parser.add_argument("--grow-when")
    parser.add_argument("--once")
    parser.add_argument("--report")
    OPTIONS = parser.parse_args()

    report(pid=os.getpid(), slot=os.environ.get("CLUSTERD_WORKER_ID"),
           generation=os.environ.get("CLUSTERD_GENERATION"),
           notify_socket=os.environ.get("NOTIFY_SOCKET"),
           watchdog_usec=os.environ.get("WATCHDOG_USEC"),
           watchdog_pid=os.environ.get("WATCHDOG_PID"), argv=sys.argv)
    special = first_with(OPTIONS.once) if (OPTIONS.stop_watchdog_after is not None
                                            or OPTIONS.grow_rss) else False

    def exit_on_term(*_):
        record_term()
        os._exit(0)

    # Until it serves, SIGTERM ends it at once; serving, the HTTP server stops gracefully.
    signal.signal(signal.SIGTERM, exit_on_term)
    if OPTIONS.extend_timeout is not None:
        notify("EXTEND_TIMEOUT_USEC=%d" % int(OPTIONS.extend_timeout * 1e6))
    if OPTIONS.never_ready or (OPTIONS.ready_once and not first_with(OPTIONS.ready_once)):
        while True:
            signal.pause()
    if OPTIONS.exit_when:
        wait_for_file(OPTIONS.exit_when)
        os._exit(1)
    if OPTIONS.ready_when:
        wait_for_file(OPTIONS.ready_when)
    elif OPTIONS.ready_on_usr1:
        usr1 = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: usr1.set())
        while not usr1.wait(1.0):
            pass
    else:
        delay = OPTIONS.ready_after + OPTIONS.slot_delay * int(os.environ.get("CLUSTERD_WORKER_ID", "0"))
        if delay > 0:
            time.sleep(delay)                  # the worker's own slow start
    become_ready(special)
    if "LISTEN_FDS" in os.environ:
        http_worker.serve(http_worker.listener_fds(True, None), graceful=True, on_term=record_term)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
