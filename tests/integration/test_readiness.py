"""Readiness: `--ready notify` waits for the worker's own READY=1 (sent by hand, by python3-systemd or
by systemd-notify from a shell wrapper) and gates reloads on it; a worker that never sends it is
stopped after ready.timeout and restarted with backoff; `--ready DURATION` counts a worker ready
once it stayed up that long; datagrams from strangers are ignored; the worker watchdog kills a
worker that stops sending WATCHDOG=1 and leaves alone one that keeps sending it.
"""
import os
import pwd
import re
import signal
import socket
import time

import pytest

import harness
from harness import PYTHON, http_get, log_time, parse_duration, wait_until, worker
from test_reload import read_notify_reports

READY = r"worker ready slot=(\d+) gen=(\d+) pid=(\d+)"
SPAWNED = r"worker spawned slot=(\d+) gen=(\d+) pid=(\d+)"


def report_of(directory, pid, key=None, timeout=10.0):
    """The notify_worker report of pid, once it has `key`."""
    def found():
        report = read_notify_reports(directory).get(pid)
        return report if report and (key is None or report.get(key) is not None) else None

    return wait_until(found, timeout, "report of pid %d with %s" % (pid, key))


def reports_dir(tmpdir):
    path = os.path.join(tmpdir, "reports")
    os.mkdir(path)
    return path


def time_of(clusterd, pattern):
    [match] = clusterd.wait_for_log(pattern)
    return log_time(match.string)


def line_index(clusterd, pattern):
    lines = clusterd.log().splitlines()
    for index, line in enumerate(lines):
        if re.search(pattern, line):
            return index
    raise AssertionError("no log line /%s/\n%s" % (pattern, clusterd.log_tail()))


# ---- notify mode


def test_notify_mode_counts_a_worker_ready_only_after_its_ready_1(start_clusterd, tmpdir_short):
    reports = reports_dir(tmpdir_short)
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--ready", "notify",
                               "--log-level", "debug", "--", PYTHON, worker("notify_worker.py"),
                               "--ready-after", "1", "--report", reports], tmpdir=tmpdir_short)
    pids = clusterd.ready_pids(2)
    clusterd.wait_for_log(r"all workers ready workers=2")
    for pid in pids:
        report = report_of(reports, pid, "ready_sent_at")
        spawned = time_of(clusterd, r"worker spawned slot=\d gen=1 pid=%d" % pid)
        ready = time_of(clusterd, r"worker ready slot=\d gen=1 pid=%d" % pid)
        assert ready >= report["ready_sent_at"] - 0.002      # the log has ms precision
        assert ready - spawned >= 0.95, "ready %.3fs after spawn" % (ready - spawned)
        # Its own notify socket: not shared, not clusterd's (clusterd has none here).
        assert report["notify_socket"].startswith("/")
        assert report["watchdog_usec"] is None
    sockets = {report_of(reports, pid)["notify_socket"] for pid in pids}
    assert len(sockets) == 2
    assert http_get(clusterd.address())["pid"] in pids


def test_worker_never_ready_is_stopped_after_the_timeout_and_restarted_with_backoff(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--ready", "notify", "--ready-timeout", "1s",
                               "--set", "restart.delay=1s", "--log-level", "debug", "--",
                               PYTHON, worker("notify_worker.py"), "--never-ready"])
    not_ready = r"worker not ready in time slot=0 gen=1 not ready within 1s pid=(\d+)"
    clusterd.wait_for_log(not_ready, count=2, timeout=15.0)
    spawns = clusterd.wait_for_log(SPAWNED, count=3, timeout=15.0)
    exits = clusterd.matches(r"worker exited slot=0 gen=1 pid=(\d+) status=\S+ uptime=\S+ "
                             r"next_restart_in=(\S+)")
    late = clusterd.matches(not_ready)
    clusterd.seen_pids.update(int(m.group(3)) for m in spawns)
    assert clusterd.count(r"worker ready") == 0
    assert len(exits) >= 2, clusterd.log_tail()
    for spawn, timeout_line, exit_line in zip(spawns, late, exits):
        pid = spawn.group(3)
        assert timeout_line.group(1) == pid and exit_line.group(1) == pid
        waited = log_time(timeout_line.string) - log_time(spawn.string)
        assert 0.95 <= waited <= 5.0, (waited, clusterd.log_tail())    # stopped after ready.timeout
    # A failed start, like a crash: the first restart is immediate, the second backs off
    # (restart.delay=1s: 0.5-1 s), and clusterd waits that long before spawning again.
    first_delay, second_delay = (parse_duration(m.group(2)) for m in exits[:2])
    assert first_delay == 0.0
    assert 0.45 <= second_delay <= 1.05, second_delay
    gap = log_time(spawns[2].string) - log_time(exits[1].string)
    assert gap >= second_delay - 0.06, (gap, second_delay)
    assert not clusterd.exited()


