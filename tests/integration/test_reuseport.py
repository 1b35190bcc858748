"""Per-slot listeners with the real binary (interface §2.1, §3, §7; protocols §4.1 model B): each
slot's workers get an SO_REUSEPORT socket of their own on one port, bound and kept by clusterd, the
default for TCP where clusterd can load its steering program (root here). Steered, new connections
go in turn to ready workers only, and a slot in backoff hands its queue to the others; unsteered
(CAP_BPF dropped), a crashed worker's queue waits for its replacement. A reload hands the new
worker the same socket; scaling opens and closes slots' sockets; a worker's shutdown() of its
socket is repaired; a unix or socket-activated per-slot listener is refused; the tcp_migrate_req
warning.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import harness
from harness import PYTHON, http_get, serving_pids, socket_inodes, wait_until, worker

HTTP_WORKER = [PYTHON, worker("http_worker.py"), "--graceful"]


def write_config(directory, workers, address="127.0.0.1:0", reuseport="per-slot", command=None):
    text = "workers = %d\ncommand = [%s]\n[[listen]]\nname = \"http\"\naddress = %s\nreuseport = %s\n" % (
        workers, ", ".join(harness.toml_string(part) for part in (command or HTTP_WORKER)),
        harness.toml_string(address), harness.toml_string(reuseport))
    return harness.write_file(directory, "clusterd.toml", text)


def start_per_slot(start_clusterd, directory, workers, command=None):
    """clusterd with one per-slot listener on 127.0.0.1:0; returns (clusterd, address, port)."""
    config = write_config(directory, workers, command=command)
    clusterd = start_clusterd(["-c", config], tmpdir=directory)
    address = clusterd.address("http")
    clusterd.ready_pids(workers)
    return clusterd, address, int(address.rpartition(":")[2])


def socket_inode(pid, fd=3):
    """The inode of the socket pid holds at fd ("socket:[INODE]" in /proc)."""
    target = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    assert target.startswith("socket:["), target
    return int(target[len("socket:["):-1])


def listening_inodes(port):
    """Inodes of the TCP sockets listening on port (any address), from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:   # TCP_LISTEN
                inodes.add(int(fields[9]))
    return inodes


def held_on_port(pid, port):
    """The listening sockets on port that pid holds."""
    return socket_inodes(pid) & listening_inodes(port)


def serving_slots(clusterd, count, generation=None):
    """{slot: pid} once `count` slots each have a ready worker (of `generation`, if given) and no
    other; from `status`."""
    def ready():
        workers = clusterd.status()["workers"]
        slots = {w["slot"]: w["pid"] for w in workers if w["state"] == "ready"
                 and (generation is None or w["generation"] == generation)}
        others = [w for w in workers if w["state"] != "ready"
                  or (generation is not None and w["generation"] != generation)]
        return slots if len(slots) == count and not others else None

    slots = wait_until(ready, 15.0, "%d ready workers" % count, describe=clusterd.log_tail)
    clusterd.seen_pids.update(slots.values())
    return slots


def test_each_slot_gets_its_own_socket_on_one_port_and_every_slot_serves(start_clusterd, tmpdir_short):
    clusterd, address, port = start_per_slot(start_clusterd, tmpdir_short, 2)
    assert port != 0
    slots = serving_slots(clusterd, 2)
    inodes = {slot: socket_inode(pid) for slot, pid in slots.items()}
    assert inodes[0] != inodes[1]                              # two sockets, not one shared
    assert set(inodes.values()) <= listening_inodes(port)     # both listening on the one port
    assert held_on_port(clusterd.pid, port) == set(inodes.values())   # and clusterd keeps both

    # One "listening" line per listener, and one that counts its sockets.
    assert clusterd.count(r"listening name=http address=%s backlog=\d+" % re.escape(address)) == 1
    assert clusterd.count(r"listening per slot name=http address=%s sockets=2$" % re.escape(address)) == 1

    # New connections reach both workers; what each worker got is what a shared listener gives.
    assert serving_pids(address, set(slots.values())) == set(slots.values())
    answer = http_get(address)
    assert answer["listen"] == {"LISTEN_FDS": "1", "LISTEN_PID": str(answer["pid"]), "LISTEN_FDNAMES": "http"}
    assert answer["served_address"] == ["127.0.0.1", port]

    status = clusterd.status()
    assert status["listeners"] == [{"name": "http", "address": address, "fd": 3, "reuseport": "per-slot",
                                    "sockets": 2, "steered": True}]
    code, out, err = clusterd.control("status")
    assert code == 0, err
    assert "  listening: http %s (fd 3, per-slot: 2 sockets)" % address in out.splitlines()


