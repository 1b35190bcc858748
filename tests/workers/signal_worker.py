#!/usr/bin/env python3
"""Job-style test worker (needs no listener) that records the signals it gets, as files in DIR:

  DIR/started-<pid>.json  written (atomically) once its handlers are in place, so a test may signal
                          it from then on: pid, helper pid (or null), slot, generation
  DIR/usr2-<pid>.log      one line "USR2" appended per SIGUSR2 it handled
  DIR/term-<pid>          written when SIGTERM arrives; then it exits 0

Options:
  --dir DIR          where to write (required)
  --helper           fork a helper process that stays in the worker's process group and records
                     its own SIGUSR2 and SIGTERM the same way (its pid is in started-<pid>.json)
  --ready-when FILE  send READY=1 to $NOTIFY_SOCKET once FILE exists (polled); without it the
                     worker never sends READY=1 (in notify mode it never becomes ready)
"""
import argparse
import json
import os
import signal
import socket
import time

OPTIONS = None


def record_usr2(*_):
    fd = os.open(os.path.join(OPTIONS.dir, "usr2-%d.log" % os.getpid()),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"USR2\n")
    finally:
        os.close(fd)


def record_term_and_exit(*_):
    fd = os.open(os.path.join(OPTIONS.dir, "term-%d" % os.getpid()), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    os._exit(0)


def notify(message):
    """One datagram to $NOTIFY_SOCKET (a path, or @abstract)."""
    target = os.environ["NOTIFY_SOCKET"]
    if target.startswith("@"):
        target = "\0" + target[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), target)


def wait_forever():
    while True:
        signal.pause()


def main():
    global OPTIONS
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--helper", action="store_true")
    parser.add_argument("--ready-when")
    OPTIONS = parser.parse_args()

    signal.signal(signal.SIGUSR2, record_usr2)
    signal.signal(signal.SIGTERM, record_term_and_exit)
    helper = None
    if OPTIONS.helper:
        helper = os.fork()          # the handlers above are the helper's too
        if helper == 0:
            wait_forever()
    started = {"pid": os.getpid(), "helper": helper, "slot": os.environ.get("CLUSTERD_WORKER_ID"),
               "generation": os.environ.get("CLUSTERD_GENERATION")}
    path = os.path.join(OPTIONS.dir, "started-%d.json" % os.getpid())
    with open(path + ".tmp", "w") as f:
        json.dump(started, f)
    os.rename(path + ".tmp", path)

    if OPTIONS.ready_when:
        while not os.path.exists(OPTIONS.ready_when):
            time.sleep(0.02)
        notify("READY=1")
    wait_forever()


if __name__ == "__main__":
    main()
