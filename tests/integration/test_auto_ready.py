"""ready.mode = "auto", the default: a new worker is ready once it sends READY=1 or is seen waiting
for connections on one of clusterd's listening sockets (an epoll interest, or a thread blocked in
accept, poll or select on it, in the worker or a process it forked); a worker given no socket once
it stayed up ready.min_uptime. So a reload to a program that cannot start, or to a server that
binds a port of its own, is abandoned while the old workers keep serving, and says so.
"""
import json
import os
import socket
import subprocess

import pytest

import harness
from harness import PYTHON, Load, pid_alive, split_host_port, wait_until, worker
from test_reload import write_config

READY = r"worker ready slot=(\d+) gen=(\d+) pid=(\d+) sign=(\S+)"


def wait_command(how, *extra):
    return [PYTHON, worker("wait_worker.py"), how] + list(extra)


def ask(address, timeout=5.0):
    """One connection, one line of JSON back: who answered."""
    with socket.create_connection(split_host_port(address), timeout=timeout) as connection:
        reader = connection.makefile("rb")
        return json.loads(reader.readline())


@pytest.mark.parametrize("how", ["accept", "select", "poll", "epoll"])
def test_a_worker_waiting_on_its_socket_is_ready_and_the_log_names_how(start_clusterd, tmpdir_short, how):
    clusterd = start_clusterd(["-w", "2", "--listen", "127.0.0.1:0", "--"] + wait_command(how),
                              tmpdir=tmpdir_short)
    matches = clusterd.wait_for_log(READY, count=2)
    assert {m.group(4) for m in matches} == {how}
    pids = {int(m.group(3)) for m in matches}
    address = clusterd.address()
    answered = set()
    wait_until(lambda: answered.add(ask(address)["pid"]) or answered == pids, 10.0, "both workers answering")
    assert clusterd.status()["workers_ready"] == 2


def test_a_forked_child_waiting_on_the_socket_makes_its_worker_ready(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["-w", "1", "--listen", "127.0.0.1:0", "--"] + wait_command("child"), tmpdir=tmpdir_short)
    [match] = clusterd.wait_for_log(r'worker ready slot=0 gen=1 pid=(\d+) sign="epoll pid=(\d+)"')
    worker_pid, child_pid = int(match.group(1)), int(match.group(2))
    assert child_pid != worker_pid
    assert ask(clusterd.address())["pid"] == child_pid


def test_a_slow_starter_is_ready_only_once_it_waits(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["-w", "1", "--listen", "127.0.0.1:0", "--log-level", "debug", "--"] +
                              wait_command("epoll", "--delay", "1.5"), tmpdir=tmpdir_short)
    [spawned] = clusterd.wait_for_log(r"worker spawned slot=0 gen=1 pid=(\d+)")
    [ready] = clusterd.wait_for_log(READY)
    waited = harness.log_time(ready.string) - harness.log_time(spawned.string)
    assert waited >= 1.5, "ready %.3fs after the spawn, before the worker waited on its socket" % waited
    assert ready.group(4) == "epoll"


def test_a_server_that_binds_its_own_port_is_never_ready_and_the_log_says_why(start_clusterd, tmpdir_short):
    port_file = os.path.join(tmpdir_short, "port")
    clusterd = start_clusterd(["-w", "1", "--listen", "127.0.0.1:0", "--ready-timeout", "2s", "--"] +
                              wait_command("own", "--port-file", port_file), tmpdir=tmpdir_short)
    # It serves, on its own port: only clusterd's socket is not used.
    wait_until(lambda: os.path.exists(port_file), 10.0, "the worker's own port")
    with open(port_file) as f:
        assert ask("127.0.0.1:%s" % f.read())["pid"]
    clusterd.wait_for_log(r"worker not ready in time slot=0 gen=1 not ready within 2s \(ready.mode = auto: it "
                          r"sent no READY=1 and never waited for connections on clusterd's listening sockets; "
                          r"make it use the inherited socket \(LISTEN_FDS, fd 3\), or set ready.mode\)",
                          timeout=15.0)
    assert clusterd.count(r"worker ready") == 0
    assert clusterd.status()["workers_ready"] == 0


