"""clusterd under systemd, with the test acting as systemd: it owns the NOTIFY_SOCKET datagram
socket (and sets WATCHDOG_USEC) and checks what clusterd tells it and when: READY=1 only once every
worker is ready, RELOADING=1 + MONOTONIC_USEC then READY=1 around a reload, STOPPING=1 on stop,
STATUS= lines, WATCHDOG=1 pings at half the interval. Workers never see systemd's variables.
Socket activation: under systemd-socket-activate clusterd adopts the socket instead of binding,
and the shipped config takes the shipped socket unit's socket by its FileDescriptorName=.
"""
import array
import http.client
import os
import re
import signal
import socket
import struct
import tempfile
import threading
import time

import pytest

import harness
from harness import PYTHON, http_get, socket_inodes, wait_until, worker
from test_reload import read_notify_reports

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
# What the package installs as /etc/clusterd/clusterd.toml and clusterd.socket (test_packaging.py
# checks that the installed files are these).
SHIPPED_CONFIG = os.path.join(harness.SOURCE_DIR, "config", "clusterd.toml")
SHIPPED_SOCKET_UNIT = os.path.join(harness.SOURCE_DIR, "packaging", "systemd", "clusterd.socket")


class Datagram:
    def __init__(self, text, pid, log_lines):
        self.wall = time.time()
        self.monotonic = time.monotonic()   # CLOCK_MONOTONIC, the clock of MONOTONIC_USEC
        self.text = text
        self.pid = pid                      # the sender, from SCM_CREDENTIALS
        self.log_lines = log_lines          # clusterd's log lines written when it arrived

    def fields(self):
        return dict(line.split("=", 1) for line in self.text.split("\n") if "=" in line)

    def __repr__(self):
        return "%.3f %r" % (self.monotonic, self.text)


