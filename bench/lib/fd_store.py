"""The part of systemd a clusterd that is SIGKILLed and restarted relies on, for bench/upgrade: a
NOTIFY_SOCKET that keeps the fds sent with FDSTORE=1 under their FDNAME (and drops them on
FDSTOREREMOVE=1), and the command that starts clusterd again as systemd's Restart= does, with the
kept fds at 3, 4, … and LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID."""
import array
import os
import socket
import sys
import threading


class FdStore:
    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.fds = {}  # FDNAME: [fd, ...]
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.closed.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 64))
            except socket.timeout:
                continue
            except OSError:
                return
            fds = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(array.array("i", payload[:len(payload) - len(payload) % 4]))
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").split("\n") if "=" in line)
            name = fields.get("FDNAME", "stored")
            with self.lock:
                if fields.get("FDSTORE") == "1":
                    self.fds.setdefault(name, []).extend(fds)
                    continue
                if fields.get("FDSTOREREMOVE") == "1":
                    for fd in self.fds.pop(name, []):
                        os.close(fd)
            for fd in fds:
                os.close(fd)

    def stored(self):
        with self.lock:
            return {name: list(fds) for name, fds in self.fds.items()}

    def restart_command(self, command):
        """`command` started as systemd starts a service that has fds in its store; and the fds,
        for subprocess's pass_fds."""
        stored = self.stored()
        names = [name for name, fds in stored.items() for _ in fds]
        fds = [fd for name in stored for fd in stored[name]]
        script = ("import os, sys\n"
                  "fds = [int(fd) for fd in sys.argv[1].split(',')]\n"
                  "for index, fd in enumerate(fds):\n"
                  "    os.dup2(fd, 3 + index)\n"
                  "for fd in fds:\n"
                  "    if fd >= 3 + len(fds):\n"
                  "        os.close(fd)\n"
                  "os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2], LISTEN_PID=str(os.getpid()))\n"
                  "os.execv(sys.argv[3], sys.argv[3:])\n")
        return [sys.executable, "-c", script, ",".join(map(str, fds)), ":".join(names)] + command, fds

    def close(self):
        self.closed.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for fds in self.stored().values():
            for fd in fds:
                os.close(fd)
