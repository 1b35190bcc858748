"""Safe as root, processes and the control socket (issue 13, attacks 5 and 7).

Attack 5: a worker's descendant that left the worker's process group (`setsid cmd &`) escaped
`clusterd stop` and kept the port, so the next start failed with "Address already in use". A stop
now also stops every process re-parented to clusterd (the stop signal, SIGKILL when the grace
ends) and waits for them; a reload or a scale-down leaves them alone.

Attack 7: idle control connections made `status` wait in the listen backlog (1,000 delayed it by
8 s, 2,600 made it time out). Connections are now capped per peer uid and the oldest idle ones are
shed, so with 5,000 idle connections open a new `status` still answers at once.
"""
import errno
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import harness
from harness import pid_alive, pid_gone, wait_until, worker

ORPHAN_WORKER = ["/bin/sh", worker("orphan_worker.sh")]
KINDS = ("holder", "plain", "stubborn", "child")


def orphan_pids(directory, kind=None):
    """{(kind, worker pid): orphan pid} from the pid files orphan_worker.sh wrote."""
    found = {}
    for name in os.listdir(directory):
        if not name.endswith(".pid"):
            continue
        file_kind, worker_pid = name[:-len(".pid")].split("-")
        if kind is None or file_kind == kind:
            with open(os.path.join(directory, name)) as f:
                found[(file_kind, int(worker_pid))] = int(f.read())
    return found


def start_orphan_workers(start_clusterd, tmpdir, workers, *extra, listen="127.0.0.1:0"):
    # The workers hold the socket but never accept on it: ready at their exec. Without a cgroup per
    # worker, which kills what a worker leaves when it exits (test_cgroup.py): these are the orphans
    # of a clusterd that cannot make cgroups (a unit without Delegate=yes, a container).
    clusterd = start_clusterd(["--workers", str(workers), "--listen", listen, "--ready", "exec",
                               "--set", "cgroup.mode=off", *extra, "--", *ORPHAN_WORKER],
                              tmpdir=tmpdir, env={"ORPHAN_DIR": tmpdir})
    address = clusterd.address()
    pids = clusterd.ready_pids(workers)
    wanted = len(KINDS) * workers
    orphans = wait_until(lambda: (lambda found: found if len(found) == wanted else None)(orphan_pids(tmpdir)),
                         10.0, "%d orphans' pid files" % wanted, describe=clusterd.log_tail)
    clusterd.extra_pids.update(orphans.values())   # killed at cleanup if the test fails early
    return clusterd, address, pids, orphans


def listening_inode(pid, fd=3):
    target = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    assert target.startswith("socket:["), target
    return int(target[len("socket:["):-1])


# ---- attack 5: a worker's descendant escapes the stop

def test_stop_ends_the_processes_a_worker_left_and_the_port_is_free_at_once(start_clusterd, tmpdir_short):
    clusterd, address, [worker_pid], orphans = start_orphan_workers(start_clusterd, tmpdir_short, 1, "--grace", "1s")
    holder = orphans[("holder", worker_pid)]
    # The holder has the listener itself, in a session of its own: the worker's group signal misses it.
    assert listening_inode(holder) == listening_inode(worker_pid)
    assert harness.proc_stat(holder)["session"] == holder != harness.proc_stat(worker_pid)["session"]

    started = time.monotonic()
    code, out, err = clusterd.control("stop")
    assert code == 0, out + err + clusterd.log_tail()
    assert clusterd.wait_exit(10.0) == 0, clusterd.log_tail()
    elapsed = time.monotonic() - started
    # Every one is gone (reaped, not even a zombie) by the time `clusterd stop` returns: the two
    # that take SIGTERM at once, and the two ignoring it after the 1 s grace.
    left = {kind: pid for (kind, _), pid in orphans.items() if not pid_gone(pid)}
    assert not left, "%s outlived clusterd\n%s" % (left, clusterd.log_tail())
    assert elapsed < 1.0 + 5.0, elapsed
    for kind in ("holder", "plain", "stubborn"):
        pid = orphans[(kind, worker_pid)]
        assert clusterd.count(r"stopping orphan pid=%d signal=TERM$" % pid) == 1, (kind, clusterd.log_tail())
    assert clusterd.count(r"stopping orphan pid=%d signal=KILL$" % orphans[("stubborn", worker_pid)]) == 1
    # The child was clusterd's only once the grace was over: SIGKILL at once, no TERM first.
    assert clusterd.count(r"stopping orphan pid=%d signal=KILL$" % orphans[("child", worker_pid)]) == 1
    assert clusterd.count(r"stopping orphan pid=%d signal=TERM$" % orphans[("child", worker_pid)]) == 0
    assert "exiting with orphans left" not in clusterd.log()

    # The port is free for the next start at once.
    host, port = harness.split_host_port(address)
    assert harness.can_listen(host, port)
    again = start_clusterd(["--workers", "1", "--listen", "%s:%d" % (host, port), "--ready", "exec", "--",
                            "/bin/sleep", "1000"])
    assert again.address() == "%s:%d" % (host, port)
    again.ready_pids(1)