class FakeSystemd:
    """The service manager's side of NOTIFY_SOCKET: a SOCK_DGRAM unix socket with SO_PASSCRED,
    read by a thread that records each datagram with its arrival time, its sender's pid and how
    many lines clusterd's log (log_path) had by then."""

    def __init__(self, directory, log_path):
        self.path = os.path.join(directory, "systemd-notify.sock")
        self.log_path = log_path
        self.datagrams = []
        self.fd_store = {}   # FDNAME: [fd, ...], as systemd's FileDescriptorStoreMax= keeps them
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.receive, daemon=True)
        self.thread.start()

    def receive(self):
        while not self.closed.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 64))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            fds = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(array.array("i", payload[:len(payload) - len(payload) % 4]))
            datagram = Datagram(data.decode(), pid, self.log_line_count())
            self.keep(datagram.fields(), fds)
            self.datagrams.append(datagram)

    def keep(self, fields, fds):
        """The fd store: FDSTORE=1 keeps the fds under FDNAME (one already kept, the same socket, is
        not kept twice), FDSTOREREMOVE=1 closes that name's; every other fd is closed."""
        name = fields.get("FDNAME", "stored")
        if fields.get("FDSTORE") == "1":
            kept = self.fd_store.setdefault(name, [])
            for fd in fds:
                if any(os.fstat(fd).st_ino == os.fstat(old).st_ino for old in kept):
                    os.close(fd)
                else:
                    kept.append(fd)
            return
        if fields.get("FDSTOREREMOVE") == "1":
            for fd in self.fd_store.pop(name, []):
                os.close(fd)
        for fd in fds:
            os.close(fd)

    def log_line_count(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().count("\n")
        except FileNotFoundError:
            return 0

    def env(self, watchdog_usec=None):
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def messages(self, pings=False):
        """Datagrams so far, without WATCHDOG=1 pings unless asked."""
        return [d for d in list(self.datagrams) if pings or d.text != "WATCHDOG=1"]

    def wait_for(self, pattern, count=1, timeout=10.0, describe=None, after=None):
        """Waits for `count` datagrams whose text matches pattern (a regex), among those that
        arrived after the datagram `after` if given; returns them all."""
        regex = re.compile(pattern)

        def found():
            datagrams = list(self.datagrams)
            if after is not None:
                datagrams = datagrams[datagrams.index(after) + 1:]
            matching = [d for d in datagrams if regex.search(d.text)]
            return matching if len(matching) >= count else None

        return wait_until(found, timeout, "datagram /%s/ x%d" % (pattern, count),
                          describe=lambda: "received: %r\n%s"
                          % (self.messages(), describe() if describe else ""))

    def close(self):
        self.closed.set()
        self.thread.join(5.0)
        self.sock.close()
        for fds in self.fd_store.values():
            for fd in fds:
                os.close(fd)


@pytest.fixture
def systemd(tmpdir_short):
    fake = FakeSystemd(tmpdir_short, os.path.join(tmpdir_short, "clusterd.log"))
    yield fake
    fake.close()


def line_number(clusterd, pattern):
    """1-based number of the first log line matching pattern."""
    regex = re.compile(pattern)
    for number, line in enumerate(clusterd.log().splitlines(), start=1):
        if regex.search(line):
            return number
    raise AssertionError("no log line /%s/\n%s" % (pattern, clusterd.log_tail()))


def test_ready_only_once_every_worker_is_ready_with_status_lines(systemd, start_clusterd, tmpdir_short):
    reports = os.path.join(tmpdir_short, "reports")
    os.mkdir(reports)
    # slot 0 is ready after 0.5 s, slot 1 after 1.5 s
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--ready", "notify", "--",
                               PYTHON, worker("notify_worker.py"), "--ready-after", "0.5",
                               "--slot-delay", "1", "--report", reports],
                              tmpdir=tmpdir_short, env=systemd.env(watchdog_usec=2000000))
    [ready] = systemd.wait_for(r"^READY=1", describe=clusterd.log_tail)
    pids = clusterd.ready_pids(2)
    texts = [d.text for d in systemd.messages()]
    assert texts == ["STATUS=0/2 workers ready", "STATUS=1/2 workers ready",
                     "READY=1\nSTATUS=2/2 workers ready"], texts
    by_pid = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(read_notify_reports(reports)),
                        10.0, "two worker reports")
    # Not before the slower worker sent its own READY=1...
    assert ready.wall >= max(report["ready_sent_at"] for report in by_pid.values())
    # ...and not before clusterd had logged both workers ready.
    assert ready.log_lines >= line_number(clusterd, r"all workers ready workers=2")
    assert sorted(pids) == sorted(by_pid)
    assert {d.pid for d in systemd.datagrams} == {clusterd.pid}     # NotifyAccess=main holds
    # The workers got notify sockets of their own, never systemd's, and no watchdog (clusterd's
    # WATCHDOG_USEC is for clusterd; ready.watchdog is unset).
    sockets = [report["notify_socket"] for report in by_pid.values()]
    assert systemd.path not in sockets and None not in sockets and len(set(sockets)) == 2
    assert all(report["watchdog_usec"] is None for report in by_pid.values())
    assert http_get(clusterd.address())["pid"] in pids


