#!/usr/bin/env python3
"""A minimal HTTP worker for clusterd: serves the listening socket it inherits at fd 3.

Run it under clusterd:  clusterd --workers 2 --listen :8000 -- python3 examples/hello_worker.py
Each answer names the worker's pid and slot, so `curl localhost:8000` shows the pool at work.
On SIGTERM (clusterd's stop, reload and scale-down) it stops taking connections, finishes the
requests in hand, and exits 0: the connections still queued go to the other workers, so a reload
loses no request.
"""
import http.server
import os
import signal
import socket
import sys
import threading


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A keep-alive connection left idle is closed after this long, so a stop never waits longer.
    timeout = 5

    def do_GET(self):
        body = "hello from pid {} (worker {} of {})\n".format(
            os.getpid(), os.environ.get("CLUSTERD_WORKER_ID"), os.environ.get("CLUSTERD_WORKERS")
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping:
            self.close_connection = True     # the client's next request goes to another worker
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class InheritedServer(http.server.ThreadingHTTPServer):
    daemon_threads = False    # server_close() waits for the requests in hand

    def __init__(self, handler):
        # The socket is already bound and listening: wrap it, do not bind again.
        super().__init__(None, handler, bind_and_activate=False)
        self.socket = socket.socket(fileno=3)
        # Every worker waits on this socket: one that loses the race for a connection must not
        # block in accept(), or it would not see a stop until the next connection came.
        self.socket.setblocking(False)
        self.stopping = False


def main():
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        sys.exit("hello_worker.py: expected one socket from clusterd (LISTEN_FDS=1)")
    server = InheritedServer(Hello)
    # shutdown() waits for serve_forever() to return, so it runs in a thread of its own, woken
    # through a pipe: the handler may interrupt the main thread while it holds a lock, so it only writes.
    stop_read, stop_write = os.pipe()

    def stop():
        os.read(stop_read, 1)
        server.stopping = True
        server.shutdown()

    threading.Thread(target=stop, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os.write(stop_write, b"x"))
    server.serve_forever()
    server.server_close()    # closes our copy of the socket (clusterd keeps its own), joins the requests


if __name__ == "__main__":
    main()