def test_extend_timeout_usec_gives_a_slow_worker_more_time(start_clusterd):
    # ready.timeout is 1 s; the worker asks for 3 s more at once and is ready after 1.5 s.
    clusterd = start_clusterd(["--workers", "1", "--ready", "notify", "--ready-timeout", "1s", "--",
                               PYTHON, worker("notify_worker.py"), "--extend-timeout", "3",
                               "--ready-after", "1.5"])
    [pid] = clusterd.ready_pids(1)
    assert clusterd.count(r"not ready in time") == 0
    assert clusterd.count(r"worker (exited|stopped)") == 0
    assert harness.pid_alive(pid)


def test_uptime_mode_counts_a_worker_ready_once_it_stayed_up(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--ready", "1s",
                               "--log-level", "debug", "--", PYTHON, worker("http_worker.py")])
    [pid] = clusterd.ready_pids(1)
    waited = time_of(clusterd, READY) - time_of(clusterd, SPAWNED)
    assert 0.99 <= waited <= 5.0, waited
    assert http_get(clusterd.address())["pid"] == pid


def test_uptime_mode_never_counts_a_worker_that_dies_sooner(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--ready", "1s", "--", PYTHON,
                               worker("http_worker.py"), "--exit-after", "0.3"])
    exits = clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=(\d+) status=exit:1 ", count=3)
    clusterd.seen_pids.update(int(m.group(1)) for m in exits)
    assert clusterd.count(r"worker ready") == 0
    assert "all workers ready" not in clusterd.log()


# ---- other ways of sending READY=1, gating a reload


WORKERS = {
    "python3-systemd": [PYTHON, worker("pysystemd_worker.py"), "--ready-after", "1"],
    "systemd-notify": ["/bin/sh", worker("systemd_notify_worker.sh"), "1"],
}


@pytest.mark.parametrize("kind", sorted(WORKERS))
def test_library_and_tool_notifications_make_workers_ready_and_gate_a_reload(start_clusterd, kind):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--ready", "notify",
                               "--ready-timeout", "10s", "--log-level", "debug", "--"] + WORKERS[kind])
    address = clusterd.address()
    old = {int(m.group(1)): int(m.group(3)) for m in clusterd.wait_for_log(READY, count=2)}
    clusterd.seen_pids.update(old.values())
    for slot, pid in old.items():
        waited = time_of(clusterd, r"worker ready slot=%d gen=1 " % slot) - \
            time_of(clusterd, r"worker spawned slot=%d gen=1 " % slot)
        assert 0.95 <= waited < 4.5, waited    # its own 1 s start-up; no 5 s barrier timeout
    seen = {}
    wait_until(lambda: seen.update({http_get(address)["pid"]: True}) or set(seen) == set(old.values()),
               10.0, "answers from both workers", describe=lambda: str(seen))

    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2", timeout=15.0)
    started = time_of(clusterd, r"reload started generation=2 ")
    new = {int(m.group(1)): int(m.group(3))
           for m in clusterd.matches(r"worker ready slot=(\d+) gen=(2) pid=(\d+)")}
    clusterd.seen_pids.update(new.values())
    assert set(new) == {0, 1}
    for slot in (0, 1):
        ready_line = r"worker ready slot=%d gen=2 " % slot
        # Gated: each new worker counted only after its own READY=1, a second after it started,
        # and the old worker of its slot stopped only after that.
        waited = time_of(clusterd, ready_line) - time_of(clusterd, r"worker spawned slot=%d gen=2 " % slot)
        assert waited >= 0.95, waited
        assert line_index(clusterd, ready_line) < \
            line_index(clusterd, r"worker stopped slot=%d gen=1 pid=%d " % (slot, old[slot]))
    assert time_of(clusterd, r"reload finished generation=2 ") - started >= 1.9   # batch 1: two start-ups
    answer = http_get(address)
    assert answer["pid"] in new.values() and answer["generation"] == "2"
    assert answer["env"]["NOTIFY_SOCKET"].startswith("/")
    assert "Failed to invoke barrier" not in clusterd.log()