def test_reloading_then_ready_around_a_reload_and_stopping_at_sigterm(systemd, start_clusterd,
                                                                       tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--graceful"],
                              tmpdir=tmpdir_short, env=systemd.env(watchdog_usec=1000000))
    systemd.wait_for(r"^READY=1", describe=clusterd.log_tail)
    address = clusterd.address()

    # Workers never see what systemd set for clusterd: their NOTIFY_SOCKET is their own.
    answer = http_get(address)
    assert answer["env"]["NOTIFY_SOCKET"] != systemd.path
    for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        assert name not in answer["env"], name

    before = time.monotonic()
    clusterd.signal(signal.SIGHUP)
    [reloading] = systemd.wait_for(r"^RELOADING=1\n", describe=clusterd.log_tail)
    fields = reloading.fields()
    assert set(fields) == {"RELOADING", "MONOTONIC_USEC"}, reloading.text
    # MONOTONIC_USEC: clusterd's CLOCK_MONOTONIC when the reload began, in microseconds.
    assert before * 1e6 <= int(fields["MONOTONIC_USEC"]) <= reloading.monotonic * 1e6
    ready_again = systemd.wait_for(r"^READY=1", count=2, describe=clusterd.log_tail)[1]
    assert ready_again.log_lines >= line_number(clusterd, r"reload finished generation=2 workers=2")
    between = [d.text for d in systemd.messages()
               if reloading.monotonic < d.monotonic < ready_again.monotonic]
    assert "STATUS=2/2 workers ready, reloading to generation 2" in between, between
    assert not [text for text in between if "READY=1" in text]
    # ...and the status no longer says it is reloading.
    [status] = systemd.wait_for(r"^STATUS=2/2 workers ready$")
    assert status.monotonic >= ready_again.monotonic

    clusterd.signal(signal.SIGTERM)
    [stopping] = systemd.wait_for(r"^STOPPING=1$", describe=clusterd.log_tail)
    assert clusterd.wait_exit(15.0) == 0
    assert stopping.log_lines < line_number(clusterd, r"stopped code=0")
    after = [d.text for d in systemd.messages() if d.monotonic > stopping.monotonic]
    assert not [text for text in after if "READY=1" in text or "RELOADING=1" in text], after
    assert {d.pid for d in systemd.datagrams} == {clusterd.pid}


def test_status_follows_a_worker_that_dies_and_comes_back(systemd, start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--", "/bin/sleep", "1000"], tmpdir=tmpdir_short,
                              env=systemd.env())
    [ready] = systemd.wait_for(r"^READY=1")
    pids = clusterd.ready_pids(2)
    os.kill(pids[0], signal.SIGKILL)
    [down] = systemd.wait_for(r"^STATUS=1/2 workers ready$", after=ready, describe=clusterd.log_tail)
    [up] = systemd.wait_for(r"^STATUS=2/2 workers ready$", after=down, describe=clusterd.log_tail)
    clusterd.ready_pids(3)
    # READY=1 is said once: a worker coming back is not a new start-up.
    assert len([d for d in systemd.datagrams if "READY=1" in d.text]) == 1


def test_ready_again_after_an_abandoned_reload(systemd, start_clusterd, tmpdir_short):
    def write(never_ready):
        command = [PYTHON, worker("notify_worker.py")] + (["--never-ready"] if never_ready else [])
        return harness.write_file(tmpdir_short, "clusterd.toml", (
            "workers = 1\ncommand = [%s]\n[ready]\nmode = \"notify\"\ntimeout = \"1s\"\n"
            % ", ".join(harness.toml_string(part) for part in command)))

    clusterd = start_clusterd(["-c", write(False)], tmpdir=tmpdir_short, env=systemd.env())
    systemd.wait_for(r"^READY=1", describe=clusterd.log_tail)
    write(True)
    clusterd.signal(signal.SIGHUP)
    [reloading] = systemd.wait_for(r"^RELOADING=1\n", describe=clusterd.log_tail)
    ready_again = systemd.wait_for(r"^READY=1", count=2, describe=clusterd.log_tail)[1]
    assert ready_again.monotonic - reloading.monotonic >= 0.9       # the 1 s ready timeout
    assert ready_again.log_lines >= line_number(clusterd,
                                                r"reload abandoned: slot=0 gen=2 not ready within 1s")