@pytest.mark.parametrize("steered", [True, False])
def test_a_killed_workers_slot_keeps_its_socket_no_connection_is_refused(start_clusterd, tmpdir_short, steered):
    config = write_config(tmpdir_short, 2)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short, wrapper=() if steered else WITHOUT_BPF)
    address = clusterd.address("http")
    port = int(address.rpartition(":")[2])
    slots = serving_slots(clusterd, 2)
    kept = socket_inode(slots[1])
    os.kill(slots[1], signal.SIGKILL)
    # A zombie has closed its fds: from here on nothing of the old worker can accept.
    wait_until(lambda: not harness.pid_alive(slots[1]), 10.0, "the killed worker gone")

    # Connections made right away, while slot 1 has no ready worker (the first restart of a streak
    # is immediate; a Python worker takes far longer to start than this loop). Steered, they all go
    # to slot 0; unsteered, those hashed to slot 1's socket wait in its queue for the replacement.
    # None is refused, and each gets its answer. Bounded: 40 connections, 10 s.
    refused = 0
    clients = []
    deadline = time.monotonic() + 10.0
    try:
        while len(clients) + refused < 40 and time.monotonic() < deadline:
            try:
                sock = harness.connect(address, timeout=15.0)
            except ConnectionRefusedError:
                refused += 1
                continue
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            clients.append(sock)
        answers = [harness.read_until_closed(sock) for sock in clients]
    finally:
        for sock in clients:
            sock.close()
    assert refused == 0
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), [a[:80] for a in answers]

    replacement = serving_slots(clusterd, 2)[1]
    assert replacement != slots[1]
    # Unsteered, the ones slot 1's socket got were accepted by the replacement: they had waited in
    # its queue (a hash sends each of 40 connections to either socket; none to slot 1 is 2^-40
    # likely). Steered, only those made before clusterd saw the exit can have.
    answered_by = [json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"] for answer in answers]
    if steered:
        assert slots[0] in answered_by and set(answered_by) <= {slots[0], replacement}
    else:
        assert set(answered_by) == {slots[0], replacement}
    assert socket_inode(replacement) == kept                   # the same socket, queue and all
    assert held_on_port(clusterd.pid, port) == {socket_inode(slots[0]), kept}


def test_scaling_opens_and_closes_slots_sockets(start_clusterd, tmpdir_short):
    clusterd, address, port = start_per_slot(start_clusterd, tmpdir_short, 2)
    slots = serving_slots(clusterd, 2)
    first = {slot: socket_inode(pid) for slot, pid in slots.items()}

    code, out, err = clusterd.control("scale", "3")
    assert code == 0, err
    slots = serving_slots(clusterd, 3)
    third = socket_inode(slots[2])
    assert third not in first.values()
    assert held_on_port(clusterd.pid, port) == set(first.values()) | {third}
    assert {slot: socket_inode(slots[slot]) for slot in (0, 1)} == first   # the others kept theirs
    clusterd.wait_for_log(r"per-slot socket opened name=http slot=2 address=%s$" % re.escape(address))
    assert clusterd.status()["listeners"][0]["sockets"] == 3
    assert serving_pids(address, set(slots.values())) == set(slots.values())

    code, out, err = clusterd.control("scale", "1")
    assert code == 0, err
    # clusterd lets go of slots 1 and 2's sockets; the stopped workers' copies went with them.
    wait_until(lambda: held_on_port(clusterd.pid, port) == {first[0]}, 15.0, "only slot 0's socket held",
               describe=clusterd.log_tail)
    wait_until(lambda: listening_inodes(port) == {first[0]}, 15.0, "only slot 0's socket listening",
               describe=clusterd.log_tail)
    for slot in (1, 2):
        clusterd.wait_for_log(r"per-slot socket closed name=http slot=%d address=%s$" % (slot, re.escape(address)))
    assert clusterd.status()["listeners"][0]["sockets"] == 1
    # Every new connection now reaches slot 0: no queue is left where nobody accepts.
    assert {http_get(address)["pid"] for _ in range(20)} == {slots[0]}


def test_a_rolling_reload_hands_each_slot_its_socket(start_clusterd, tmpdir_short):
    clusterd, address, port = start_per_slot(start_clusterd, tmpdir_short, 2)
    before = {slot: socket_inode(pid) for slot, pid in serving_slots(clusterd, 2).items()}
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    after = serving_slots(clusterd, 2, generation=2)
    assert {slot: socket_inode(pid) for slot, pid in after.items()} == before
    assert held_on_port(clusterd.pid, port) == set(before.values())
    assert clusterd.count(r"listening (per slot )?name=") == 2   # nothing bound again


def test_a_socket_a_worker_shut_down_listens_again(start_clusterd, tmpdir_short):
    marker = os.path.join(tmpdir_short, "shut-down-once")
    command = HTTP_WORKER + ["--shutdown-listener-once", marker]
    clusterd, address, port = start_per_slot(start_clusterd, tmpdir_short, 1, command=command)
    clusterd.wait_for_log(r"listener stopped by a worker; listening again name=http address=%s slot=0$"
                          % re.escape(address))
    slots = serving_slots(clusterd, 1)
    answer = http_get(address)
    assert answer["pid"] == slots[0]
    assert held_on_port(clusterd.pid, port) == {socket_inode(slots[0])}


def test_per_slot_on_a_unix_address_is_a_configuration_error(tmpdir_short):
    path = os.path.join(tmpdir_short, "a.sock")
    config = write_config(tmpdir_short, 2, address="unix:" + path)
    expected = '%s:6:13: listen[0].reuseport: "per-slot" applies only to TCP addresses, not "unix:%s"\n' % (
        config, path)
    for args in (["-c", config], ["check", "-c", config]):
        code, out, err = harness.run_clusterd(args, cwd=tmpdir_short)
        assert (code, err) == (2, expected), (args, err)
    assert not os.path.exists(path)


def test_check_prints_the_mode_and_a_bad_value_names_both_choices(tmpdir_short):
    config = write_config(tmpdir_short, 2)
    code, out, err = harness.run_clusterd(["check", "-c", config], cwd=tmpdir_short)
    assert (code, err) == (0, ""), err
    assert 'address = "127.0.0.1:0"\nbacklog = 4096\nreuseport = "per-slot"\n' in out

    config = write_config(tmpdir_short, 2, reuseport="x")
    code, out, err = harness.run_clusterd(["check", "-c", config], cwd=tmpdir_short)
    assert (code, err) == (2, '%s:6:13: listen[0].reuseport: expected "shared" or "per-slot", found "x"\n'
                           % config)


def test_per_slot_with_sockets_from_systemd_is_refused_naming_the_listener(tmpdir_short):
    # As systemd would: a listening socket at fd 3, LISTEN_PID = clusterd's pid (bash execs it in
    # place; dash cannot move an fd above 9), LISTEN_FDS=1.
    inherited = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        inherited.bind(("127.0.0.1", 0))
        inherited.listen(8)
        port = inherited.getsockname()[1]
        config = write_config(tmpdir_short, 2, address="127.0.0.1:%d" % port)
        env = dict(os.environ, RUNTIME_DIRECTORY=tmpdir_short, LISTEN_FDNAMES="http")
        env.pop("NOTIFY_SOCKET", None)
        result = subprocess.run(
            ["/bin/bash", "-c", 'exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"' % inherited.fileno(), "bash",
             harness.BIN, "-c", config],
            pass_fds=(inherited.fileno(),), capture_output=True, text=True, timeout=15, env=env,
            stdin=subprocess.DEVNULL)
    finally:
        inherited.close()
    assert result.returncode == 2, result.stderr
    assert ('clusterd: socket activation: listener "http" (127.0.0.1:%d): reuseport = "per-slot" cannot be '
            'used with sockets passed by systemd (LISTEN_FDS)' % port) in result.stderr
    assert "worker" not in result.stderr


def migrate_req():
    """net.ipv4.tcp_migrate_req as this network namespace has it; None before Linux 5.14."""
    try:
        with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


# Root without CAP_BPF and CAP_SYS_ADMIN (dropped from the bounding set, so exec cannot give them
# back): the kernel refuses the steering program, as it does for an unprivileged clusterd.
WITHOUT_BPF = ["setpriv", "--bounding-set", "-bpf,-sys_admin", "--"]


def test_per_slot_without_steering_says_so_and_warns_exactly_when_migration_is_off(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, 2)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short, wrapper=WITHOUT_BPF)
    address = clusterd.address("http")
    serving_slots(clusterd, 2)
    clusterd.wait_for_log(r"per-slot listener without steering name=http address=%s: cannot create the steering "
                          r"state map \(bpf BPF_MAP_CREATE\): Operation not permitted; connections are hashed over "
                          r"every slot's socket, one whose worker is in backoff included$" % re.escape(address))
    assert clusterd.status()["listeners"][0]["steered"] is False
    code, out, err = clusterd.control("status")
    assert code == 0, err
    assert "  listening: http %s (fd 3, per-slot: 2 sockets, unsteered)" % address in out.splitlines()

    warnings = clusterd.matches(r"net\.ipv4\.tcp_migrate_req")
    assert all(harness.log_level(match.string) == "warn" for match in warnings), warnings
    value = migrate_req()
    if value in (None, "0"):
        assert len(warnings) == 1, clusterd.log_tail()
        assert "connections queued on it are reset" in warnings[0].string
        if value == "0":
            assert "sysctl -w net.ipv4.tcp_migrate_req=1" in warnings[0].string
    else:
        assert warnings == []


