"""`clusterd upgrade`: clusterd executes a binary in its own process and hands it its sockets and
workers; no worker is touched and no request fails. A binary that cannot run, or cannot take the
state, leaves the running clusterd as it was."""
import http.client
import json
import os
import shutil
import stat
import sys
import tempfile

import harness
from harness import BIN, PYTHON, Load, http_get, wait_until, worker


def http_pool(start_clusterd, workers=2):
    clusterd = start_clusterd(["--workers", str(workers), "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--graceful"])
    pids = clusterd.ready_pids(workers)
    return clusterd, clusterd.address(), sorted(pids)


def worker_view(status):
    """What a user sees of each worker that an upgrade must keep."""
    return sorted((w["slot"], w["pid"], w["generation"], w["state"], w["restarts"]) for w in status["workers"])


def private_copy_of_clusterd():
    """A copy of the binary in a directory only root can write (as an installed one is)."""
    directory = tempfile.mkdtemp(prefix="cd-bin-")
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, "clusterd-next")
    shutil.copy(BIN, copy)
    os.chmod(copy, 0o755)
    return directory, copy


def test_an_upgrade_under_load_keeps_every_worker_and_fails_no_request(start_clusterd):
    clusterd, address, pids = http_pool(start_clusterd)
    before = clusterd.status()
    directory, binary = private_copy_of_clusterd()
    try:
        load = Load(address, http_get, limit=5000)
        wait_until(lambda: load.answered >= 20, 10, "answers before the upgrade")
        code, out, err = clusterd.control("upgrade", "--binary", binary, "--json")
        assert code == 0, (out, err, clusterd.log_tail())
        reply = json.loads(out)
        assert reply["ok"] and reply["pid"] == clusterd.pid and reply["workers"] == 2, reply
        answered_at_upgrade = load.answered
        wait_until(lambda: load.answered >= answered_at_upgrade + 50, 10, "answers after the upgrade")
        answered, failed = load.stop()
        assert failed == [], failed[:5]
        after = clusterd.status()
        # The same process runs the new binary, with the same workers: no signal, no restart.
        assert after["pid"] == before["pid"] == clusterd.pid
        assert os.readlink("/proc/%d/exe" % clusterd.pid) == binary
        assert worker_view(after) == worker_view(before)
        assert sorted(w["pid"] for w in after["workers"]) == pids
        assert all(harness.pid_alive(pid) for pid in pids)
        assert len(clusterd.matches(r"upgraded in place from_version=\S+ version=\S+ pid=%d workers=2" % clusterd.pid)) == 1
        # The upgraded clusterd supervises them as before: a killed worker is replaced.
        os.kill(pids[0], 9)
        wait_until(lambda: pids[0] not in [w["pid"] for w in clusterd.status()["workers"]]
                   and clusterd.status()["workers_ready"] == 2, 15, "the killed worker replaced",
                   describe=clusterd.log_tail)
        # and stops them as before.
        code, out, err = clusterd.control("stop")
        assert code == 0, (out, err)
        assert clusterd.process.wait(timeout=30) == 0
        assert not any(harness.pid_alive(pid) for pid in pids[1:])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_upgrade_to_a_file_that_is_not_executable_leaves_clusterd_serving(start_clusterd):
    clusterd, address, pids = http_pool(start_clusterd)
    directory = tempfile.mkdtemp(prefix="cd-bin-")
    os.chmod(directory, 0o755)
    try:
        not_executable = os.path.join(directory, "clusterd-next")
        shutil.copy(BIN, not_executable)
        os.chmod(not_executable, 0o644)
        code, out, err = clusterd.control("upgrade", "--binary", not_executable)
        assert code == 1, (out, err)
        assert "upgrade refused: the binary %s is not executable" % not_executable in err, err
        # A program that is no clusterd (or a clusterd from before `upgrade`) would end the pool:
        # it is asked which states it reads first, and refused.
        code, out, err = clusterd.control("upgrade", "--binary", "/bin/true")
        assert code == 1 and "does not take over a running clusterd" in err, (code, err)
        # A relative path is refused by the client before anything is sent.
        code, out, err = clusterd.control("upgrade", "--binary", "clusterd-next")
        assert code == 2 and "absolute path" in err, (code, err)
        assert http_get(address)["pid"] in pids
        assert sorted(w["pid"] for w in clusterd.status()["workers"]) == pids
        assert os.readlink("/proc/%d/exe" % clusterd.pid) == os.path.realpath(BIN)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_upgrade_to_a_binary_another_user_could_change_is_refused(start_clusterd):
    clusterd, address, pids = http_pool(start_clusterd, workers=1)
    directory, binary = private_copy_of_clusterd()
    try:
        os.chmod(binary, 0o777)
        code, out, err = clusterd.control("upgrade", "--binary", binary)
        assert code == 1 and "upgrade refused" in err and binary in err, err
        assert sorted(w["pid"] for w in clusterd.status()["workers"]) == pids
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# A binary that cannot read the state it is handed: this one hands clusterd a state of a format
# from the future in place of the real one, as a binary of a later clusterd would see a format it
# does not know. The real state stays where the fallback names it.
FUTURE_STATE_WRAPPER = r'''#!%(python)s
import json, os, sys
if sys.argv[1:] == ["--upgrade-formats"]:
    os.execv(%(binary)r, sys.argv)  # it says it reads format 1, as a binary with a defect might
fd = int(os.environ["CLUSTERD_UPGRADE_STATE"])
state = json.loads(os.pread(fd, 1 << 24, 0))
state["format"] = 99
future = os.memfd_create("future-state", 0)
os.write(future, json.dumps(state).encode())
os.environ["CLUSTERD_UPGRADE_STATE"] = str(future)
os.execv(%(binary)r, sys.argv)
'''