def test_watchdog_pings_at_half_the_interval(systemd, start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "1", "--", "/bin/sleep", "1000"], tmpdir=tmpdir_short,
                              env=systemd.env(watchdog_usec=1000000))
    [first] = systemd.wait_for(r"^WATCHDOG=1$", describe=clusterd.log_tail)
    assert "systemd watchdog enabled timeout=1s ping_every=500ms" in clusterd.log()
    # A measurement window, not synchronisation: how many pings arrive in 3 s (about 6 at one
    # per 0.5 s; far more would be a busy loop, far fewer a missed deadline).
    wait_until(lambda: time.monotonic() >= first.monotonic + 3.0, 10.0, "3 s of pings")
    window = [d for d in systemd.messages(pings=True)
              if d.text == "WATCHDOG=1" and first.monotonic <= d.monotonic <= first.monotonic + 3.0]
    assert 3 <= len(window) <= 9, window
    assert {d.pid for d in systemd.datagrams} == {clusterd.pid}


def test_no_watchdog_pings_when_watchdog_pid_names_another_process(systemd, start_clusterd, tmpdir_short):
    env = dict(systemd.env(watchdog_usec=1000000), WATCHDOG_PID="1")
    clusterd = start_clusterd(["--workers", "1", "--", "/bin/sleep", "1000"], tmpdir=tmpdir_short, env=env)
    systemd.wait_for(r"^READY=1", describe=clusterd.log_tail)
    clusterd.signal(signal.SIGTERM)
    systemd.wait_for(r"^STOPPING=1$")
    assert clusterd.wait_exit(15.0) == 0
    # With the watchdog on, the first ping goes out before READY=1 (see the test above).
    assert not [d for d in systemd.datagrams if d.text.startswith("WATCHDOG")]
    assert "systemd watchdog enabled" not in clusterd.log()


# ---- socket activation


def listening_sockets():
    """{inode: what} of every listening TCP and unix socket on the machine (this network
    namespace); what is "tcp" or the unix socket's path."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":            # TCP_LISTEN
                        sockets[int(fields[9])] = "tcp"
        except FileNotFoundError:
            pass
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[3], 16) & 0x10000:         # __SO_ACCEPTCON: listening
                sockets[int(fields[6])] = fields[7] if len(fields) > 7 else ""
    return sockets


def listeners_held(pid, control_socket=None):
    """Inodes of the listening sockets pid holds, its control socket left out."""
    held = socket_inodes(pid)
    return {inode for inode, what in listening_sockets().items()
            if inode in held and (control_socket is None or what != control_socket)}


def socket_activate(address, fdname, runtime_directory):
    """A wrapper that runs clusterd the way systemd does with a socket unit: systemd-socket-activate
    binds ADDRESS and execs clusterd with it as fd 3 named FDNAME once a connection comes in. It
    passes on no environment but TERM, PATH, USER, HOME and what -E names, so the instance's own
    runtime directory is named again: without it clusterd would open its control socket in
    /run/clusterd, shared with every other clusterd on this machine."""
    return [SOCKET_ACTIVATE, "-l", address, "--fdname=" + fdname,
            "-E", "RUNTIME_DIRECTORY=" + runtime_directory]


@pytest.mark.skipif(not os.access(SOCKET_ACTIVATE, os.X_OK), reason="needs systemd-socket-activate")
def test_socket_activation_adopts_the_socket_and_workers_serve_it(start_clusterd, tmpdir_short):
    # A unix socket path: race-free, unlike picking a "free" TCP port in advance. The config
    # file has no [[listen]]: clusterd takes what it is given.
    path = os.path.join(tmpdir_short, "s.sock")
    config = harness.write_file(tmpdir_short, "clusterd.toml", "workers = 2\ncommand = [%s]\n" % ", ".join(
        harness.toml_string(part) for part in [PYTHON, worker("http_worker.py"), "--graceful"]))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short,
                              wrapper=socket_activate(path, "http", tmpdir_short))
    # systemd-socket-activate binds, then waits for the first connection before it execs
    # clusterd in place (same pid).
    wait_until(lambda: os.path.exists(path) and listeners_held(clusterd.pid), 10.0,
               "systemd-socket-activate listening", describe=clusterd.log_tail)
    [activated] = listeners_held(clusterd.pid)
    first = http_get("unix:" + path, timeout=10.0)      # this connection starts clusterd

    address = clusterd.address("http")
    assert address == "unix:" + path
    pids = clusterd.ready_pids(2)
    assert first["pid"] in pids
    assert first["listen"]["LISTEN_FDNAMES"] == "http" and first["listen"]["LISTEN_FDS"] == "1"
    assert first["served_address"] == path
    # clusterd bound no listener itself: the only listening socket it holds, apart from its
    # control socket, is the one it inherited.
    control_socket = clusterd.control_path()
    assert os.path.dirname(control_socket) == tmpdir_short      # its own, not /run/clusterd's
    assert listeners_held(clusterd.pid, control_socket) == {activated}
    seen = set()
    wait_until(lambda: seen.add(http_get(address)["pid"]) or seen == set(pids), 10.0,
               "answers from both workers", describe=lambda: str(seen))

    # A reload keeps the inherited socket and hands it to the new generation.
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    new = [int(m.group(1)) for m in clusterd.matches(r"worker ready slot=\d gen=2 pid=(\d+)")]
    clusterd.seen_pids.update(new)
    answer = http_get(address)
    assert answer["pid"] in new and answer["served_address"] == path
    assert listeners_held(clusterd.pid, control_socket) == {activated}

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert os.path.exists(path)        # an adopted socket file belongs to the socket unit


def unit_settings(path, section):
    """{key: [values]} of one section of a systemd unit file."""
    settings, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
            elif current == section:
                key, _, value = line.partition("=")
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def free_tcp_port():
    """A port of 127.0.0.1 nothing listens on right now (it may be taken before it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not os.access(SOCKET_ACTIVATE, os.X_OK), reason="needs systemd-socket-activate")