def nobody_exists():
    try:
        pwd.getpwnam("nobody")
        return True
    except KeyError:
        return False


@pytest.mark.skipif(os.geteuid() != 0 or not nobody_exists(), reason="needs root and a user 'nobody'")
def test_systemd_notify_of_an_unprivileged_worker_counts_from_its_own_pid(start_clusterd):
    # Not root, systemd-notify cannot speak for its parent: it sends READY=1 with its own pid, a
    # child of the worker's shell, which clusterd must accept as the worker's descendant.
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--ready", "notify",
                               "--set", "user=nobody", "--log-level", "debug", "--"]
                              + ["/bin/sh", worker("systemd_notify_worker.sh"), "0"], cwd="/")
    [pid] = clusterd.ready_pids(1)
    answer = http_get(clusterd.address())
    assert answer["pid"] == pid and answer["uid"] == pwd.getpwnam("nobody").pw_uid
    # systemd-notify waited for its BARRIER=1 to be answered (no 5 s timeout). Its BARRIER=1
    # datagram itself may be logged as dropped at debug level: systemd-notify exits as soon as
    # the barrier's fd is closed, so it can be gone before clusterd checks who sent it.
    assert "Failed to invoke barrier" not in clusterd.log()


def test_notify_datagram_from_an_unrelated_process_is_ignored(start_clusterd, tmpdir_short):
    reports = reports_dir(tmpdir_short)
    clusterd = start_clusterd(["--workers", "1", "--ready", "notify", "--log-level", "debug", "--",
                               PYTHON, worker("notify_worker.py"), "--ready-on-usr1", "--report", reports],
                              tmpdir=tmpdir_short)
    [spawned] = clusterd.wait_for_log(SPAWNED)
    pid = int(spawned.group(3))
    clusterd.seen_pids.add(pid)
    path = report_of(reports, pid, "notify_socket")["notify_socket"]

    # This test process is neither the worker nor one of its descendants.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1\nSTATUS=forged", path)
    clusterd.wait_for_log(r"dropped notify datagrams slot=0 pid=%d count=1 " % pid)
    assert clusterd.count(r"worker ready") == 0

    # The worker's own READY=1, on the same socket afterwards, counts.
    os.kill(pid, signal.SIGUSR1)
    ready = time_of(clusterd, r"worker ready slot=0 gen=1 pid=%d" % pid)
    assert ready >= report_of(reports, pid, "ready_sent_at")["ready_sent_at"] - 0.002


# ---- worker watchdog


