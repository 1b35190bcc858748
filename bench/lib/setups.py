"""The ways of running N copies of the same worker program on one port that bench/run compares.

Each setup starts on a given 127.0.0.1 port with N workers and returns from start() only when N
distinct worker pids have answered HTTP requests (every worker's response carries its pid), so
no setup is measured while it is still starting. stop() is graceful (SIGTERM, or `pm2 delete`,
which sends SIGINT) and ends only processes the setup started, by pid.

  by hand        N copies of the worker started directly by this script, each binding its own
                 SO_REUSEPORT socket on the port (`http_server --reuseport PORT`; the JS worker's
                 `--reuse-port`, which needs Node >= 22.12), or all sharing one socket this script
                 opened (fd 3, as under clusterd). With setsid each copy is started in a session
                 of its own, as clusterd starts its workers. These are the controls that tell what
                 clusterd itself changes: the shared socket, the sessions, or neither.
  clusterd       clusterd --workers N --listen 127.0.0.1:PORT -- WORKER (fd 3 shared by all)
  node-cluster   bench/workers/node_cluster.js: Node's cluster module, round-robin through the
                 primary, N copies of http_server.js
  pm2 cluster    PM2 cluster mode (instances N, exec_mode cluster): the PM2 daemon is the cluster
                 primary, as in node-cluster
  pm2 fork       PM2 fork mode (instances N, exec_mode fork): PM2 starts N separate processes and
                 shares no socket, so they can share the port only by binding it with SO_REUSEPORT
                 themselves (`--reuseport PORT`)
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from .reload_bench import reload

WORKERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workers")
JS_WORKER = os.path.join(WORKERS, "http_server.js")


def ask_pid(port, timeout=1.0):
    """The pid that answered one request on a new connection, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-worker-pid":
            return int(value)
    return None


def sessions(pids):
    """How the workers share scheduler autogroups (one per session) with this script and its load
    client: "client's" (all in ours), "one, not client's", or "one each"."""
    def group(pid):
        try:
            with open(f"/proc/{pid}/autogroup") as f:
                return f.read().split()[0]
        except OSError:  # no autogroup support: the session id stands for it
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return "sid " + f.read().rsplit(")", 1)[1].split()[4]
            except OSError:
                return None
    ours = group(os.getpid())
    groups = [group(pid) for pid in pids]
    if None in groups or not groups:
        return "?"
    if all(g == ours for g in groups):
        return "client's"
    if len(set(groups)) == 1:
        return "one, not client's"
    if len(set(groups)) == len(groups) and ours not in groups:
        return "one each"
    return "mixed"


class Setup:
    """Subclasses set key, label, lang ("C" or "JS") and implement _start, worker_pids, _stop."""

    key = label = lang = ""

    def start(self, port, workers, timeout=30.0):
        self.port, self.workers = port, workers
        self._start()
        seen = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = ask_pid(port)
            if pid:
                seen.add(pid)
            if len(seen) >= workers and len(self.worker_pids()) == workers:
                self.sessions = sessions(self.worker_pids())
                return
            if not self.running():
                break
            if not pid:
                time.sleep(0.02)
        raise RuntimeError(f"{self.label}: {len(seen)} of {workers} workers answered within {timeout:.0f}s "
                           f"(pids seen: {sorted(seen)})\n{self.log_text()[-2000:]}")

    def running(self):
        return True

    def supervisor_pid(self):
        """The process that starts and restarts the workers, if any (its CPU time is reported)."""
        return None

    logdir = None  # when set, stop() writes the setup's output there, one file per start

    def stop(self):
        self._stop()
        if self.logdir and getattr(self, "port", None):
            os.makedirs(self.logdir, exist_ok=True)
            with open(os.path.join(self.logdir, f"{self.key}-{self.port}.log"), "w") as f:
                f.write(self.log_text())

    def log_text(self):
        return ""


