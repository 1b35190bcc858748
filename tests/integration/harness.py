"""Starts the real clusterd binary and talks to it the way a user would: its log, HTTP, signals.

No sleeps as synchronisation: everything waits on a condition with a deadline and, on timeout,
fails with the last value seen and the tail of clusterd's log.
"""
import datetime
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client

import pytest

BIN = os.environ.get("CLUSTERD_BIN", "")
SOURCE_DIR = os.environ.get(
    "CLUSTERD_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
WORKERS_DIR = os.path.join(SOURCE_DIR, "tests", "workers")
PYTHON = "/usr/bin/python3"  # Debian's, with gunicorn/uvicorn/systemd modules


def worker(name):
    """Path of a test worker script in tests/workers/."""
    return os.path.join(WORKERS_DIR, name)


def wait_until(predicate, timeout=10.0, message="condition", interval=0.02, describe=None):
    """Polls predicate() until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            extra = describe() if describe else ""
            raise AssertionError("timed out after %.1fs waiting for %s; last value: %r\n%s"
                                 % (timeout, message, last, extra))
        time.sleep(interval)


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def http_get(address, path="/", timeout=5.0):
    """GET from "HOST:PORT", "[V6]:PORT" or "unix:PATH"; returns the decoded JSON body."""
    if address.startswith("unix:"):
        conn = UnixHTTPConnection(address[len("unix:"):], timeout=timeout)
    else:
        host, port = split_host_port(address)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if body.startswith(b"{") else body.decode()
    finally:
        conn.close()


class Load:
    """New connections one after another until stopped (at most `limit`, at most 60 s), each made
    by ask(address), which returns who answered or raises: a raise or an answer that `accept`
    refuses is a failed request."""

    def __init__(self, address, ask, limit=20000, accept=lambda answer: True):
        self.address, self.ask, self.limit, self.accept = address, ask, limit, accept
        self.answers, self.failed = [], []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def answered(self):
        return len(self.answers)

    def run(self):
        deadline = time.monotonic() + 60
        while not self.done.is_set() and self.answered + len(self.failed) < self.limit \
                and time.monotonic() < deadline:
            try:
                answer = self.ask(self.address)
            except (OSError, ValueError, http.client.HTTPException) as error:
                self.failed.append(repr(error))
                continue
            (self.answers if self.accept(answer) else self.failed).append(answer)

    def stop(self):
        """Ends the load; returns (requests answered, the failures)."""
        self.done.set()
        self.thread.join(timeout=30)
        return self.answered, self.failed


def dropped_in_hand(failure):
    """True for a failure of Load that is a connection the server took and then closed without an
    answer (a reset, or an end before any reply): what a server that does not drain the
    connections it has accepted but not yet read does when it stops (uvicorn, daphne). A refused
    connection, a timeout or a wrong answer is not one."""
    return failure == "" or failure.startswith(("ConnectionResetError(", "RemoteDisconnected(",
                                                "ConnectionError('closed before"))


def read_until_closed(sock):
    """Everything the peer sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def split_host_port(address):
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "::", "0.0.0.0"):
        host = "127.0.0.1"
    return host, int(port)


def serving_pids(address, wanted, limit=400):
    """Distinct pids answering new connections to address: stops once the set `wanted` is seen,
    or after `limit` requests (which worker accepts is the kernel's choice)."""
    seen = set()
    for _ in range(limit):
        seen.add(http_get(address)["pid"])
        if seen >= wanted:
            break
    return seen


def socket_inodes(pid):
    """Inodes of the sockets pid holds open."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


# ---- hermetic discovery: the default control directories, private to one test

# The directories a client searches whatever its environment (control_paths.h): another clusterd
# on the machine (a developer's, CI's decoys) keeps its sockets there.
SHARED_CONTROL_DIRECTORIES = ["/run/clusterd", "/tmp/clusterd-%d" % os.geteuid()]

# Runs "$@" in a new mount namespace where each shared directory is an empty tmpfs: a test that
# checks discovery on purpose sees only the instances it started. The mount points are created on
# the host when missing, as clusterd itself would (root's, mode 0755 at most); nothing else of the
# host is hidden, so temporary directories and configs stay visible.
_PRIVATE_RUNTIME_SCRIPT = """set -e
for directory in "$@"; do
  [ "$directory" = -- ] && break
  mkdir -p "$directory"
  mount -t tmpfs -o mode=0700,size=1m clusterd-test "$directory"
