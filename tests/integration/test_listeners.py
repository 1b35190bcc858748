"""Listeners: unix sockets (mode, stale and live files, removal), IPv6, dual stack, port 0, named
listeners, and an address already in use.
"""
import os
import re
import signal
import socket
import stat
import subprocess

import pytest

import harness
from harness import PYTHON, http_get, run_clusterd, toml_string, wait_until, worker

HTTP_WORKER = [PYTHON, worker("http_worker.py")]


@pytest.mark.parametrize("mode,expected", [("0600", 0o600), (None, 0o660)],
                         ids=["mode-0600", "default-mode"])
def test_unix_listener_serves_with_its_mode_and_is_removed_on_exit(start_clusterd, tmpdir_short,
                                                                   mode, expected):
    path = os.path.join(tmpdir_short, "web.sock")
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
command = %s

[[listen]]
name = "web"
address = %s
%s
""" % (toml_string(HTTP_WORKER), toml_string("unix:" + path),
       "mode = %s" % toml_string(mode) if mode else ""))
    clusterd = start_clusterd(["-c", config])
    assert clusterd.address("web") == "unix:" + path
    [pid] = clusterd.ready_pids(1)
    reply = http_get("unix:" + path)
    assert reply["pid"] == pid
    assert reply["listen"]["LISTEN_FDNAMES"] == "web"
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == expected, oct(info.st_mode)

    assert clusterd.stop() == 0, clusterd.log_tail()
    assert not os.path.exists(path)


@pytest.mark.parametrize("ending", ["SIGQUIT", "SIGINT", "all-failed"])
def test_unix_socket_file_is_removed_however_clusterd_exits(start_clusterd, tmpdir_short, ending):
    path = os.path.join(tmpdir_short, "web.sock")
    if ending == "all-failed":
        program = ["--set", "restart.policy=never", "--", "/bin/false"]
    else:
        program = ["--"] + HTTP_WORKER
    clusterd = start_clusterd(["--workers", "1", "--listen", "unix:" + path] + program)
    clusterd.address()
    if ending == "all-failed":
        assert clusterd.wait_exit(10.0) == 1, clusterd.log_tail()
    else:
        clusterd.ready_pids(1)
        clusterd.signal(getattr(signal, ending))
        assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert not os.path.exists(path)


def test_stale_unix_socket_file_is_replaced(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "web.sock")
    # A process that listened there and died without removing its socket file.
    subprocess.run([PYTHON, "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                    "s.bind(sys.argv[1]); s.listen(1)", path], check=True, timeout=30)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert not harness.can_connect("unix:" + path)
    clusterd = start_clusterd(["--workers", "1", "--listen", "unix:" + path, "--"] + HTTP_WORKER)
    [pid] = clusterd.ready_pids(1)
    assert http_get("unix:" + path)["pid"] == pid


def test_live_unix_socket_is_not_taken_over(tmpdir_short):
    path = os.path.join(tmpdir_short, "web.sock")
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    owner.bind(path)
    owner.listen(8)
    try:
        code, _, stderr = run_clusterd(["--workers", "1", "--log-level", "debug",
                                        "--listen", "unix:" + path, "--"] + HTTP_WORKER)
        assert code == 2, stderr
        assert path in stderr
        assert not re.search(r"worker (spawned|ready)|started name=", stderr), stderr
        # The other process's socket is untouched: still there, still accepting.
        client = harness.connect("unix:" + path)
        accepted, _ = owner.accept()
        accepted.close()
        client.close()
    finally:
        owner.close()


@pytest.mark.skipif(not harness.has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_listener_serves(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "[::1]:0", "--"] + HTTP_WORKER)
    address = clusterd.address()
    assert address.startswith("[::1]:") and not address.endswith(":0")
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address)
    assert reply["pid"] == pid
    assert reply["served_address"][0] == "::1"


def test_all_addresses_port_zero_is_dual_stack(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", ":0", "--"] + HTTP_WORKER)
    address = clusterd.address()
    port = int(address.rpartition(":")[2])
    assert port != 0
    [pid] = clusterd.ready_pids(1)
    assert http_get("127.0.0.1:%d" % port)["pid"] == pid
    if harness.has_ipv6_loopback():
        assert http_get("[::1]:%d" % port)["pid"] == pid


def test_port_zero_logs_the_port_the_kernel_picked(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--"] + HTTP_WORKER)
    [match] = clusterd.wait_for_log(r"listening name=fd3 address=127\.0\.0\.1:(\d+) backlog=\d+")
    port = int(match.group(1))
    assert port != 0
    [pid] = clusterd.ready_pids(1)
    reply = http_get("127.0.0.1:%d" % port)
    assert reply["pid"] == pid
    assert reply["served_address"] == ["127.0.0.1", port]   # the socket the worker got is that one


def test_two_named_listeners_worker_serves_the_second(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "admin=127.0.0.1:0",
                               "--listen", "public=127.0.0.1:0", "--"]
                              + HTTP_WORKER + ["--name", "public"])
    admin = clusterd.address("admin")
    public = clusterd.address("public")
    assert admin != public
    [pid] = clusterd.ready_pids(1)
    reply = http_get(public)
    assert reply["pid"] == pid
    assert reply["listen"] == {"LISTEN_FDS": "2", "LISTEN_PID": str(pid),
                               "LISTEN_FDNAMES": "admin:public"}
    assert "127.0.0.1:%d" % reply["served_address"][1] == public
    assert harness.can_connect(admin)     # bound and listening too, though this worker ignores it


def test_port_in_use_exits_2_naming_the_address_and_starts_no_worker(tmpdir_short):
    owner = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    owner.bind(("127.0.0.1", 0))
    owner.listen(8)
    address = "127.0.0.1:%d" % owner.getsockname()[1]
    try:
        code, _, stderr = run_clusterd(["--workers", "2", "--log-level", "debug",
                                        "--listen", "free=127.0.0.1:0", "--listen", address, "--",
                                        PYTHON, worker("report_worker.py"),
                                        "--report-dir", tmpdir_short])
    finally:
        owner.close()
    assert code == 2, stderr
    assert address in stderr
    assert not re.search(r"worker (spawned|ready)|started name=", stderr), stderr
    assert harness.read_reports(tmpdir_short) == {}


def start_with_listener_shut_down_once(start_clusterd, tmpdir_short, address):
    """One worker; the first one shuts the inherited listener down (for everybody) and exits."""
    marker = os.path.join(tmpdir_short, "shut-down")
    clusterd = start_clusterd(["--workers", "1", "--listen", address, "--"]
                              + HTTP_WORKER + ["--shutdown-listener-once", marker])
    first_address = clusterd.address()
    [exited] = clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=(\d+) status=exit:3 ")
    # The first worker never waited for a connection, so it was never ready; its replacement is.
    [replacement] = clusterd.ready_pids(1)
    assert replacement != int(exited.group(1))
    return clusterd, first_address, replacement


def test_listener_shut_down_by_a_worker_is_noticed_and_listens_again(start_clusterd, tmpdir_short):
    clusterd, _, replacement = start_with_listener_shut_down_once(start_clusterd, tmpdir_short,
                                                                  "127.0.0.1:0")
    [line] = clusterd.wait_for_log(r"listener stopped by a worker; listening again name=fd3 "
                                   r"address=(\S+)")
    assert harness.log_level(line.string) == "error"
    assert http_get(line.group(1))["pid"] == replacement


def test_listener_shut_down_by_a_worker_listens_again_on_the_same_port(start_clusterd,
                                                                      tmpdir_short):
    clusterd, first_address, replacement = start_with_listener_shut_down_once(
        start_clusterd, tmpdir_short, "127.0.0.1:0")
    clusterd.wait_for_log(r"listener stopped by a worker; listening again")
    assert http_get(first_address, timeout=5.0)["pid"] == replacement


def test_unix_listener_shut_down_by_a_worker_serves_again(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "web.sock")
    marker = os.path.join(tmpdir_short, "shut-down")
    clusterd = start_clusterd(["--workers", "1", "--listen", "unix:" + path, "--"]
                              + HTTP_WORKER + ["--shutdown-listener-once", marker])
    clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=\d+ status=exit:3 ")

    def answered():
        try:
            return http_get("unix:" + path, timeout=2.0)
        except OSError:
            return None

    reply = wait_until(answered, 10.0, "an answer on the unix listener", describe=clusterd.log_tail)
    clusterd.seen_pids.add(reply["pid"])