def test_an_unset_reuseport_without_steering_is_one_shared_socket(start_clusterd, tmpdir_short):
    config = write_steering_config(tmpdir_short, 2, None, HTTP_WORKER)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short, wrapper=WITHOUT_BPF)
    address = clusterd.address("http")
    slots = serving_slots(clusterd, 2)
    assert socket_inode(slots[0]) == socket_inode(slots[1])
    assert clusterd.status()["listeners"] == [{"name": "http", "address": address, "fd": 3}]
    assert clusterd.count(r"without steering|tcp_migrate_req|listening per slot") == 0
    clusterd.wait_for_log(r"one shared socket name=http address=%s: per-slot sockets, the default for TCP, "
                          r"need the steering program: cannot create the steering state map \(bpf BPF_MAP_CREATE\): "
                          r"Operation not permitted$" % re.escape(address))


def test_no_tcp_migrate_req_warning_without_a_per_slot_listener(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, 1, reuseport="shared")
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    assert clusterd.count(r"tcp_migrate_req") == 0
    assert clusterd.count(r"listening per slot") == 0
    assert "reuseport" not in clusterd.status()["listeners"][0]


# ----- steering: the default for TCP where clusterd can load a reuseport program (root here)

def write_steering_config(directory, workers, reuseport, command, restart="", address="127.0.0.1:0"):
    text = "workers = %d\ncommand = [%s]\n%s[[listen]]\nname = \"http\"\naddress = %s\n" % (
        workers, ", ".join(harness.toml_string(part) for part in command), restart, harness.toml_string(address))
    if reuseport is not None:
        text += "reuseport = %s\n" % harness.toml_string(reuseport)
    return harness.write_file(directory, "clusterd.toml", text)