done
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
"""


def private_runtime_unavailable():
    """Why a private mount namespace cannot be made here, or None (it needs CAP_SYS_ADMIN)."""
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return "needs unshare and nsenter (util-linux)"
    result = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if result.returncode != 0:
        return "needs CAP_SYS_ADMIN for a private mount namespace: " + result.stderr.strip()
    return None


@functools.cache
def _private_runtime_reason():
    return private_runtime_unavailable()


def needs_private_runtime(test):
    """Marks a test that checks discovery, and so needs a private mount namespace."""
    reason = _private_runtime_reason()
    return pytest.mark.skipif(reason is not None, reason=str(reason))(test)


def private_runtime_setup():
    """A wrapper that, run in a mount namespace of its own, mounts the empty shared control
    directories, then execs its command (same pid)."""
    return ["/bin/sh", "-c", _PRIVATE_RUNTIME_SCRIPT, "sh"] + SHARED_CONTROL_DIRECTORIES + ["--"]


def private_runtime_wrapper():
    """A wrapper (Clusterd(wrapper=...)) that execs its command in a new mount namespace over
    empty shared control directories; the pid stays the command's."""
    return ["unshare", "--mount", "--propagation", "private"] + private_runtime_setup()


class Clusterd:
    """One clusterd process started by a test, in its own session, with its log in a temp dir."""

    def __init__(self, args, cwd=None, env=None, tmpdir=None, stdin=subprocess.DEVNULL,
                 close_stdio=False, wrapper=(), private_runtime=False, pass_fds=()):
        """stdin: what clusterd gets as fd 0. close_stdio: start it with fds 0, 1 and 2 closed
        (its log then goes to --log-file, the same log_path). wrapper: a command that execs
        clusterd in place, such as ["taskset", "-c", "0"] (the pid stays clusterd's).
        private_runtime: run it in a mount namespace of its own in which /run/clusterd and
        /tmp/clusterd-UID are empty, for a test of discovery (control(..., discover=True))."""
        self.private_runtime = private_runtime
        if private_runtime:
            wrapper = private_runtime_wrapper() + list(wrapper)
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="cd-")
        self.log_path = os.path.join(self.tmpdir, "clusterd.log")
        self.stdout_path = os.path.join(self.tmpdir, "clusterd.out")
        self.args = list(wrapper) + [BIN] + list(args)
        if close_stdio:
            # sh execs clusterd in place (same pid) after closing 0-2.
            self.args = ["/bin/sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh"] + list(wrapper) \
                + [BIN, "--log-file", self.log_path] + list(args)
        self.seen_pids = set()
        self.extra_pids = set()   # other processes a test caused (a worker's orphans): SIGKILLed at cleanup
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("LISTEN_FDS", None)
        full_env.pop("LISTEN_PID", None)
        # The default control socket goes to $RUNTIME_DIRECTORY/NAME.sock: each instance gets its
        # own, so tests running side by side with the same NAME never meet (interface §4.4).
        full_env["RUNTIME_DIRECTORY"] = self.tmpdir
        if env:
            full_env.update(env)
        self.env = full_env
        with open(self.log_path, "wb") as log, open(self.stdout_path, "wb") as out:
            self.process = subprocess.Popen(
                self.args, stdin=stdin, stdout=out, stderr=log,
                cwd=cwd or self.tmpdir, env=full_env, start_new_session=True, pass_fds=pass_fds,
            )
        self.pid = self.process.pid

    # ---- the log
    def log(self):
        """The log so far, whole lines only (a line being written is left out until it ends)."""
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        return text[:text.rfind("\n") + 1]

    def log_tail(self, lines=40):
        return "---- clusterd log (tail) ----\n" + "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern, count=1, timeout=10.0):
        """Waits until `pattern` (a regex) matched `count` lines; returns the match objects."""
        regex = re.compile(pattern)

        def found():
            matches = [m for m in map(regex.search, self.log().splitlines()) if m]
            return matches if len(matches) >= count else None

        return wait_until(found, timeout, "log line /%s/ x%d" % (pattern, count), describe=self.log_tail)

    def matches(self, pattern):
        """The match objects of `pattern` over the log lines so far (no waiting)."""
        regex = re.compile(pattern)
        return [m for m in map(regex.search, self.log().splitlines()) if m]

    def count(self, pattern):
        return len(self.matches(pattern))

    def address(self, name=None, timeout=10.0):
        """The bound address clusterd logged for listener `name` (default: the first)."""
        pattern = r"listening name=%s address=(\S+)" % (re.escape(name) if name else r"\S+")
        return self.wait_for_log(pattern, timeout=timeout)[0].group(1)

    def ready_pids(self, count, timeout=10.0):
        """Waits for `count` `worker ready` lines; returns all the pids logged as ready so far."""
        matches = self.wait_for_log(r"worker ready slot=(\d+) gen=(\d+) pid=(\d+)", count, timeout)
        pids = [int(m.group(3)) for m in matches]
        self.seen_pids.update(pids)
        return pids

    # ---- the control socket
    def control_path(self, timeout=10.0):
        """The control socket this instance logged it opened."""
        return self.wait_for_log(r"control socket path=(\S+)", timeout=timeout)[0].group(1)

    def control(self, *args, timeout=30.0, env=None, discover=False):
        """Runs the client `clusterd ARGS` (status, reload, scale N, stop, with --json and so on)
        with this instance's environment. Returns (code, stdout, stderr).

        The client is told this instance's control socket (--control PATH) unless ARGS name one,
        so another clusterd on the machine is never asked. discover=True lets the client find
        the socket itself (by --name, -c or alone), which only a test in a private mount
        namespace may do (private_runtime=True): the client then runs in that namespace."""
        args = list(args)
        if discover:
            if not self.private_runtime:
                raise AssertionError("discovery is tested only with private_runtime=True: elsewhere the "
                                     "client would also find other clusterd instances on this machine")
        elif "--control" not in args:
            args += ["--control", self.control_path()]
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        command = [BIN] + args
        if self.private_runtime:
            command = self.enter_namespaces() + command
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=full_env, stdin=subprocess.DEVNULL)
        return result.returncode, result.stdout, result.stderr

    def enter_namespaces(self):
        """The command prefix that runs a client in this instance's private mount namespace."""
        return ["nsenter", "--mount", "--target", str(self.pid), "--"]

    def status(self, *args, discover=False):
        """`clusterd status --json` parsed; fails the test unless it answers ok."""
        code, out, err = self.control("status", "--json", *args, discover=discover)
        assert code == 0, "status exited %d: %s%s\n%s" % (code, out, err, self.log_tail())
        return json.loads(out)

    def children(self):
        """Pids whose parent is clusterd, from /proc."""
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                return [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return []

    # ---- lifecycle
    def signal(self, signum):
        os.kill(self.pid, signum)

    def wait_exit(self, timeout=10.0):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("clusterd did not exit within %.1fs\n%s" % (timeout, self.log_tail()))

    def stop(self, timeout=15.0):
        """SIGTERM, wait; SIGKILL its process group if it hangs. Returns the exit status."""
        if self.process.poll() is None:
            try:
                self.signal(signal.SIGTERM)
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def exited(self):
        return self.process.poll() is not None

    def cleanup(self):
        code = self.stop()
        for pid in self.extra_pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.seen_pids.update(self.extra_pids)
        # Workers die with clusterd (parent-death signal); wait for them so tests never leak.
        leftovers = lambda: [p for p in self.seen_pids if pid_alive(p)]
        wait_until(lambda: not leftovers(), 10.0, "workers gone", describe=lambda: str(leftovers()))
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return code


TMUX = "/usr/bin/tmux"

# 3 s: long enough to watch the countdown, short enough for the suite.
GRACE = "3s"


class Terminal:
    """One command run in a pane (COLUMNS x ROWS) of a tmux server of its own (its socket in
    `directory`; close() kills that server only). The command starts only once the pane's output
    is being recorded (`tmux wait-for`), and the pane stays open after it ended, showing "exit=N",
    until close()."""

    def __init__(self, directory, argv, columns=120, rows=20):
        self.socket = os.path.join(directory, "tmux.sock")
        self.recording = os.path.join(directory, "pane.out")
        script = "%s -S %s wait-for go; %s; echo \"exit=$?\"; read _" % (
            TMUX, shlex.quote(self.socket), " ".join(shlex.quote(arg) for arg in argv))
        env = dict(os.environ)
        env.pop("TMUX", None)
        self.env = env
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "pane", "-x", str(columns), "-y", str(rows),
                  "/bin/sh", "-c", script)
        self.server_pid = int(self.tmux("display-message", "-p", "-t", "pane", "#{pid}"))
        self.tmux("pipe-pane", "-o", "-t", "pane", "cat > %s" % shlex.quote(self.recording))
        self.tmux("wait-for", "-S", "go")

    def tmux(self, *args):
        result = subprocess.run([TMUX, "-S", self.socket] + list(args), capture_output=True, text=True,
                                timeout=10, env=self.env, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, "tmux %s: %s" % (" ".join(args), result.stderr)
        return result.stdout

    def screen(self):
        """The pane's visible lines, trailing blank ones left out."""
        return self.tmux("capture-pane", "-p", "-t", "pane").rstrip("\n").split("\n")

    def keys(self, *keys):
        """Types `keys` (tmux key names: "q", "C-c", "Enter"; a literal "+" as "+") into the pane."""
        self.tmux("send-keys", "-t", "pane", *keys)

    def resize(self, columns, rows):
        self.tmux("resize-window", "-t", "pane", "-x", str(columns), "-y", str(rows))

    def show(self, fmt):
        """A tmux format of the pane now, such as "#{alternate_on}" (1 while the command shows
        the alternate screen) or "#{cursor_flag}" (1 while the cursor is visible)."""
        return self.tmux("display-message", "-p", "-t", "pane", fmt).strip()

    def wait_for_screen(self, predicate, message, timeout=10.0):
        """Waits until predicate(lines on screen) is true; returns those lines."""
        last = []

        def seen():
            last[:] = self.screen()
            return last[:] if predicate(last) else None

        return wait_until(seen, timeout, message, describe=lambda: "screen:\n" + "\n".join(last))

    def watch_until_exit(self, timeout=20.0):
        """Every distinct screen seen until the command printed exit=N; returns (screens, N)."""
        screens = []

        def ended():
            screen = self.screen()
            if not screens or screens[-1] != screen:
                screens.append(screen)
            return any(line.startswith("exit=") for line in screen)

        wait_until(ended, timeout, "the command in the pane to end", interval=0.02,
                   describe=lambda: "screens: %r" % screens[-3:])
        code = [int(line[len("exit="):]) for line in screens[-1] if line.startswith("exit=")][0]
        return screens, code

    def written(self):
        """Every byte the command wrote to the terminal (through the tty: "\\n" arrives as
        "\\r\\n"), once the recording holds the exit line."""
        def recorded():
            if not os.path.exists(self.recording):
                return None
            with open(self.recording, "rb") as f:
                data = f.read()
            return data if re.search(rb"exit=\d+\r\n", data) else None

        return wait_until(recorded, 10.0, "the pane's recording to hold the exit line")

    def close(self):
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True, timeout=10,
                       env=self.env)
        try:
            wait_until(lambda: pid_gone(self.server_pid), 10.0, "the tmux server to exit")
        except AssertionError:
            os.kill(self.server_pid, signal.SIGKILL)
            raise