def test_a_second_sigterm_kills_the_orphans_at_once(start_clusterd, tmpdir_short):
    clusterd, _, [worker_pid], orphans = start_orphan_workers(start_clusterd, tmpdir_short, 1, "--grace", "60s")
    stubborn = orphans[("stubborn", worker_pid)]
    clusterd.signal(signal.SIGTERM)
    clusterd.wait_for_log(r"stopping orphan pid=%d signal=TERM" % stubborn)
    assert not clusterd.exited() and pid_alive(stubborn)   # it ignores TERM, the grace is 60 s
    started = time.monotonic()
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(10.0) == 0, clusterd.log_tail()
    assert time.monotonic() - started < 10.0
    assert all(pid_gone(pid) for pid in orphans.values()), clusterd.log_tail()


def test_scale_down_and_reload_leave_the_orphans_alone(start_clusterd, tmpdir_short):
    clusterd, _, pids, orphans = start_orphan_workers(start_clusterd, tmpdir_short, 2, "--grace", "1s")
    code, out, err = clusterd.control("scale", "1")
    assert code == 0, out + err
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    # The workers they were left by are gone, so the orphans are clusterd's children now (all
    # but the stubborn one's child, whose parent lives).
    stopped = [pid for pid in pids if clusterd.count(r"worker stopped slot=\d gen=\d pid=%d " % pid)]
    assert len(stopped) == 2, clusterd.log_tail()
    wait_until(lambda: all(harness.proc_stat(pid)["ppid"] == clusterd.pid
                           for (kind, _), pid in orphans.items() if kind != "child"), 10.0,
               "the orphans re-parented to clusterd")
    assert all(pid_alive(pid) for pid in orphans.values())
    assert "stopping orphan" not in clusterd.log()
    # The reload's worker left its own: all are stopped with clusterd.
    wanted = len(KINDS) * 3
    orphans = wait_until(lambda: (lambda found: found if len(found) == wanted else None)(orphan_pids(tmpdir_short)),
                         10.0, "the reloaded worker's orphans too")
    clusterd.extra_pids.update(orphans.values())
    assert clusterd.stop() == 0
    assert all(pid_gone(pid) for pid in orphans.values()), clusterd.log_tail()


# ---- attack 7: slow control clients

FLOOD = 5000


