#!/usr/bin/env python3
"""Test worker: serves HTTP on the listener clusterd passes at fd 3 (or the one named by --name).

Every answer is JSON naming who answered: pid, slot, generation, worker count, the fds the process
holds (`fds`: now, including the connection; `startup_fds`/`startup_fd_targets`: what it was started
with), process group and session, groups, the address it serves, and the LISTEN_* variables it
got, so tests can assert identity, replacement and hygiene.

Options:
  --name NAME        serve the listener of that LISTEN_FDNAMES entry (default: the first)
  --ignore-term      ignore SIGTERM (to test the grace period and SIGKILL)
  --note-signal SIG:FILE
                     on signal SIG (a name: ABRT, QUIT) append "SIG MONOTONIC_TIME PID" to FILE and
                     go on, as a runtime that writes a stack dump does (the stop ladder)
  --exit-after SECS  exit with --exit-code after SECS (crash-loop tests)
  --exit-code N      exit status for --exit-after (default 1)
  --shutdown-listener-once FILE
                     if FILE does not exist yet: create it, shutdown() the listener (which stops
                     it for every process holding it) and exit 3; else serve as usual
  --all-listeners    serve every listener in LISTEN_FDS (each answer names the one it came in on)
  --graceful         on SIGTERM stop like a production server: stop accepting (connections still
                     in the shared queue go to other workers), finish requests in progress with
                     `Connection: close`, answer the first request of connections already
                     accepted, close keep-alive connections that sit idle between requests, then
                     exit 0 (at most 10 s later). A request a client sends on an idle keep-alive
                     connection just as it is closed is lost: real HTTP clients retry it once on
                     a fresh connection.

serve() is the same server for other workers (notify_worker.py) to import.
"""
import argparse
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time


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

    def setup(self):
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            # Headers and body are two writes: without this, Nagle + the client's delayed ACK
            # hold every keep-alive answer back by ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        # Idle until the request line arrives; busy while it is answered.
        try:
            super().handle_one_request()
        finally:
            self.state.busy = False
            if self.server.stopping:
                self.close_connection = True

    @property
    def state(self):
        return self.server.connections[self.request]

    def parse_request(self):
        self.state.busy = True
        return super().parse_request()

    def do_GET(self):
        answer = identity()
        answer["served_address"] = format_address(self.server.server_address)
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.state.answered += 1

    def log_message(self, *args):
        pass


SERVED_ADDRESS = None   # getsockname() of the (first) listener this worker serves


def format_address(address):
    return list(address) if isinstance(address, tuple) else address


class Connection:
    """What a graceful stop needs to know about one accepted connection."""

    def __init__(self, sock):
        self.sock = sock
        self.busy = False        # between reading a request line and finishing its answer
        self.answered = 0        # requests answered on it so far


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fd, graceful=False):
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket = socket.socket(fileno=fd)
        if graceful:
            # accept() only after select() said so, and never block in it: a sibling worker may
            # take the connection first, and a stopping worker blocked in accept() would wait for
            # the next connection to notice the stop. (O_NONBLOCK is shared by every holder of
            # the socket; clusterd never accepts, and these workers expect EAGAIN.)
            self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.stopping = False
        self.connections = {}    # accepted socket -> Connection, until its thread is done
        self.connections_lock = threading.Lock()

    def process_request(self, request, client_address):
        # Registered in the accepting thread, so a graceful stop sees every accepted connection.
        with self.connections_lock:
            self.connections[request] = Connection(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        super().shutdown_request(request)
        with self.connections_lock:
            self.connections.pop(request, None)

    def close_idle_connections(self):
        """Closes keep-alive connections waiting for their next request (a connection's first
        request is always answered); returns how many connections are still open."""
        with self.connections_lock:
            connections = list(self.connections.values())
        for connection in connections:
            if connection.answered > 0 and not connection.busy:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(connections)


def serve(fds, graceful=False, on_term=None):
    """Serves HTTP on each listening fd until SIGTERM; never returns. on_term(): called first
    when SIGTERM arrives (in the signal handler: it must not take locks)."""
    global SERVED_ADDRESS
    servers = [Server(fd, graceful) for fd in fds]
    SERVED_ADDRESS = servers[0].server_address
    # How soon a stop is noticed by the accept loops (shutdown() waits for them).
    poll_interval = 0.1 if graceful else 0.5
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval},
                         daemon=True).start()

    # The signal handler only writes to this pipe: it runs in the main thread between two
    # bytecodes, maybe while that thread holds a lock (starting a connection's thread), so it
    # must neither start a thread nor take a lock itself.
    stop_read, stop_write = os.pipe()

    def stop_gracefully():
        os.read(stop_read, 1)
        for server in servers:
            server.stopping = True
        for server in servers:
            server.shutdown()          # no more accept(): the queue is left to other workers
            server.socket.close()      # our copy of the listener only; clusterd keeps it open
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if sum(server.close_idle_connections() for server in servers) == 0:
                break
            time.sleep(0.01)
        os._exit(0)

    def on_sigterm(*_):
        if on_term:
            on_term()
        if not graceful:
            os._exit(0)
        os.write(stop_write, b"x")

    if graceful:
        threading.Thread(target=stop_gracefully, daemon=True).start()
    signal.signal(signal.SIGTERM, on_sigterm)
    servers[0].serve_forever(poll_interval=poll_interval)
    while True:          # stopping: stop_gracefully() ends the process
        time.sleep(1)


def listener_fds(all_listeners, name):
    if all_listeners:
        listener_fd(None)   # checks LISTEN_PID
        return [3 + index for index in range(int(os.environ["LISTEN_FDS"]))]
    return [listener_fd(name)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--exit-code", type=int, default=1)
    parser.add_argument("--shutdown-listener-once")
    parser.add_argument("--all-listeners", action="store_true")
    parser.add_argument("--graceful", action="store_true")
    parser.add_argument("--note-signal")
    options = parser.parse_args()

    if options.note_signal:
        name, path = options.note_signal.split(":", 1)

        def note(signum, _frame):
            with open(path, "a") as f:
                f.write("%s %f %d\n" % (name, time.monotonic(), os.getpid()))
        signal.signal(getattr(signal, "SIG" + name), note)

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
    if options.ignore_term:
        server = Server(listener_fd(options.name))
        SERVED_ADDRESS = server.server_address
        server.serve_forever()
    serve(listener_fds(options.all_listeners, options.name), graceful=options.graceful)


if __name__ == "__main__":
    main()