def crash_once_then_fail(marker):
    """A worker that serves; in slot 1, once `marker` exists, each new one exits 1 at once (so the
    slot goes into backoff after its worker is killed)."""
    script = ('if [ "$CLUSTERD_WORKER_ID" = 1 ] && [ -e %s ]; then exit 1; fi; exec "$@"'
              % harness.toml_string(marker)[1:-1])
    return ["/bin/sh", "-c", script, "sh"] + HTTP_WORKER


def ask(address, timeout):
    """One request on a fresh connection: the answering pid, or the exception it met."""
    try:
        sock = harness.connect(address, timeout=timeout)
    except OSError as error:
        return error
    try:
        sock.settimeout(timeout)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = harness.read_until_closed(sock)
        return json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"]
    except (OSError, ValueError, IndexError) as error:
        return error
    finally:
        sock.close()


def test_an_unset_reuseport_is_per_slot_and_steered_as_root(start_clusterd, tmpdir_short):
    assert os.geteuid() == 0, "the test suite runs as root, as CI does"
    config = write_steering_config(tmpdir_short, 2, None, HTTP_WORKER)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    slots = serving_slots(clusterd, 2)
    assert socket_inode(slots[0]) != socket_inode(slots[1])
    assert clusterd.status()["listeners"] == [{"name": "http", "address": address, "fd": 3,
                                               "reuseport": "per-slot", "sockets": 2, "steered": True}]
    code, out, err = clusterd.control("status")
    assert code == 0, err
    assert "  listening: http %s (fd 3, per-slot: 2 sockets)" % address in out.splitlines()
    assert clusterd.count(r"without steering") == 0
    assert clusterd.count(r"tcp_migrate_req") == 0   # the program moves queues, whatever the sysctl


def test_connections_are_dealt_to_ready_workers_in_turn(start_clusterd, tmpdir_short):
    # Long-lived connections (HTTP/2, WebSockets) stay where they land: a shared socket lets one
    # worker take most of them; steering deals them out in turn.
    config = write_steering_config(tmpdir_short, 2, None, HTTP_WORKER)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    slots = serving_slots(clusterd, 2)
    answered = [ask(address, 5.0) for _ in range(40)]
    assert sorted(answered.count(pid) for pid in slots.values()) == [20, 20], answered
    # In turn, one after the other: a hash would repeat a worker about every other time.
    assert all(a != b for a, b in zip(answered, answered[1:])), answered