def test_worker_watchdog_kills_a_silent_worker_and_spares_one_that_pings(start_clusterd, tmpdir_short):
    reports = reports_dir(tmpdir_short)
    # One of the two first workers (whichever creates the --once file) stops pinging 1 s after
    # READY=1; the other, and every replacement, pings every 0.2 s.
    clusterd = start_clusterd(["--workers", "2", "--ready", "notify", "--set", "ready.watchdog=1s", "--",
                               PYTHON, worker("notify_worker.py"), "--watchdog-every", "0.2",
                               "--stop-watchdog-after", "1", "--once", os.path.join(tmpdir_short, "once"),
                               "--report", reports], tmpdir=tmpdir_short)
    first = clusterd.ready_pids(2)
    for pid in first:
        report = report_of(reports, pid, "watchdog_usec")
        assert report["watchdog_usec"] == "1000000" and report["watchdog_pid"] == str(pid)

    [expired] = clusterd.wait_for_log(r"worker watchdog expired slot=(\d+) gen=1 pid=(\d+)")
    slot, silent = int(expired.group(1)), int(expired.group(2))
    [pinging] = [pid for pid in first if pid != silent]
    last_ping = report_of(reports, silent, "watchdog_stopped_at")["watchdog_last_at"]
    # Killed one watchdog interval after its last ping, not sooner.
    assert 0.99 <= log_time(expired.string) - last_ping <= 5.0
    [exited] = clusterd.wait_for_log(r"worker exited slot=%d gen=1 pid=%d status=signal:KILL "
                                     r".*next_restart_in=" % (slot, silent))
    assert "out of memory" not in exited.string       # clusterd sent that SIGKILL itself
    [replacement] = [m for m in clusterd.wait_for_log(READY, count=3) if int(m.group(3)) not in first]
    assert int(replacement.group(1)) == slot
    clusterd.seen_pids.add(int(replacement.group(3)))

    # A measurement window, not synchronisation: the pinging worker lives on for more than three
    # watchdog intervals in all.
    ready_at = time.monotonic()
    wait_until(lambda: time.monotonic() - ready_at >= 1.5, 10.0, "1.5 s more of pings")
    assert harness.pid_alive(pinging) and harness.pid_alive(int(replacement.group(3)))
    assert clusterd.count(r"worker watchdog expired") == 1, clusterd.log_tail()


def test_watchdog_trigger_kills_at_once(start_clusterd):
    # Pings every 0.2 s against a 10 s watchdog, then WATCHDOG=trigger 0.5 s after READY=1.
    clusterd = start_clusterd(["--workers", "1", "--ready", "notify", "--set", "ready.watchdog=10s", "--",
                               PYTHON, worker("notify_worker.py"), "--watchdog-every", "0.2",
                               "--trigger-after", "0.5"])
    [pid] = clusterd.ready_pids(1)
    [expired] = clusterd.wait_for_log(r"worker watchdog expired slot=0 gen=1 pid=%d" % pid)
    waited = log_time(expired.string) - time_of(clusterd, r"worker ready slot=0 gen=1 pid=%d" % pid)
    assert 0.4 <= waited < 5.0, waited        # the trigger, not the 10 s watchdog
    clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d status=signal:KILL " % pid)
    clusterd.ready_pids(2)                    # restarted


def test_a_notify_directory_left_by_a_killed_clusterd_is_removed_by_the_next(start_clusterd, tmpdir_short):
    runtime = os.path.join(tmpdir_short, "run")
    os.mkdir(runtime, 0o700)
    args = ["--name", "shop", "--workers", "1", "--listen", "127.0.0.1:0", "--ready", "notify", "--",
            PYTHON, worker("notify_worker.py")]
    notify_dirs = lambda: sorted(d for d in os.listdir(runtime) if d.startswith("shop.notify."))
    first = start_clusterd(args, env={"RUNTIME_DIRECTORY": runtime})
    first.ready_pids(1)
    [left] = notify_dirs()
    first.signal(signal.SIGKILL)        # no time to clean up
    first.wait_exit()
    assert notify_dirs() == [left]
    second = start_clusterd(args, env={"RUNTIME_DIRECTORY": runtime})
    second.ready_pids(1)
    second.wait_for_log(r"removed a notify socket directory left by a clusterd that is gone path=%s"
                        % re.escape(os.path.join(runtime, left)))
    [kept] = notify_dirs()
    assert kept != left
    # A live instance's directory is never taken for a stale one.
    third = start_clusterd(["--set", "control.socket=%s" % os.path.join(tmpdir_short, "third.sock")] + args,
                           env={"RUNTIME_DIRECTORY": runtime})
    third.ready_pids(1)
    assert kept in notify_dirs() and len(notify_dirs()) == 2