def test_a_binary_that_refuses_the_state_gives_it_back_and_nothing_changes(start_clusterd):
    clusterd, address, pids = http_pool(start_clusterd)
    before = clusterd.status()
    directory, binary = private_copy_of_clusterd()
    try:
        wrapper = os.path.join(directory, "clusterd-future")
        with open(wrapper, "w") as f:
            f.write(FUTURE_STATE_WRAPPER % {"python": sys.executable, "binary": binary})
        os.chmod(wrapper, 0o755)
        load = Load(address, http_get, limit=5000)
        wait_until(lambda: load.answered >= 20, 10, "answers before the upgrade")
        code, out, err = clusterd.control("upgrade", "--binary", wrapper)
        answered, failed = load.stop()
        assert code == 1, (out, err, clusterd.log_tail())
        assert "upgrade refused by the new binary, the running clusterd goes on: format 99 is not one this " \
               "clusterd reads" in err, err
        assert failed == [], failed[:5]
        after = clusterd.status()
        assert after["pid"] == clusterd.pid
        assert worker_view(after) == worker_view(before)
        assert os.readlink("/proc/%d/exe" % clusterd.pid) == os.path.realpath(BIN)
        assert http_get(address)["pid"] in pids
        clusterd.wait_for_log(r"upgrade refused by the new binary, this one goes on: format 99")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_upgrade_waits_for_a_steady_pool(start_clusterd):
    # A worker that never becomes ready (auto readiness: it never waits on its socket).
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--ready-timeout", "60s", "--",
                               "/bin/sleep", "600"])
    clusterd.wait_for_log(r"worker spawned|control socket path")
    code, out, err = clusterd.control("upgrade")
    assert code == 1 and "upgrade refused: worker slot=0 gen=1 pid=" in err and "is not ready yet" in err, err


