#!/usr/bin/env python3
"""A minimal HTTP worker for clusterd: serves the listening socket it inherits at fd 3.

Run it under clusterd:  clusterd --workers 2 --listen :8000 -- python3 examples/hello_worker.py
Each answer names the worker's pid and slot, so `curl localhost:8000` shows the pool at work.
"""
import http.server
import os
import signal
import socket
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = "hello from pid {} (worker {} of {})\n".format(
            os.getpid(), os.environ.get("CLUSTERD_WORKER_ID"), os.environ.get("CLUSTERD_WORKERS")
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class InheritedServer(http.server.ThreadingHTTPServer):
    def __init__(self, handler):
        # The socket is already bound and listening: wrap it, do not bind again.
        super().__init__(None, handler, bind_and_activate=False)
        self.socket = socket.socket(fileno=3)


def main():
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        sys.exit("hello_worker.py: expected one socket from clusterd (LISTEN_FDS=1)")
    server = InheritedServer(Hello)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