def test_shipped_config_takes_the_shipped_socket_units_socket_by_its_name(start_clusterd):
    unit = unit_settings(SHIPPED_SOCKET_UNIT, "Socket")
    [fdname] = unit["FileDescriptorName"]
    [listen] = unit["ListenStream"]
    assert re.fullmatch(r"\d+", listen), listen     # a port: every address
    # The unit's port on every address could be taken on this machine: the same TCP socket on a
    # free port of 127.0.0.1 instead (tried again should another program take it first).
    # The shipped example's worker is /bin/sleep, which serves nothing: to see a request reach a
    # worker, PROGRAM on the command line (it replaces `command`) is the test's HTTP worker, told
    # to serve the listener of the unit's name. All else is the shipped config.
    for _ in range(5):
        port = free_tcp_port()
        runtime = tempfile.mkdtemp(prefix="cd-")
        clusterd = start_clusterd(
            ["-c", SHIPPED_CONFIG, "--", PYTHON, worker("http_worker.py"), "--name", fdname],
            tmpdir=runtime, wrapper=socket_activate("127.0.0.1:%d" % port, fdname, runtime))
        wait_until(lambda: clusterd.exited() or listeners_held(clusterd.pid), 10.0,
                   "systemd-socket-activate listening", describe=clusterd.log_tail)
        if not clusterd.exited():
            break
        assert "Address already in use" in clusterd.log(), clusterd.log_tail()
    else:
        raise AssertionError("no free port for systemd-socket-activate in 5 tries")
    address = "127.0.0.1:%d" % port
    [activated] = listeners_held(clusterd.pid)
    first = http_get(address, timeout=10.0)      # this connection starts clusterd

    assert clusterd.matches(r"started name=(\S+)")[0].group(1) == "example"
    # clusterd listens on the socket it was given, under the unit's name: the one
    # systemd-socket-activate bound, not a port of the kernel's choosing (the shipped
    # config's address is 127.0.0.1:0), and it bound no socket of its own.
    assert [m.groups() for m in clusterd.matches(r"listening name=(\S+) address=(\S+)")] == [
        (fdname, address)]
    control_socket = clusterd.control_path()
    assert os.path.dirname(control_socket) == runtime
    assert listeners_held(clusterd.pid, control_socket) == {activated}

    # The request went through to a worker, which got the socket under the unit's name.
    [count] = clusterd.wait_for_log(r"all workers ready workers=(\d+)", timeout=30.0)
    pids = clusterd.ready_pids(int(count.group(1)))
    assert first["pid"] in pids
    assert first["listen"] == {"LISTEN_FDS": "1", "LISTEN_FDNAMES": fdname, "LISTEN_PID": str(first["pid"])}
    assert first["served_address"] == ["127.0.0.1", port]
    assert first["env"].get("APP_ENV") == "production"        # the shipped config's [env]

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(40.0) == 0, clusterd.log_tail()