class ByHand(Setup):
    """N copies started by this script: each binds the port with SO_REUSEPORT, or (shared=True) all
    inherit one listening socket this script opened, as fd 3 with LISTEN_FDS/LISTEN_PID, which is
    what clusterd gives its workers. setsid=True starts each copy in a session of its own, as
    clusterd does; otherwise they share this script's session (and the load client's)."""

    def __init__(self, c_worker, lang, setsid=False, shared=False):
        self.lang, self.setsid, self.shared = lang, setsid, shared
        self.key = f"by-hand-{lang.lower()}" + ("-shared" if shared else "") + ("-setsid" if setsid else "")
        self.label = (f"by hand, {lang}, " + ("one shared socket" if shared else "SO_REUSEPORT")
                      + (", setsid each" if setsid else ""))
        self.c_worker = c_worker
        self.procs, self.sock, self.out = [], None, None

    def _start(self):
        if self.lang == "C":
            worker = [self.c_worker] + ([] if self.shared else ["--reuseport", str(self.port)])
        else:
            worker = [shutil.which("node") or "node", JS_WORKER] + (
                [] if self.shared else ["--port", str(self.port), "--reuse-port"])
        pass_fds = ()
        if self.shared:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", self.port))
            self.sock.listen(4096)
            fd = self.sock.fileno()
            pass_fds = (fd,)
            # bash (dash takes single-digit fds only) moves the socket to fd 3 and names itself in
            # LISTEN_PID: exec keeps its pid for the worker.
            move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
            worker = ["bash", "-c", move + 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"'] + worker
        self.out = tempfile.TemporaryFile("w+")
        self.procs = [subprocess.Popen(worker, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                       pass_fds=pass_fds, start_new_session=self.setsid)
                      for _ in range(self.workers)]

    def worker_pids(self):
        return sorted(p.pid for p in self.procs if p.poll() is None)

    def running(self):
        return all(p.poll() is None for p in self.procs)

    def _stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()  # all at once, then wait for each
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.sock:
            self.sock.close()

    def log_text(self):
        if not self.out:
            return ""
        self.out.seek(0)
        return self.out.read()


class Clusterd(Setup):
    def __init__(self, clusterd, c_worker, lang):
        self.clusterd, self.lang = clusterd, lang
        self.key, self.label = f"clusterd-{lang.lower()}", f"clusterd + {lang}"
        self.worker = [c_worker] if lang == "C" else [shutil.which("node") or "node", JS_WORKER]
        self.sup = None

    def _start(self):
        self.dir = tempfile.mkdtemp(prefix="bench-cd-")
        self.control = os.path.join(self.dir, "control.sock")
        self.sup = reload.Supervisor(self.label, [
            self.clusterd, "--workers", str(self.workers), "--listen", f"127.0.0.1:{self.port}",
            "--name", f"bench-run-{os.getpid()}-{self.port}", "--control", self.control, "--grace", "15s",
            "--"] + self.worker)

    def status(self):
        done = subprocess.run([self.clusterd, "status", "--json", "--control", self.control],
                              capture_output=True, text=True, timeout=30)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def worker_pids(self):
        status = self.status() if self.running() else None
        return sorted(w["pid"] for w in (status or {}).get("workers", []) if w.get("pid"))

    def running(self):
        return self.sup.proc.poll() is None

    def supervisor_pid(self):
        return self.sup.proc.pid

    def _stop(self):
        if self.sup:  # None when it never started (or was stopped already)
            self.sup.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        return self.sup.log_text() if self.sup else ""


class NodeCluster(Setup):
    key, label, lang = "node-cluster", "Node cluster + JS", "JS"

    def _start(self):
        self.sup = reload.Supervisor(self.label, [
            shutil.which("node") or "node", os.path.join(WORKERS, "node_cluster.js"), "--workers", str(self.workers),
            "--port", str(self.port), "--grace-ms", "15000"])

    def worker_pids(self):
        return reload.children(self.sup.proc.pid)

    def running(self):
        return self.sup.proc.poll() is None

    def supervisor_pid(self):
        return self.sup.proc.pid

    def _stop(self):
        self.sup.stop()

    def log_text(self):
        return self.sup.log_text()


class Pm2App(Setup):
    def __init__(self, pm2, c_worker, mode):
        self.pm2, self.mode = pm2, mode
        self.lang = "JS" if mode == "cluster" else "C"
        self.key = f"pm2-{mode}-{self.lang.lower()}"
        self.label = "PM2 cluster + JS" if mode == "cluster" else "PM2 fork, C, SO_REUSEPORT"
        self.c_worker = c_worker

    def _start(self):
        self.name = f"bench-{self.key}-{self.port}"
        app = {"name": self.name, "instances": self.workers, "exec_mode": self.mode, "autorestart": True}
        if self.mode == "cluster":
            app.update(script=JS_WORKER, args=["--port", str(self.port)])
        else:
            app.update(script=self.c_worker, args=["--reuseport", str(self.port)], interpreter="none")
        self.pm2.start(app)

    def worker_pids(self):
        return self.pm2.pids(self.name)

    def supervisor_pid(self):
        return self.pm2.daemon_pid()

    def _stop(self):
        self.pm2.delete(self.name)

    def log_text(self):
        return self.pm2.log_tail(self.name)


def all_setups(clusterd, c_worker, pm2):
    """Every setup in table order: the C group (reference first), then the JS group."""
    return [ByHand(c_worker, "C"), ByHand(c_worker, "C", setsid=True), ByHand(c_worker, "C", shared=True),
            Clusterd(clusterd, c_worker, "C"), Pm2App(pm2, c_worker, "fork"),
            NodeCluster(), ByHand(c_worker, "JS"), ByHand(c_worker, "JS", shared=True),
            Clusterd(clusterd, c_worker, "JS"), Pm2App(pm2, c_worker, "cluster")]


REFERENCE = {"C": "by-hand-c", "JS": "node-cluster"}
