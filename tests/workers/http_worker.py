#!/usr/bin/env python3
"""Test worker: serves HTTP on the listener clusterd passes at fd 3 (or the one named by --name).

Every answer is JSON naming who answered: pid, slot, generation, worker count, the fds the process
holds (`fds`: now, including the connection; `startup_fds`/`startup_fd_targets`: what it was started
with), process group and session, groups, the address it serves, and the LISTEN_* variables it
got, so tests can assert identity, replacement and hygiene.

Options:
  --name NAME        serve the listener of that LISTEN_FDNAMES entry (default: the first)
  --ignore-term      ignore SIGTERM (to test the grace period and SIGKILL)
  --exit-after SECS  exit with --exit-code after SECS (crash-loop tests)
  --exit-code N      exit status for --exit-after (default 1)
  --shutdown-listener-once FILE
                     if FILE does not exist yet: create it, shutdown() the listener (which stops
                     it for every process holding it) and exit 3; else serve as usual
"""
import argparse
import http.server
import json
import os
import signal
import socket
import sys
import threading


def listener_fd(name):
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("http_worker: LISTEN_PID is not my pid")
    count = int(os.environ["LISTEN_FDS"])
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    if name is None:
        return 3
    if name not in names:
        sys.exit("http_worker: no listener named %r in %r" % (name, names))
    index = names.index(name)
    assert index < count
    return 3 + index


def open_fds():
    """The fds this process holds, honestly: listing /proc/self/fd opens one fd (and Python may dup
    it) for the listing itself; those are closed again when listdir returns, so keep only the
    listed fds that are still open afterwards."""
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    still_open = []
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue
        still_open.append(fd)
    return sorted(still_open)


def fd_targets(fds):
    targets = {}
    for fd in fds:
        try:
            targets[str(fd)] = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            pass
    return targets


STARTUP_FDS = open_fds()          # before this worker opened anything of its own
STARTUP_FD_TARGETS = fd_targets(STARTUP_FDS)


def identity():
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "slot": os.environ.get("CLUSTERD_WORKER_ID"),
        "workers": os.environ.get("CLUSTERD_WORKERS"),
        "generation": os.environ.get("CLUSTERD_GENERATION"),
        "listen": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")},
        "env": dict(os.environ),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "startup_fds": STARTUP_FDS,
        "startup_fd_targets": STARTUP_FD_TARGETS,
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "groups": sorted(os.getgroups()),
        "served_address": list(SERVED_ADDRESS) if isinstance(SERVED_ADDRESS, tuple) else SERVED_ADDRESS,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": os.getcwd(),
        "argv": sys.argv,
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps(identity()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


SERVED_ADDRESS = None   # getsockname() of the listener this worker serves


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fd):
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket = socket.socket(fileno=fd)
        self.server_address = self.socket.getsockname()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--exit-code", type=int, default=1)
    parser.add_argument("--shutdown-listener-once")
    options = parser.parse_args()

    if options.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if options.exit_after is not None:
        threading.Timer(options.exit_after, lambda: os._exit(options.exit_code)).start()
    global SERVED_ADDRESS
    if options.shutdown_listener_once:
        try:
            os.close(os.open(options.shutdown_listener_once, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            socket.socket(fileno=listener_fd(options.name)).shutdown(socket.SHUT_RDWR)
            os._exit(3)
    server = Server(listener_fd(options.name))
    SERVED_ADDRESS = server.server_address
    server.serve_forever()


if __name__ == "__main__":
    main()