@pytest.fixture
def many_fds():
    """Room for FLOOD sockets in this process (the test runs as root, which may raise the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle_connections(path, count, deadline):
    """`count` connected unix sockets that send nothing; a connect the full backlog refuses
    (EAGAIN) is tried again until `deadline`. Returns (connected sockets, how many never connected)."""
    connected, waiting = [], count
    while waiting and time.monotonic() < deadline:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            time.sleep(0.001)   # the backlog is full: give clusterd the CPU to drain it
            continue
        connected.append(sock)
        waiting -= 1
    return connected, waiting


def timed_status(clusterd, timeout):
    started = time.monotonic()
    try:
        code, out, err = clusterd.control("status", "--json", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "no answer within %.0fs" % timeout
    return time.monotonic() - started, (code, out, err)


SHED = '{"ok":false,"error":"too many control connections (at most 256 per user, 512 in all); this idle one ' \
       'was closed to make room"}\n'


def test_status_answers_promptly_with_5000_idle_connections_open(start_clusterd, many_fds):
    clusterd = start_clusterd(["--workers", "1", "--", "/bin/sleep", "1000"])
    clusterd.ready_pids(1)
    path = clusterd.control_path()
    flood, never = open_idle_connections(path, FLOOD, time.monotonic() + 20.0)
    try:
        assert never == 0, "%d of %d connects never got into the listen queue" % (never, FLOOD)
        elapsed, result = timed_status(clusterd, 15.0)
        sys.stderr.write("status with %d idle connections open: %s\n" % (FLOOD, elapsed))
        assert elapsed is not None, result
        code, out, err = result
        assert code == 0, out + err + clusterd.log_tail()
        assert elapsed < 2.0, elapsed
        # The flood's oldest were shed, each told why in one line; the newest stay open.
        closed = 0
        for sock in flood:
            try:
                text = sock.recv(4096)
            except BlockingIOError:
                continue
            closed += 1
            assert text in (SHED.encode(), b""), text
        assert closed >= FLOOD - 256, closed
        assert clusterd.status()["ok"]
        assert not clusterd.exited()
    finally:
        for sock in flood:
            sock.close()


SETPRIV = shutil.which("setpriv")

# Opens N idle connections to a control socket as whoever runs it, says how many, then holds them
# until its stdin closes.
FLOODER = r"""
import resource, socket, sys, time
path, count = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, deadline = [], time.monotonic() + 20
while len(held) < count and time.monotonic() < deadline:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        s.close(); time.sleep(0.001); continue
    held.append(s)
print(len(held), flush=True)
sys.stdin.read()
"""


def raw_status(path, timeout):
    """Seconds until a reply line came to `status` sent on a plain connection, and the line."""
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        # A unix socket's connect() fails at once (EAGAIN) while the backlog is full, as it can be
        # just after a flood: try again until the deadline, which counts that wait too.
        while True:
            try:
                sock.connect(path)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise
                time.sleep(0.005)
        sock.sendall(b"status\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return time.monotonic() - started, reply


@pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV, reason="needs root and setpriv to act as another user")
def test_a_flood_from_clusterds_own_uid_does_not_starve_root(start_clusterd, tmpdir_short):
    """clusterd runs as nobody, so both nobody and root may connect (the socket is 0600, nobody's);
    nobody opens 5000 idle connections, root's `status` is still answered at once."""
    nobody = pwd.getpwnam("nobody")
    os.chown(tmpdir_short, nobody.pw_uid, nobody.pw_gid)
    os.chmod(tmpdir_short, 0o700)
    path = os.path.join(tmpdir_short, "c.sock")
    as_nobody = [SETPRIV, "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups"]
    clusterd = start_clusterd(["--workers", "1", "--control", path, "--", "/bin/sleep", "1000"],
                              wrapper=as_nobody, tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    wait_until(lambda: os.path.exists(path), 10.0, "the control socket")
    flooder = subprocess.Popen(as_nobody + [sys.executable, "-c", FLOODER, path, str(FLOOD)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        opened = int(flooder.stdout.readline() or 0)
        elapsed, reply = raw_status(path, 15.0)
        sys.stderr.write("root's status with %d idle connections of nobody open: %.3fs\n" % (opened, elapsed))
        assert reply.startswith(b'{"ok":true'), reply
        assert elapsed < 2.0, elapsed
    finally:
        flooder.stdin.close()
        flooder.wait(10)
