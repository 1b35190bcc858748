"""Stopping: SIGTERM/SIGINT stop gracefully within the grace period, a stubborn worker is SIGKILLed
after it, a second SIGTERM or SIGQUIT kills at once, clusterd's own death takes every worker with it,
and the listening socket stays open while a worker is being replaced.
"""
import os
import signal
import time

import pytest

import harness
from harness import PYTHON, http_get, pid_alive, wait_until, worker


def start_workers(start_clusterd, count, *extra, worker_args=()):
    clusterd = start_clusterd(["--workers", str(count), "--listen", "127.0.0.1:0"] + list(extra)
                              + ["--", PYTHON, worker("http_worker.py")] + list(worker_args))
    address = clusterd.address()
    pids = clusterd.ready_pids(count)
    # "ready" means exec succeeded; a worker that answered has also installed its signal handlers.
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(pids), 10.0,
               "answers from every worker", describe=lambda: str(answered))
    return clusterd, address, pids


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_signal_stops_every_worker_and_exits_0_within_grace(start_clusterd, signum):
    clusterd, address, pids = start_workers(start_clusterd, 2, "--grace", "20s")
    assert http_get(address)["pid"] in pids
    started = time.monotonic()
    clusterd.signal(signum)
    code = clusterd.wait_exit(15.0)
    elapsed = time.monotonic() - started
    assert code == 0, clusterd.log_tail()
    assert elapsed < 15.0                      # well within the 20 s grace: nobody was SIGKILLed
    assert not [pid for pid in pids if pid_alive(pid)]
    log = clusterd.log()
    assert "stopping workers=2 signal=TERM grace=20s" in log
    for pid in pids:
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=exit:0 " % pid) == 1
    assert "did not stop within grace" not in log
    assert "stopped code=0" in log


def test_worker_ignoring_the_stop_signal_is_killed_after_grace(start_clusterd):
    clusterd, _, [pid] = start_workers(start_clusterd, 1, "--grace", "1s",
                                       worker_args=["--ignore-term"])
    started = time.monotonic()
    clusterd.signal(signal.SIGTERM)
    code = clusterd.wait_exit(15.0)
    elapsed = time.monotonic() - started
    assert code == 0, clusterd.log_tail()
    assert elapsed >= 0.9
    assert not pid_alive(pid)
    log = clusterd.log()
    assert clusterd.count(r"worker did not stop within grace; killing slot=0 gen=1 pid=%d grace=1s"
                          % pid) == 1
    assert clusterd.count(r"worker stopped slot=0 gen=1 pid=%d status=signal:KILL" % pid) == 1
    assert "out of memory" not in log          # clusterd sent this SIGKILL itself
    assert "stopped code=0" in log


def test_the_stop_ladder_asks_a_hung_worker_for_a_dump_before_the_sigkill(start_clusterd, tmpdir_short):
    noted = os.path.join(tmpdir_short, "signals")
    clusterd, _, [pid] = start_workers(start_clusterd, 1, "--grace", "2s", "--set", "stop.dump_signal=ABRT",
                                       "--set", "stop.dump_before=1s",
                                       worker_args=["--ignore-term", "--note-signal", "ABRT:" + noted])
    started = time.monotonic()
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    [dump] = clusterd.wait_for_log(r"worker did not stop; asking for a stack dump slot=0 gen=1 pid=%d signal=ABRT "
                                   r"kill_in=1s$" % pid)
    [kill] = clusterd.wait_for_log(r"worker did not stop within grace; killing slot=0 gen=1 pid=%d grace=2s" % pid)
    assert clusterd.count(r"worker stopped slot=0 gen=1 pid=%d status=signal:KILL" % pid) == 1
    # The worker got the dump signal, 1 s into the 2 s grace, and lived on until the SIGKILL.
    with open(noted) as f:
        [line] = f.read().splitlines()
    name, at, noted_pid = line.split()
    assert (name, int(noted_pid)) == ("ABRT", pid)
    assert 0.9 <= float(at) - started < 2.0, float(at) - started
    assert harness.log_time(kill.string) - harness.log_time(dump.string) >= 0.9


