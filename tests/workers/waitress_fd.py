"""waitress's recipe in docs/servers.md: `waitress-serve` cannot take an inherited socket, but
waitress.create_server(app, sockets=[...]) can. Serves MODULE:APP on the socket at fd 3.

waitress has no stop of its own on SIGTERM (Python's default kills it with the requests in hand),
so this drains: it stops taking connections, lets its channels finish, and exits 0.

    python3 waitress_fd.py MODULE:APP
"""
import importlib
import os
import signal
import socket
import sys
import time

import waitress

GRACE_SECONDS = 10


def main():
    module, _, name = sys.argv[1].partition(":")
    sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module), name)
    listener = socket.socket(fileno=3)
    # Every worker waits on this socket: one that loses the race for a connection must not block
    # in accept(), or it would not see SIGTERM until the next connection came.
    listener.setblocking(False)
    channels = {}   # waitress's socket map, ours to watch
    server = waitress.create_server(app, map=channels, sockets=[listener])
    # Before any connection the map holds the listening dispatchers and the trigger that task
    # threads wake the loop with; whatever comes later is a connection.
    before = set(channels)

    # The handler only sets a flag: raising from it could interrupt the loop halfway through
    # accepting or reading a connection, which would then be lost. The loop looks at the flag at
    # least once a second.
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        server.asyncore.loop(timeout=1.0, map=channels, count=1)
    for dispatcher in list(channels.values()):
        if getattr(dispatcher, "accepting", False):
            dispatcher.del_channel()   # no more accepts here; the socket stays open in clusterd
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and set(channels) - before:
        server.asyncore.loop(timeout=0.05, map=channels, count=1)
    server.task_dispatcher.shutdown()


if __name__ == "__main__":
    main()
