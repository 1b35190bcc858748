#!/usr/bin/env python3
"""Test worker for ready.mode = "auto": waits for connections on the listener at fd 3 in the way
asked for, and answers each with one line of JSON naming its pid, so a test can tell which sign
clusterd saw and that the worker it called ready really serves.

Usage: wait_worker.py HOW [--delay SECS] [--port-file FILE]
  HOW = accept   a thread blocked in accept() on fd 3
        select   blocked in select() with fd 3 in the read set
        poll     blocked in poll() on fd 3 for POLLIN
        epoll    fd 3 in an epoll instance's interest list, waiting in epoll_wait()
        child    a child process (not the worker itself) waits in epoll, as a pre-fork server's
        own      binds a socket of its own on 127.0.0.1 (port written to --port-file) and never
                 touches fd 3: the server configured for the wrong address
        exit     exits 1 at once: the new version that cannot start
  --delay SECS   sleep that long before waiting (a slow start)
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import time


def answer(connection):
    with connection:
        connection.sendall((json.dumps({"pid": os.getpid()}) + "\n").encode())


# SIGTERM is held back from the moment a wait returns until the connection taken is answered, as
# a graceful server finishes the request in hand: a reload must not show up as a reply cut short.
# While it waits, it is let through and ends the worker at once.
TERM = {signal.SIGTERM}


def serve(listener, how):
    listener.setblocking(how == "accept")
    if how == "epoll" or how == "child":
        waiter = select.epoll()
        waiter.register(listener.fileno(), select.EPOLLIN)
        wait = lambda: waiter.poll()
    elif how == "poll":
        waiter = select.poll()
        waiter.register(listener.fileno(), select.POLLIN)
        wait = lambda: waiter.poll()
    elif how == "select":
        wait = lambda: select.select([listener], [], [])
    signal.pthread_sigmask(signal.SIG_BLOCK, TERM)
    while True:
        if how == "accept":
            # The wait is accept() itself: a SIGTERM that lands just as it returns a connection
            # may still cut that one short.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, TERM)
            connection, _ = listener.accept()
            signal.pthread_sigmask(signal.SIG_BLOCK, TERM)
        else:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, TERM)
            wait()
            signal.pthread_sigmask(signal.SIG_BLOCK, TERM)
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                continue
        connection.setblocking(True)
        answer(connection)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("how", choices=["accept", "select", "poll", "epoll", "child", "own", "exit"])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.how == "exit":
        sys.exit(1)
    time.sleep(args.delay)
    if args.how == "own":
        own = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        own.bind(("127.0.0.1", 0))
        own.listen(16)
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(own.getsockname()[1]))
        os.rename(args.port_file + ".tmp", args.port_file)
        serve(own, "epoll")
    listener = socket.socket(fileno=3)
    if args.how == "child":
        child = os.fork()
        if child == 0:
            serve(listener, "epoll")
        os.waitpid(child, 0)
        sys.exit(1)
    serve(listener, args.how)


if __name__ == "__main__":
    main()