# ---- the fd store: listening sockets that outlive a killed clusterd


STORED_HTTP = "clusterd-stored.http"   # the FDNAME clusterd keeps listener "http" under


class RefusalCounter(threading.Thread):
    """New connections with one GET each, until stopped (at most 60 s, 20,000 requests): counts
    the answers, the refused connections and the other failures (a connection the killed worker
    had accepted)."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.host, self.port = harness.split_host_port(address)
        self.answered, self.refused, self.failed = [], 0, []
        self.stop_now = threading.Event()

    def run(self):
        deadline = time.monotonic() + 60.0
        for _ in range(20000):
            if self.stop_now.is_set() or time.monotonic() > deadline:
                return
            connection = http.client.HTTPConnection(self.host, self.port, timeout=20.0)
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                self.answered.append((time.monotonic(), response.getheader("X-Worker-Pid") or response.read()))
            except ConnectionRefusedError:
                self.refused += 1
            except (OSError, http.client.HTTPException) as error:
                self.failed.append(repr(error))
            finally:
                connection.close()

    def stop(self):
        self.stop_now.set()
        self.join(30.0)


def started_with_stored_sockets(systemd, names):
    """A wrapper that starts clusterd as systemd does after a restart: the fds of the fd store at
    3, 4, … with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID; and those fds, for pass_fds."""
    fds = [fd for name in names for fd in systemd.fd_store[name]]
    script = ("import os, sys\n"
              "fds = [int(fd) for fd in sys.argv[1].split(',')]\n"
              "for index, fd in enumerate(fds):\n"
              "    os.dup2(fd, 3 + index)\n"
              "for fd in fds:\n"
              "    if fd >= 3 + len(fds):\n"
              "        os.close(fd)\n"
              "os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2], LISTEN_PID=str(os.getpid()))\n"
              "os.execv(sys.argv[3], sys.argv[3:])\n")
    return [PYTHON, "-c", script, ",".join(map(str, fds)), ":".join(names)], fds


def test_a_killed_clusterds_listening_socket_waits_in_systemds_fd_store(systemd, start_clusterd, tmpdir_short):
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 2
command = [%s]

[[listen]]
name = "http"
address = "127.0.0.1:0"
reuseport = "shared"
""" % ", ".join(harness.toml_string(part) for part in [PYTHON, worker("http_worker.py")]))
    first = start_clusterd(["-c", config], tmpdir=tmpdir_short, env=systemd.env())
    address = first.address("http")
    first_pids = first.ready_pids(2)
    systemd.wait_for(r"^FDSTORE=1\nFDNAME=clusterd-stored\.http$")
    [stored] = wait_until(lambda: systemd.fd_store.get(STORED_HTTP), 10.0, "the socket in the fd store")
    assert os.fstat(stored).st_ino in listeners_held(first.pid, first.control_path())

    load = RefusalCounter(address)
    load.start()
    try:
        wait_until(lambda: len(load.answered) >= 20, 10.0, "answers before the kill")
        first.signal(signal.SIGKILL)
        first.wait_exit()
        wait_until(lambda: all(not harness.pid_alive(pid) for pid in first_pids), 10.0, "the workers gone with it")
        killed_at = time.monotonic()
        # As systemd's Restart=on-failure: a new clusterd gets the stored socket back by its name.
        wrapper, fds = started_with_stored_sockets(systemd, [STORED_HTTP])
        second = start_clusterd(["-c", config], tmpdir=tmpdir_short, env=systemd.env(), wrapper=wrapper, pass_fds=fds)
        second_pids = second.ready_pids(2)
        assert second.address("http") == address
        second.wait_for_log(r"listening on the socket kept in systemd's fd store name=http$")
        wait_until(lambda: len([a for a in load.answered if a[0] > killed_at]) >= 20, 20.0, "answers after the restart")
    finally:
        load.stop()
    assert load.refused == 0, (load.refused, load.failed)
    # At most the requests the killed workers had accepted fail; none waits in vain.
    assert len(load.failed) <= 2, load.failed
    second.seen_pids.update(second_pids)
    # The second clusterd keeps the same socket in the store: still one.
    systemd.wait_for(r"^FDSTORE=1\nFDNAME=clusterd-stored\.http$", count=2)
    assert len(systemd.fd_store[STORED_HTTP]) == 1