def run_clusterd(args, timeout=15.0, cwd=None, env=None, private_runtime=False):
    """Runs clusterd to completion (check, a config error, a client): returns (code, stdout, stderr).
    private_runtime: in a mount namespace of its own with empty shared control directories (a
    client that searches them, or a start that would open its socket there)."""
    client = {"status", "reload", "scale", "stop"} & set(args)
    if client and not ({"--control", "-c", "--config"} & set(args)) and not private_runtime:
        raise AssertionError("a client run names its instance (--control or -c) unless it runs with "
                             "private_runtime=True: it would also find other clusterd instances on this machine")
    full_env = dict(os.environ)
    full_env.pop("NOTIFY_SOCKET", None)
    # A private runtime directory, as for Clusterd: a run that gets as far as its control socket
    # never meets another test's instance of the same name.
    runtime = tempfile.mkdtemp(prefix="cd-")
    full_env["RUNTIME_DIRECTORY"] = runtime
    if env:
        full_env.update(env)
    try:
        command = (private_runtime_wrapper() if private_runtime else []) + [BIN] + list(args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=cwd, env=full_env, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return result.returncode, result.stdout, result.stderr


# ---- more things a user checks: /proc, durations, timestamps, sockets, files

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) (\w+) clusterd\[\d+\]: (.*)$")