def test_a_job_runner_is_ready_after_the_minimum_uptime_and_a_crash_loop_never_says_ready(start_clusterd,
                                                                                            tmpdir_short):
    runner = start_clusterd(["-w", "1", "--set", "ready.min_uptime=300ms", "--", "sleep", "1000"], tmpdir=tmpdir_short)
    [spawned] = runner.wait_for_log(r"started name=")
    [ready] = runner.wait_for_log(r"worker ready slot=0 gen=1 pid=\d+ sign=min_uptime")
    # Log times are cut to the millisecond: two of them can differ by up to 1 ms less than the times
    # themselves (a CI rehearsal saw 0.631 - 0.331 as 0.29999…).
    assert harness.log_time(ready.string) - harness.log_time(spawned.string) >= 0.299

    crash_dir = os.path.join(tmpdir_short, "crash")
    os.mkdir(crash_dir)
    crashing = start_clusterd(["-w", "1", "--name", "crash", "--", "sh", "-c", "sleep 0.1; exit 1"], tmpdir=crash_dir)
    crashing.wait_for_log(r"worker exited slot=0 gen=1 pid=\d+ status=exit:1", count=3, timeout=15.0)
    assert crashing.count(r"worker ready") == 0


def test_a_worker_whose_waits_cannot_be_seen_is_ready_after_the_minimum_uptime_said_once(start_clusterd,
                                                                                       tmpdir_short):
    program = os.path.join(tmpdir_short, "io_uring_worker")
    subprocess.run(["cc", "-o", program, worker("io_uring_worker.c")], check=True, timeout=60)
    clusterd = start_clusterd(["-w", "2", "--listen", "127.0.0.1:0", "--set", "ready.min_uptime=500ms", "--",
                               program], tmpdir=tmpdir_short)
    clusterd.wait_for_log(r"worker ready slot=\d+ gen=1 pid=\d+ sign=min_uptime", count=2)
    warnings = clusterd.matches(r"warn clusterd\[\d+\]: cannot see whether the worker waits for connections slot=\d+ gen=1 "
                                r"pid=\d+ reason=\"it uses io_uring, whose waits /proc does not show\"; it counts "
                                r"as ready after ready.min_uptime=500ms unless it sends READY=1")
    assert len(warnings) == 1, clusterd.log_tail()
    assert clusterd.status()["workers_ready"] == 2


def test_default_reload_to_a_program_that_cannot_start_fails_and_the_old_workers_serve_throughout(
        start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=4, command=wait_command("epoll"))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    old = {int(m.group(3)) for m in clusterd.wait_for_log(READY, count=4)}
    address = clusterd.address("http")
    load = Load(address, lambda a: ask(a)["pid"])
    wait_until(lambda: load.answered >= 20, 10.0, "the load running")
    write_config(tmpdir_short, workers=4, command=wait_command("exit"))
    code, out, err = clusterd.control("reload", timeout=60)
    answered, failed = load.stop()
    assert code == 1, (code, out, err)
    assert "exited status=exit:1 before it was ready" in err
    assert failed == [], "%d of %d requests failed: %s" % (len(failed), answered + len(failed), failed[:3])
    assert answered >= 20
    status = clusterd.status()
    assert status["generation"] == 1 and status["workers_ready"] == 4
    assert {entry["pid"] for entry in status["workers"]} == old
    assert all(pid_alive(pid) for pid in old)
    assert set(load.answers) <= old


def test_default_reload_of_healthy_workers_replaces_every_one_without_a_failed_request(start_clusterd,
                                                                                         tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=wait_command("epoll"))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    old = {int(m.group(3)) for m in clusterd.wait_for_log(READY, count=2)}
    load = Load(clusterd.address("http"), lambda a: ask(a)["pid"])
    wait_until(lambda: load.answered >= 20, 10.0, "the load running")
    code, out, err = clusterd.control("reload", timeout=60)
    answered, failed = load.stop()
    assert code == 0, (code, out, err)
    assert failed == [], failed[:3]
    new = {entry["pid"] for entry in clusterd.status()["workers"]}
    assert len(new) == 2 and not new & old
    assert [m.group(1) for m in clusterd.matches(r"worker ready slot=\d+ gen=2 pid=\d+ sign=(\S+)")] == \
        ["epoll", "epoll"]