def test_a_stored_socket_no_listener_takes_any_more_is_dropped_and_the_start_goes_on(systemd, start_clusterd,
                                                                                      tmpdir_short):
    # The config changed while clusterd was down: its listener has another name now.
    def config(name):
        return harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
command = [%s]

[[listen]]
name = "%s"
address = "127.0.0.1:0"
reuseport = "shared"
""" % (", ".join(harness.toml_string(part) for part in [PYTHON, worker("http_worker.py")]), name))
    first = start_clusterd(["-c", config("http")], tmpdir=tmpdir_short, env=systemd.env())
    first.ready_pids(1)
    wait_until(lambda: systemd.fd_store.get(STORED_HTTP), 10.0, "the socket in the fd store")
    first.signal(signal.SIGKILL)
    first.wait_exit()
    wrapper, fds = started_with_stored_sockets(systemd, [STORED_HTTP])
    second = start_clusterd(["-c", config("web")], tmpdir=tmpdir_short, env=systemd.env(), wrapper=wrapper,
                            pass_fds=fds)
    [pid] = second.ready_pids(1)
    assert http_get(second.address("web"))["pid"] == pid
    second.wait_for_log(r"closing a socket systemd's fd store kept that no listener takes now name=http$")
    systemd.wait_for(r"^FDSTOREREMOVE=1\nFDNAME=clusterd-stored\.http$")
    systemd.wait_for(r"^FDSTORE=1\nFDNAME=clusterd-stored\.web$")
    wait_until(lambda: STORED_HTTP not in systemd.fd_store and systemd.fd_store.get("clusterd-stored.web"), 10.0,
               "the store holding the new listener only", describe=lambda: str(systemd.fd_store))


@pytest.mark.skipif(not os.access(SOCKET_ACTIVATE, os.X_OK), reason="needs systemd-socket-activate")
def test_a_socket_units_sockets_are_not_stored_again(systemd, start_clusterd, tmpdir_short):
    # systemd passes a socket unit's sockets and the fd store's together: storing the unit's would
    # pass it twice after a restart.
    path = os.path.join(tmpdir_short, "s.sock")
    config = harness.write_file(tmpdir_short, "clusterd.toml", "workers = 1\ncommand = [%s]\n" % ", ".join(
        harness.toml_string(part) for part in [PYTHON, worker("http_worker.py")]))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short,
                              wrapper=socket_activate(path, "http", tmpdir_short) + ["-E", "NOTIFY_SOCKET=" + systemd.path])
    wait_until(lambda: os.path.exists(path) and listeners_held(clusterd.pid), 10.0, "systemd-socket-activate listening")
    http_get("unix:" + path, timeout=10.0)
    clusterd.ready_pids(1)
    systemd.wait_for(r"^READY=1")
    assert not [d for d in systemd.messages() if "FDSTORE" in d.text], systemd.messages()
    assert systemd.fd_store == {}