def log_time(line):
    """Seconds (float, since the epoch, local time) of a clusterd log line's timestamp."""
    m = LOG_LINE.match(line)
    if not m:
        raise AssertionError("not a clusterd log line: %r" % line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def log_level(line):
    m = LOG_LINE.match(line)
    return m.group(2) if m else None


def parse_duration(text):
    """Seconds in a duration as clusterd writes it: "0.4s", "1m30s", "2h5m", "250ms"."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    return sum(float(n) * units[u] for n, u in parts)


def proc_stat(pid):
    """/proc/PID/stat as a dict: state, ppid, pgrp, session, utime, stime (ticks); None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2]),
            "session": int(fields[3]), "utime": int(fields[11]), "stime": int(fields[12])}


def cpu_seconds(pid):
    """CPU time (user + system) pid itself has used so far, in seconds."""
    stat = proc_stat(pid)
    return (stat["utime"] + stat["stime"]) / os.sysconf("SC_CLK_TCK")


def pid_gone(pid):
    """True once pid is reaped (not even a zombie any more)."""
    return not os.path.exists("/proc/%d" % pid)


def can_connect(address, timeout=5.0):
    """True if a TCP or unix connection to address is accepted by the kernel (listen queue)."""
    try:
        sock = connect(address, timeout)
    except OSError:
        return False
    sock.close()
    return True


def connect(address, timeout=5.0):
    """A connected socket to "HOST:PORT", "[V6]:PORT" or "unix:PATH"."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address[len("unix:"):]
    else:
        host, port = split_host_port(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (host, port)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def can_listen(host, port):
    """True if a fresh socket can bind and listen on host:port (SO_REUSEADDR: TIME_WAIT is no
    obstacle, a listening socket still is)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def has_ipv6_loopback():
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        sock.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def write_file(directory, name, text, mode=0o644):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def toml_string(value):
    """A TOML basic string for value (paths, names)."""
    return json.dumps(value)


def read_reports(directory, prefix="report-"):
    """The JSON reports a test worker wrote into directory as PREFIX<pid>.json, by pid
    (report_worker.py's by default)."""
    reports = {}
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                report = json.load(f)
            reports[report["pid"]] = report
    return reports


def wait_for_reports(directory, count, timeout=10.0, describe=None):
    """Waits until at least `count` worker reports exist; returns {pid: report}."""
    def enough():
        reports = read_reports(directory)
        return reports if len(reports) >= count else None

    return wait_until(enough, timeout, "%d worker reports in %s" % (count, directory),
                      describe=describe)