def start_with_slot_1_in_backoff(start_clusterd, directory, reuseport, stop_slot_1_first=False):
    """clusterd with 2 workers whose slot 1 is then killed and goes into a 10-20 s backoff.
    Returns (clusterd, address, slot 0's pid, the clients connected while slot 1's worker was
    stopped, if asked)."""
    marker = os.path.join(directory, "fail-slot-1")
    restart = '[restart]\ndelay = "20s"\nmax_delay = "20s"\n'
    config = write_steering_config(directory, 2, reuseport, crash_once_then_fail(marker), restart)
    clusterd = start_clusterd(["-c", config], tmpdir=directory)
    address = clusterd.address("http")
    slots = serving_slots(clusterd, 2)
    queued = []
    if stop_slot_1_first:
        # Still ready to clusterd but accepting nothing: its turns queue on its socket.
        os.kill(slots[1], signal.SIGSTOP)
        for _ in range(10):
            sock = harness.connect(address, timeout=5.0)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            queued.append(sock)
    harness.write_file(directory, "fail-slot-1", "")
    os.kill(slots[1], signal.SIGKILL)

    def in_backoff():
        return any(w["slot"] == 1 and w["state"] == "backoff" for w in clusterd.status()["workers"])
    wait_until(in_backoff, 10.0, "slot 1 in backoff", describe=clusterd.log_tail)
    return clusterd, address, slots[0], queued


@pytest.mark.parametrize("reuseport", [None, "per-slot"])
def test_a_slot_in_backoff_gets_no_new_connections(start_clusterd, tmpdir_short, reuseport):
    clusterd, address, serving, _ = start_with_slot_1_in_backoff(start_clusterd, tmpdir_short, reuseport)
    # Unsteered, about half of these would wait in slot 1's queue for its 10-20 s backoff.
    answered = [ask(address, 5.0) for _ in range(30)]
    assert answered == [serving] * 30, answered
    assert "backoff" in [w["state"] for w in clusterd.status()["workers"]]   # still: nothing waited for it


def test_connections_queued_on_a_slot_that_goes_into_backoff_move_to_the_others(start_clusterd, tmpdir_short):
    clusterd, address, serving, queued = start_with_slot_1_in_backoff(
        start_clusterd, tmpdir_short, "per-slot", stop_slot_1_first=True)
    # Slot 1's socket is closed once its slot is in backoff; the program hands its queue to slot
    # 0 (with tcp_migrate_req = 0 too). Unsteered they would wait for the restart, or be reset.
    clusterd.wait_for_log(r"per-slot socket closed name=http slot=1 address=%s$" % re.escape(address))
    answers = []
    try:
        for sock in queued:
            sock.settimeout(5.0)
            answers.append(harness.read_until_closed(sock))
    finally:
        for sock in queued:
            sock.close()
    pids = [json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"] for answer in answers]
    assert pids == [serving] * len(queued), [a[:80] for a in answers]
    assert len(queued) == 10


def test_reloads_compare_reuseport_with_the_sockets_that_run_not_with_an_unset_key(start_clusterd, tmpdir_short):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = "127.0.0.1:%d" % port
    config = write_config(tmpdir_short, 2, address=address, reuseport="shared")
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    inode = socket_inode(serving_slots(clusterd, 2)[0])

    # Unset keeps what runs: the shared socket.
    write_steering_config(tmpdir_short, 2, None, HTTP_WORKER, address=address)
    code, out, err = clusterd.control("reload")
    assert code == 0, err
    # "shared" again is no change, though an unset key would mean per-slot here.
    write_config(tmpdir_short, 2, address=address, reuseport="shared")
    code, out, err = clusterd.control("reload")
    assert code == 0, err
    after = serving_slots(clusterd, 2, generation=3)
    assert {socket_inode(pid) for pid in after.values()} == {inode}
    assert clusterd.status()["listeners"] == [{"name": "http", "address": address, "fd": 3}]

    # A real change on a fixed port is refused, naming what runs.
    write_config(tmpdir_short, 2, address=address, reuseport="per-slot")
    code, out, err = clusterd.control("reload")
    assert code != 0
    assert 'reuseport cannot change from "shared" to "per-slot"' in out + err