def test_per_slot_sockets_and_their_steering_are_kept(start_clusterd, tmpdir_short):
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 2
command = [%s]
[restart]
policy = "never"
[[listen]]
name = "http"
address = "127.0.0.1:0"
reuseport = "per-slot"
""" % ", ".join(harness.toml_string(part) for part in [PYTHON, worker("http_worker.py"), "--graceful"]))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    pids = sorted(clusterd.ready_pids(2))
    [listener] = clusterd.status()["listeners"]
    assert listener["steered"] is True and listener["sockets"] == 2, listener
    held = harness.socket_inodes(clusterd.pid)
    code, out, err = clusterd.control("upgrade")
    assert code == 0, (out, err, clusterd.log_tail())
    assert clusterd.status()["listeners"] == [listener]
    # The same two sockets, each slot's, held by clusterd and by that slot's worker.
    listening = (harness.socket_inodes(pids[0]) | harness.socket_inodes(pids[1])) & held
    assert len(listening) == 2 and listening <= harness.socket_inodes(clusterd.pid)
    assert not clusterd.matches(r"not steered|without steering"), clusterd.log_tail()
    # The steering taken over still sends new connections only where a worker accepts: slot 1's
    # worker gone for good (restart.policy = "never"), every connection is slot 0's.
    by_slot = {w["slot"]: w["pid"] for w in clusterd.status()["workers"]}
    os.kill(by_slot[1], 9)
    wait_until(lambda: not harness.pid_alive(by_slot[1]) and clusterd.status()["workers_ready"] == 1, 10,
               "slot 1's worker gone", describe=clusterd.log_tail)
    answered_by = [http_get(address, timeout=5.0)["pid"] for _ in range(40)]
    assert set(answered_by) == {by_slot[0]}, answered_by


def test_a_slot_in_backoff_is_handed_over_as_it_is(start_clusterd):
    # Slot 1's worker exits at once, every time: its second failure in a row waits 15-30 s.
    command = ["/bin/sh", "-c", 'if [ "$CLUSTERD_WORKER_ID" = 1 ]; then exit 3; fi; exec "$0" "$@"',
               PYTHON, worker("http_worker.py"), "--graceful"]
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--set", "restart.delay=30s",
                               "--set", "restart.max_delay=30s", "--"] + command)
    address = clusterd.address()
    clusterd.ready_pids(1)

    def in_backoff():
        status = clusterd.status()
        [slot1] = [w for w in status["workers"] if w["slot"] == 1]
        return status if slot1["state"] == "backoff" and slot1["next_restart_in_s"] > 5 else None

    before = wait_until(in_backoff, 15, "slot 1 in backoff", describe=clusterd.log_tail)
    code, out, err = clusterd.control("upgrade", "--json")
    assert code == 0, (out, err, clusterd.log_tail())
    assert json.loads(out)["workers"] == 1
    after = clusterd.status()
    entry = lambda status, slot: [w for w in status["workers"] if w["slot"] == slot][0]
    for key in ("pid", "state", "restarts", "last_exit", "generation"):
        assert entry(after, 0)[key] == entry(before, 0)[key], key
        assert entry(after, 1)[key] == entry(before, 1)[key], key
    assert entry(after, 1)["last_exit"] == {"code": 3}, entry(after, 1)
    # Its next start is where it was: not sooner, not reset to a fresh backoff.
    assert 0 < entry(after, 1)["next_restart_in_s"] <= entry(before, 1)["next_restart_in_s"]
    assert http_get(address)["pid"] == entry(before, 0)["pid"]


def test_a_flooding_workers_output_loses_no_line_across_the_upgrade(start_clusterd, tmp_path):
    stop, flooding = str(tmp_path / "stop"), str(tmp_path / "flooding")
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--ready", "exec", "--",
                               PYTHON, worker("output_worker.py"), "--flood-until", stop, "--flooding", flooding])
    (pid,) = clusterd.ready_pids(1)
    wait_until(lambda: os.path.exists(flooding), 30, "the worker flooding", describe=clusterd.log_tail)
    code, out, err = clusterd.control("upgrade")
    assert code == 0, (out, err, clusterd.log_tail())
    copied = os.path.getsize(clusterd.stdout_path)
    wait_until(lambda: os.path.getsize(clusterd.stdout_path) >= copied + (1 << 20), 30,
               "another MiB copied by the new binary", describe=clusterd.log_tail)
    open(stop, "w").close()
    done = "[0 %d] flood done %d\n" % (pid, pid)

    def finished():
        with open(clusterd.stdout_path, errors="replace") as f:
            text = f.read()
        return text if text.endswith(done) else None

    text = wait_until(finished, 30, "the flood's last line", describe=clusterd.log_tail)
    numbers, other = [], []
    for line in text.splitlines()[:-1]:
        parts = line.split()
        if len(parts) == 6 and parts[:4] == ["[0", "%d]" % pid, "flood", str(pid)] and parts[5] == "y" * 80:
            numbers.append(int(parts[4]))
        else:
            other.append(line)
    # Every line, in order, none lost: at most the one being written at the exec shows as two parts.
    missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
    assert numbers == sorted(numbers) and len(numbers) > 20000, numbers[:3]
    assert (len(other), len(missing)) in ((0, 0), (2, 1), (1, 0)), (other[:4], missing[:4])
    if len(other) == 1:
        # Split right before its newline: the line went out whole, its end as an empty line.
        assert other[0].rstrip() == "[0 %d]" % pid, other
    elif other:
        # The two parts, in order, are that line whole: nothing of it lost either.
        prefix = "[0 %d] " % pid
        assert other[1].startswith(prefix), other
        assert other[0] + other[1][len(prefix):] == "%sflood %d %d %s" % (prefix, pid, missing[0], "y" * 80), other


def test_a_symlink_into_a_directory_another_user_owns_is_refused(start_clusterd):
    clusterd, address, pids = http_pool(start_clusterd, workers=1)
    directory, binary = private_copy_of_clusterd()
    try:
        theirs = os.path.join(directory, "theirs")
        os.mkdir(theirs, 0o755)
        shutil.copy(binary, os.path.join(theirs, "clusterd"))
        os.chown(theirs, 65534, 65534)  # nobody could swap the file between the check and the exec
        link = os.path.join(directory, "clusterd-link")
        os.symlink(os.path.join(theirs, "clusterd"), link)
        code, out, err = clusterd.control("upgrade", "--binary", link)
        assert code == 1 and "upgrade refused" in err and theirs in err, err
        assert os.readlink("/proc/%d/exe" % clusterd.pid) == os.path.realpath(BIN)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_worker_program_removed_meanwhile_does_not_stop_the_upgrade(start_clusterd):
    directory = tempfile.mkdtemp(prefix="cd-prog-")
    try:
        program = os.path.join(directory, "server.py")
        with open(worker("http_worker.py")) as source, open(program, "w") as copy:
            copy.write("#!%s\n" % PYTHON + source.read())
        os.chmod(program, 0o755)
        clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--", program, "--graceful"])
        pids = sorted(clusterd.ready_pids(2))
        os.unlink(program)
        # The new binary takes the program and user as this generation resolved them: the running
        # workers are no reason to refuse (a restart would fail as it would have before).
        code, out, err = clusterd.control("upgrade")
        assert code == 0, (out, err, clusterd.log_tail())
        assert sorted(w["pid"] for w in clusterd.status()["workers"]) == pids
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_the_metrics_endpoint_and_a_unix_socket_stay_the_same_sockets(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "web.sock")
    clusterd = start_clusterd(["--workers", "1", "--listen", "unix:" + path, "--set", "metrics.listen=127.0.0.1:0",
                               "--", PYTHON, worker("http_worker.py"), "--graceful"])
    (pid,) = clusterd.ready_pids(1)
    metrics = clusterd.wait_for_log(r"metrics endpoint listening address=(\S+)")[0].group(1)
    socket_file = os.stat(path)
    code, out, err = clusterd.control("upgrade")
    assert code == 0, (out, err, clusterd.log_tail())
    # The same socket file, still answering; the same endpoint, answering from the new binary.
    assert (os.stat(path).st_ino, os.stat(path).st_dev) == (socket_file.st_ino, socket_file.st_dev)
    assert http_get("unix:" + path)["pid"] == pid
    host, port = harness.split_host_port(metrics)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and "clusterd_workers_ready 1" in response.read().decode()
    connection.close()
    # The new binary owns the socket file now: it removes it when it stops.
    code, out, err = clusterd.control("stop")
    assert code == 0, err
    assert clusterd.process.wait(timeout=30) == 0
    assert not os.path.exists(path)