def test_second_sigterm_during_grace_kills_at_once(start_clusterd):
    clusterd, _, [pid] = start_workers(start_clusterd, 1, "--grace", "60s",
                                       worker_args=["--ignore-term"])
    clusterd.signal(signal.SIGTERM)
    clusterd.wait_for_log(r"stopping workers=1 signal=TERM grace=1m")
    assert not clusterd.exited() and pid_alive(pid)     # it ignores TERM and has 60 s grace
    started = time.monotonic()
    clusterd.signal(signal.SIGTERM)
    code = clusterd.wait_exit(15.0)
    assert code == 0, clusterd.log_tail()
    assert time.monotonic() - started < 15.0              # not the 60 s grace
    assert not pid_alive(pid)
    assert "stopping now workers=1 signal=KILL" in clusterd.log()
    assert clusterd.count(r"worker stopped slot=0 gen=1 pid=%d status=signal:KILL" % pid) == 1


def test_sigquit_kills_every_worker_at_once_and_exits_0(start_clusterd):
    clusterd, _, pids = start_workers(start_clusterd, 2, "--grace", "60s",
                                      worker_args=["--ignore-term"])
    started = time.monotonic()
    clusterd.signal(signal.SIGQUIT)
    code = clusterd.wait_exit(15.0)
    assert code == 0, clusterd.log_tail()
    assert time.monotonic() - started < 15.0
    assert not [pid for pid in pids if pid_alive(pid)]
    assert "stopping now workers=2 signal=KILL" in clusterd.log()
    assert "out of memory" not in clusterd.log()


def test_stop_signal_option_chooses_the_signal_workers_get(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--stop-signal", "INT", "--", "/bin/sleep", "1000"])
    pids = clusterd.ready_pids(2)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert "stopping workers=2 signal=INT " in clusterd.log()
    for pid in pids:
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=signal:INT " % pid) == 1


def test_sigterm_while_a_slot_waits_to_restart_exits_at_once(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--set", "restart.delay=20s", "--", "/bin/false"])
    exited = clusterd.wait_for_log(r"worker exited slot=0 .* next_restart_in=(\S+)", count=2)[1]
    assert harness.parse_duration(exited.group(1)) >= 9.9    # the 2nd restart waits 10-20 s
    started = time.monotonic()
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert time.monotonic() - started < 9.0                    # did not wait for the restart
    assert clusterd.count(r"worker ready") == 0                # exits at once: never ready (ready.mode = auto)
    assert "stopped code=0" in clusterd.log()


def test_sigkill_of_clusterd_takes_every_worker_with_it_and_frees_the_port(start_clusterd):
    clusterd, address, pids = start_workers(start_clusterd, 2)
    host, port = harness.split_host_port(address)
    assert http_get(address)["pid"] in pids
    assert not harness.can_listen(host, port)           # clusterd's socket holds the port
    clusterd.signal(signal.SIGKILL)
    assert clusterd.wait_exit(10.0) == -signal.SIGKILL
    wait_until(lambda: not [pid for pid in pids if pid_alive(pid)], 10.0, "workers gone",
               describe=lambda: str([pid for pid in pids if pid_alive(pid)]))
    wait_until(lambda: not harness.can_connect(address, timeout=2.0), 10.0,
               "connection refused once everybody died")
    assert harness.can_listen(host, port)


def test_listening_socket_accepts_while_no_worker_runs(start_clusterd):
    # restart.delay=6s: the 2nd restart of a streak waits 3-6 s, a window with no worker at all.
    clusterd, address, [first] = start_workers(start_clusterd, 1, "--set", "restart.delay=6s")
    os.kill(first, signal.SIGKILL)
    second = clusterd.ready_pids(2)[1]                    # the 1st restart is immediate
    os.kill(second, signal.SIGKILL)
    [exited] = clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d status=signal:KILL "
                                     r"uptime=\S+ next_restart_in=(\S+)" % second)
    assert harness.parse_duration(exited.group(1)) >= 2.9

    # Nothing serves now, yet the kernel completes connections into clusterd's listening socket.
    sock = harness.connect(address, timeout=5.0)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        assert clusterd.count(r"worker ready") == 2, clusterd.log_tail()   # still in the window
        assert [pid for pid in clusterd.children() if pid_alive(pid)] == []
        # ...and the replacement answers the request that waited in the queue.
        sock.settimeout(15.0)
        response = harness.read_until_closed(sock)
    finally:
        sock.close()
    third = clusterd.ready_pids(3)[2]
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert b'"pid": %d' % third in response
