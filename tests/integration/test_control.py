"""The control socket and the operator commands (interface §4.4, §4.5), with the real binary:
`status` tells the truth about clusterd's children, `scale` and `reload` change who serves and
return when done, `stop` stops, the socket is private and refuses other users, junk is answered
or cut off without harming the daemon, many clients at once are fine, a second instance on the
same path is refused, `--control none` opens nothing, and a client without an instance says where
it looked.
"""
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import harness
from harness import PYTHON, pid_alive, serving_pids, wait_until, worker

HTTP_WORKER = [PYTHON, worker("http_worker.py"), "--graceful"]


def start_http(start_clusterd, workers, *extra, **kwargs):
    return start_clusterd(["--workers", str(workers), "--listen", "http=127.0.0.1:0"] + list(extra)
                          + ["--"] + HTTP_WORKER, **kwargs)


def control_path(clusterd):
    return clusterd.wait_for_log(r"control socket path=(\S+)")[0].group(1)


def worker_pids(status):
    return {w["pid"] for w in status["workers"] if w["pid"] is not None}


class RawClient:
    """A control connection driven by hand: bytes in, reply lines out, with a deadline."""

    def __init__(self, path, timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect, as clusterd's own client does: it waits while the listen backlog
        # is full instead of failing with EAGAIN as a non-blocking one would.
        self.sock.connect(path)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        """The next reply line as JSON, or None when the server closed first."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def closed(self):
        """True once the server closed the connection (after any reply still buffered)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


# ---- status, scale, reload, stop


def test_status_lists_exactly_the_children_of_clusterd(start_clusterd):
    clusterd = start_http(start_clusterd, 3)
    clusterd.ready_pids(3)
    status = clusterd.status()
    assert status["ok"] is True
    assert status["name"] == "python3"
    assert status["pid"] == clusterd.pid
    assert status["generation"] == 1
    assert status["workers_wanted"] == 3
    assert status["config"] is None
    # --listen leaves reuseport unset: per-slot and steered, as root (test_reuseport.py).
    assert status["listeners"] == [{"name": "http", "address": clusterd.address("http"), "fd": 3,
                                    "reuseport": "per-slot", "sockets": 3, "steered": True}]
    assert worker_pids(status) == set(clusterd.children())
    assert sorted(w["slot"] for w in status["workers"]) == [0, 1, 2]
    for entry in status["workers"]:
        assert entry["state"] == "ready" and entry["generation"] == 1
        assert entry["restarts"] == 0 and entry["last_exit"] is None
        assert entry["next_restart_in_s"] is None and entry["notify_status"] is None
        assert entry["uptime_s"] >= 0

    # For people: a header naming the instance, then one aligned row per worker.
    code, out, err = clusterd.control("status")
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0].startswith("python3: pid %d, generation 1, 3/3 workers ready" % clusterd.pid)
    assert "  listening: http %s (fd 3, per-slot: 3 sockets)" % clusterd.address("http") in lines
    header = next(l for l in lines if l.startswith("SLOT"))
    assert re.match(r"SLOT +PID +GEN +STATE +UPTIME +CPU +MEM +RESTARTS +LAST EXIT$", header)
    rows = lines[lines.index(header) + 1:]
    assert sorted(int(row.split()[1]) for row in rows) == sorted(worker_pids(status))
    assert all(row.split()[3] == "ready" for row in rows)


def test_scale_up_then_down_changes_the_serving_pids(start_clusterd):
    clusterd = start_http(start_clusterd, 1)
    [first] = clusterd.ready_pids(1)
    address = clusterd.address("http")

    code, out, err = clusterd.control("scale", "3", "--json")
    assert (code, json.loads(out)) == (0, {"ok": True, "workers_wanted": 3}), err
    status = wait_until(lambda: (lambda s: s if s["workers_ready"] == 3 else None)(clusterd.status()),
                        message="3 ready workers", describe=clusterd.log_tail)
    three = worker_pids(status)
    assert len(three) == 3 and first in three and three == set(clusterd.children())
    clusterd.seen_pids.update(three)
    assert serving_pids(address, three) == three

    code, out, err = clusterd.control("scale", "1")
    assert (code, out, err) == (0, "workers wanted: 1\n", "")
    status = wait_until(lambda: (lambda s: s if len(s["workers"]) == 1 else None)(clusterd.status()),
                        message="1 worker left", describe=clusterd.log_tail)
    [(slot, pid)] = [(w["slot"], w["pid"]) for w in status["workers"]]
    assert slot == 0 and pid == first       # the highest slots go first
    assert serving_pids(address, {first}, limit=20) == {first}
    wait_until(lambda: set(clusterd.children()) == {first}, message="scaled-down workers reaped")


def test_reload_returns_after_every_worker_was_replaced(start_clusterd):
    clusterd = start_http(start_clusterd, 2)
    old = set(clusterd.ready_pids(2))
    code, out, err = clusterd.control("reload", "--json")
    assert (code, json.loads(out)) == (0, {"ok": True, "generation": 2}), err
    # No waiting here: when `reload` returned, the reload was finished.
    status = clusterd.status()
    new = worker_pids(status)
    clusterd.seen_pids.update(new)
    assert status["generation"] == 2 and status["reloading_to"] is None
    assert len(new) == 2 and not (new & old)
    assert all(w["generation"] == 2 and w["state"] == "ready" for w in status["workers"])
    assert not [pid for pid in old if pid_alive(pid)]
    assert set(clusterd.children()) == new

    code, out, err = clusterd.control("reload")
    assert (code, out, err) == (0, "reload finished: generation 3\n", "")


def test_reload_of_a_broken_file_answers_at_once_with_the_problem(start_clusterd, tmpdir_short):
    config = harness.write_file(tmpdir_short, "c.toml", 'name = "shop"\nworkers = 1\ncommand = %s\n'
                                % json.dumps(HTTP_WORKER))
    clusterd = start_clusterd(["-c", config, "--listen", "127.0.0.1:0"], tmpdir=tmpdir_short)
    [pid] = clusterd.ready_pids(1)
    harness.write_file(tmpdir_short, "c.toml", 'name = "shop"\nworkers = "many"\ncommand = %s\n'
                       % json.dumps(HTTP_WORKER))
    code, out, err = clusterd.control("reload", "--json")
    reply = json.loads(out)
    assert code == 1 and reply["ok"] is False and reply["generation"] == 1, err
    assert reply["error"] == ('reload refused: the configuration has 1 problem(s): %s:2:11: workers: '
                              'expected an integer 1-4096 or "auto", found "many"' % config)
    code, out, err = clusterd.control("reload")
    assert code == 1 and out == "" and err.startswith("clusterd: reload refused: the configuration has 1 problem(s)")
    assert worker_pids(clusterd.status()) == {pid}


def test_stop_exits_0_and_clusterd_exits_0(start_clusterd):
    clusterd = start_http(start_clusterd, 2)
    clusterd.ready_pids(2)
    path = control_path(clusterd)
    code, out, err = clusterd.control("stop")
    assert (code, out, err) == (0, "stopped\n", "")
    # `stop` returned when clusterd closed the connection on its way out, its socket file gone.
    assert not os.path.exists(path)
    assert clusterd.wait_exit(timeout=10.0) == 0
    assert clusterd.count(r"stop requested over the control socket") == 1


def send_and_close(path, data):
    """Sends data on a fresh control connection and closes it at once, reading no reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(data)
    finally:
        sock.close()


def test_requests_sent_just_before_close_are_carried_out(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "c.sock")
    clusterd = start_http(start_clusterd, 1, "--control", path, tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    send_and_close(path, b"".join(b"scale %d\n" % n for n in range(2, 22)))
    # Every one carried out, in order, though no reply could be delivered.
    clusterd.wait_for_log(r"scaling workers=21\b")
    assert [int(m.group(1)) for m in clusterd.matches(r"scaling workers=(\d+)")] == list(range(2, 22))
    # Replies to nobody are dropped quietly, and the next client is served.
    assert clusterd.status("--control", path)["workers_wanted"] == 21
    complaints = [line for line in clusterd.log().splitlines()
                  if harness.log_level(line) in ("warn", "error", "critical")]
    assert complaints == [], clusterd.log_tail()


def test_a_stop_sent_just_before_close_stops_clusterd(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "c.sock")
    clusterd = start_http(start_clusterd, 2, "--control", path, tmpdir=tmpdir_short)
    clusterd.ready_pids(2)
    send_and_close(path, b"stop\n")
    assert clusterd.wait_exit(timeout=15.0) == 0
    assert clusterd.count(r"stop requested over the control socket") == 1
    assert not os.path.exists(path)


def test_check_judges_the_directory_and_creates_nothing(tmpdir_short):
    xdg = os.path.join(tmpdir_short, "xdg")
    os.mkdir(xdg)
    env = {"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": xdg}
    code, out, err = harness.run_clusterd(["check", "--", "true"], env=env)
    assert (code, err) == (0, ""), err
    assert not os.path.exists(os.path.join(xdg, "clusterd"))
    assert "\n[control]\n# socket: unset" in out
    code, out, err = harness.run_clusterd(["check", "--control", "none", "--", "true"], env=env)
    assert code == 0 and '\n[control]\nsocket = "none"\n' in out
    os.mkdir(os.path.join(xdg, "clusterd"), 0o777)
    os.chmod(os.path.join(xdg, "clusterd"), 0o777)
    code, out, err = harness.run_clusterd(["check", "--", "true"], env=env)
    assert code == 2 and "is writable by other users (mode 0777)" in err
    code, out, err = harness.run_clusterd(["check", "--control", "rel.sock", "--", "true"], env=env)
    assert (code, err) == (2, '--control: control.socket: expected an absolute path or "none", found rel.sock\n')


# ---- the socket: where, what mode, who may use it


@harness.needs_private_runtime
def test_socket_is_0600_in_a_0700_directory_it_created(start_clusterd, tmpdir_short):
    xdg = os.path.join(tmpdir_short, "xdg")
    os.mkdir(xdg, 0o755)
    env = {"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": xdg}
    clusterd = start_http(start_clusterd, 1, "--name", "private", env=env, private_runtime=True)
    clusterd.ready_pids(1)
    path = control_path(clusterd)
    assert path == os.path.join(xdg, "clusterd", "private.sock")
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o7777 == 0o700
    # found in $XDG_RUNTIME_DIR/clusterd
    assert clusterd.status(discover=True)["name"] == "private"
    code, out, err = clusterd.control("--name", "private", "status", "--json", discover=True)
    assert code == 0 and json.loads(out)["pid"] == clusterd.pid


def test_a_directory_others_may_write_is_refused(tmpdir_short):
    os.chmod(tmpdir_short, 0o777)
    code, out, err = harness.run_clusterd(["--", "true"], env={"RUNTIME_DIRECTORY": tmpdir_short})
    assert code == 2
    assert err.strip() == ("clusterd: control socket directory %s is writable by other users (mode 0777); "
                           "set control.socket (or --control) to another path, or none" % tmpdir_short)


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV, reason="needs root and setpriv to act as another user")
def test_a_client_of_another_uid_is_refused(start_clusterd, tmpdir_short):
    os.chmod(tmpdir_short, 0o755)
    clusterd = start_http(start_clusterd, 1, "--control", os.path.join(tmpdir_short, "c.sock"),
                          tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    path = control_path(clusterd)
    as_nobody = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", harness.BIN]
    # The file's mode stops it first...
    result = subprocess.run(as_nobody + ["status", "--control", path], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "clusterd: cannot connect to control socket %s: Permission denied\n" % path
    # ...and SO_PEERCRED when the file is opened up.
    os.chmod(path, 0o666)
    result = subprocess.run(as_nobody + ["status", "--json", "--control", path], capture_output=True,
                            text=True, timeout=30)
    assert (result.returncode, json.loads(result.stdout)) == (1, {"ok": False, "error": "permission denied"})
    assert clusterd.wait_for_log(r"control connection refused uid=65534 pid=\d+")
    assert clusterd.status()["pid"] == clusterd.pid


# ---- junk and load


def test_junk_is_answered_or_cut_off_and_status_still_answers(start_clusterd):
    clusterd = start_http(start_clusterd, 1)
    clusterd.ready_pids(1)
    path = control_path(clusterd)
    # Started first: its 10 s idle limit runs while the rest is checked.
    silent = RawClient(path)
    silent.send(b"sta")

    unknown = RawClient(path)
    unknown.send(b"frobnicate\n")
    assert unknown.line() == {"ok": False, "error": 'unknown request "frobnicate"; expected status, reload, '
                                                   'scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade'}
    unknown.send(b"scale 5000\nscale x\n")
    expected = "scale: expected a worker count 1-4096, or +N or -N to change it by N, found "
    assert unknown.line()["error"] == expected + '"5000"'
    assert unknown.line()["error"] == expected + '"x"'
    unknown.send(b"\x00\xff\xfe binary \x01\n")
    assert unknown.line() == {"ok": False, "error": "request is not plain text; expected status, reload, "
                                                   "scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade"}
    unknown.send(b"status\n")                       # the same connection still works
    assert unknown.line()["pid"] == clusterd.pid
    unknown.close()

    # 10 KiB fits in the socket's buffer, so all of it is sent before clusterd reads any; its
    # reply is queued before it closes, and a unix socket delivers queued data before the reset.
    long_line = RawClient(path)
    long_line.send(b"x" * 10240 + b"\n")
    assert long_line.line() == {"ok": False, "error": "request line longer than 4096 bytes"}
    assert long_line.closed()
    assert clusterd.status()["workers_wanted"] == 1

    assert silent.line() == {"ok": False, "error": "no complete request line within 10s"}
    assert silent.closed()
    status = clusterd.status()
    assert worker_pids(status) == set(clusterd.children()) and status["workers_ready"] == 1


def test_200_concurrent_status_clients_all_get_answers(start_clusterd):
    clusterd = start_http(start_clusterd, 2)
    pids = set(clusterd.ready_pids(2))
    path = control_path(clusterd)
    clients = [RawClient(path, timeout=30.0) for _ in range(200)]
    for client in clients:
        client.sock.setblocking(False)
        client.sock.sendall(b"status\n")
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    answers = {}
    deadline = time.monotonic() + 30.0
    while len(answers) < len(clients) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            client = key.data
            chunk = client.sock.recv(65536)
            client.buffer += chunk
            if b"\n" in client.buffer or not chunk:
                answers[id(client)] = client.buffer
                selector.unregister(client.sock)
    assert len(answers) == 200, "%d of 200 answered\n%s" % (len(answers), clusterd.log_tail())
    for raw in answers.values():
        reply = json.loads(raw.split(b"\n", 1)[0])
        assert reply["ok"] is True and worker_pids(reply) == pids
    for client in clients:
        client.close()
    assert clusterd.status()["pid"] == clusterd.pid


# ---- one instance per socket, none at all, none found


def test_a_second_clusterd_on_the_same_path_exits_2(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "c.sock")
    clusterd = start_http(start_clusterd, 1, "--control", path, tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    code, out, err = harness.run_clusterd(["--control", path, "--", "true"])
    assert code == 2
    assert err.strip() == "clusterd: another clusterd is running (control socket %s answers)" % path
    # The refused one left the first instance's socket alone.
    assert clusterd.status("--control", path)["pid"] == clusterd.pid


def test_a_stale_socket_of_a_killed_instance_is_replaced(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "c.sock")
    killed = start_http(start_clusterd, 1, "--control", path, tmpdir=tmpdir_short)
    killed.ready_pids(1)
    killed.signal(signal.SIGKILL)
    killed.wait_exit()
    assert os.path.exists(path)                     # SIGKILL leaves it behind
    code, out, err = killed.control("status", "--control", path)
    assert code == 2 and "Connection refused" in err
    second_dir = tempfile.mkdtemp(prefix="cd-")
    clusterd = start_http(start_clusterd, 1, "--control", path, tmpdir=second_dir)
    clusterd.ready_pids(1)
    assert clusterd.status("--control", path)["pid"] == clusterd.pid


@harness.needs_private_runtime
def test_control_none_opens_no_socket(start_clusterd):
    clusterd = start_http(start_clusterd, 1, "--control", "none", private_runtime=True)
    clusterd.ready_pids(1)
    assert clusterd.count(r"control socket") == 0
    assert not [name for name in os.listdir(clusterd.tmpdir) if name.endswith(".sock")]
    with open("/proc/net/unix") as f:
        listening = {int(fields[6]) for fields in (line.split() for line in f.readlines()[1:])
                     if int(fields[3], 16) & 0x10000}
    held = set()
    for fd in os.listdir("/proc/%d/fd" % clusterd.pid):
        target = os.readlink("/proc/%d/fd/%s" % (clusterd.pid, fd))
        if target.startswith("socket:["):
            held.add(int(target[len("socket:["):-1]))
    assert not (held & listening)                   # no unix socket listening in clusterd
    code, out, err = clusterd.control("status", "--name", "python3", discover=True)
    assert code == 2 and err.startswith("clusterd: no clusterd named python3 found (tried %s/python3.sock, "
                                        % clusterd.tmpdir)


@harness.needs_private_runtime
def test_a_client_without_an_instance_exits_2_naming_the_paths_tried(tmpdir_short):
    env = {"RUNTIME_DIRECTORY": tmpdir_short, "XDG_RUNTIME_DIR": os.path.join(tmpdir_short, "xdg")}
    code, out, err = harness.run_clusterd(["status", "--name", "nosuch"], env=env, private_runtime=True)
    uid = os.geteuid()
    assert (code, out) == (2, "")
    assert err == ("clusterd: no clusterd named nosuch found (tried {0}/nosuch.sock, {0}/xdg/clusterd/nosuch.sock, "
                   "/run/clusterd/nosuch.sock, /tmp/clusterd-{1}/nosuch.sock)\n".format(tmpdir_short, uid))
    path = os.path.join(tmpdir_short, "gone.sock")
    code, out, err = harness.run_clusterd(["stop", "--control", path])
    assert (code, err) == (2, "clusterd: cannot connect to control socket %s: No such file or directory\n" % path)


def test_the_client_finds_the_instance_from_its_config_file(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "shop.ctl")
    config = harness.write_file(tmpdir_short, "c.toml", 'name = "shop"\nworkers = 1\ncommand = %s\n'
                                '[control]\nsocket = "%s"\n' % (json.dumps(HTTP_WORKER), path))
    clusterd = start_clusterd(["-c", config, "--listen", "127.0.0.1:0"], tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    assert control_path(clusterd) == path
    # From anywhere, with nothing but the file: its control.socket.
    code, out, err = harness.run_clusterd(["-c", config, "status", "--json"], cwd="/")
    assert code == 0 and json.loads(out)["name"] == "shop", err


@harness.needs_private_runtime
def test_several_instances_need_a_name(start_clusterd, tmpdir_short):
    env = {"RUNTIME_DIRECTORY": tmpdir_short}
    first = start_http(start_clusterd, 1, "--name", "one", env=env, private_runtime=True)
    second = start_http(start_clusterd, 1, "--name", "two", env=env, private_runtime=True)
    first.ready_pids(1)
    second.ready_pids(1)
    code, out, err = first.control("status", discover=True)
    assert code == 2
    assert err == ("clusterd: several control sockets found: {0}/one.sock, {0}/two.sock; choose one with "
                   "--name NAME or --control PATH\n".format(tmpdir_short))
    assert first.status("--name", "two", discover=True)["pid"] == second.pid


# ---- a reload the client waits for in vain, and more clients than are served at once

NOTIFY_WORKER = [PYTHON, worker("notify_worker.py")]   # serves HTTP once it sent READY=1


def write_notify_config(directory, command, ready_timeout):
    """2 workers of `command` in notify mode on an HTTP listener (port 0), as directory/c.toml."""
    return harness.write_file(directory, "c.toml", 'workers = 2\ncommand = %s\n[[listen]]\nname = "http"\n'
                              'address = "127.0.0.1:0"\n[ready]\nmode = "notify"\ntimeout = "%s"\n'
                              % (json.dumps(command), ready_timeout))


def assert_only_the_old_workers_serve(clusterd, address, old):
    # The abandoned reload's new workers are being stopped when the reply comes: wait for them.
    wait_until(lambda: set(clusterd.children()) == old, message="only the old workers left",
               describe=lambda: "%s\n%s" % (clusterd.children(), clusterd.log_tail()))
    status = clusterd.status()
    assert status["generation"] == 1 and status["reloading_to"] is None and status["workers_ready"] == 2
    assert worker_pids(status) == old
    assert all(w["generation"] == 1 and w["state"] == "ready" for w in status["workers"])
    assert serving_pids(address, old) == old


def test_reload_client_exits_1_with_the_reason_when_new_workers_are_never_ready(start_clusterd, tmpdir_short):
    config = write_notify_config(tmpdir_short, NOTIFY_WORKER, "1m")
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = set(clusterd.ready_pids(2))
    # The new file's workers never send READY=1, and have 1 s to do it.
    write_notify_config(tmpdir_short, NOTIFY_WORKER + ["--never-ready"], "1s")
    code, out, err = clusterd.control("reload")
    assert (code, out, err) == (1, "", "clusterd: reload abandoned: slot=0 gen=2 not ready within 1s\n")
    assert clusterd.count(r"reload abandoned: slot=0 gen=2 not ready within 1s; the running workers keep "
                          r"serving generation=1$") == 1
    # --json prints the reply as it came; an abandoned generation's number is not used again.
    code, out, err = clusterd.control("reload", "--json")
    assert (code, json.loads(out), err) == (1, {"ok": False, "generation": 3,
                                                "error": "reload abandoned: slot=0 gen=3 not ready within 1s"}, "")
    assert_only_the_old_workers_serve(clusterd, address, old)


def test_reload_client_exits_1_with_the_reason_when_a_new_worker_fails_to_start(start_clusterd, tmpdir_short):
    config = write_notify_config(tmpdir_short, NOTIFY_WORKER, "1m")
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = set(clusterd.ready_pids(2))
    # The new command dies at start (a missing database, say) before it could send READY=1.
    write_notify_config(tmpdir_short, [PYTHON, "-c", "raise SystemExit(3)"], "1m")
    code, out, err = clusterd.control("reload")
    assert (code, out, err) == (1, "", "clusterd: reload abandoned: slot=0 gen=2 exited status=exit:3 "
                                       "before it was ready\n")
    assert clusterd.count(r"reload abandoned: slot=0 gen=2 exited status=exit:3 before it was ready; the "
                          r"running workers keep serving generation=1$") == 1
    assert_only_the_old_workers_serve(clusterd, address, old)


def test_600_concurrent_status_clients_all_get_answers_at_once(start_clusterd):
    """Beyond the per-uid cap (256) a new connection closes the oldest idle one instead of waiting
    in the listen queue (issue 13, attack 7): every client is answered, and those answered first
    are closed afterwards, each told why."""
    clusterd = start_http(start_clusterd, 2)
    pids = set(clusterd.ready_pids(2))
    path = control_path(clusterd)
    clients = []
    for _ in range(600):
        client = RawClient(path, timeout=30.0)
        client.send(b"status\n")
        client.sock.setblocking(False)
        clients.append(client)
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    ended = []   # every reply read and the connection closed, or 600 answered with the rest open
    deadline = time.monotonic() + 60.0
    answered = lambda: sum(1 for client in clients if b"\n" in client.buffer)
    while (answered() < len(clients) or len(ended) < len(clients) - 256) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            client = key.data
            chunk = client.sock.recv(65536)
            client.buffer += chunk
            if not chunk:
                ended.append(client)
                selector.unregister(client.sock)
    assert answered() == 600, "%d of 600 answered\n%s" % (answered(), clusterd.log_tail())
    shed = json.dumps({"ok": False, "error": "too many control connections (at most 256 per user, 512 in all); "
                                            "this idle one was closed to make room"}, separators=(",", ":"))
    for client in clients:
        lines = client.buffer.decode().splitlines()
        reply = json.loads(lines[0])
        assert reply["ok"] is True and reply["pid"] == clusterd.pid and worker_pids(reply) == pids
        assert lines[1:] in ([], [shed]), lines
    # The oldest were closed for the newest; the per-uid cap's worth stay open.
    assert len(ended) == 600 - 256, clusterd.log_tail()
    for client in clients:
        client.close()
    assert clusterd.status()["workers_ready"] == 2


# ---- restart, scale by N, ls


def slot_pids(status):
    return {w["slot"]: w["pid"] for w in status["workers"] if w["state"] == "ready"}


def test_restart_replaces_a_slots_worker_new_one_first_and_all_one_at_a_time(start_clusterd):
    clusterd = start_http(start_clusterd, 2)
    clusterd.ready_pids(2)
    before = slot_pids(clusterd.status())
    code, out, err = clusterd.control("restart", "1")
    assert (code, out, err) == (0, "restarting slot 1\n", "")
    replaced = clusterd.wait_for_log(r"worker recycled slot=1 reason=restart old_pid=(\d+) pid=(\d+)")[0]
    assert int(replaced.group(1)) == before[1]
    after = int(replaced.group(2))
    clusterd.seen_pids.add(after)
    # The old worker was asked to stop once the new one was ready, and stopped by itself.
    clusterd.wait_for_log(r"worker stopped slot=1 gen=1 pid=%d status=exit:0 " % before[1])
    assert slot_pids(clusterd.status()) == {0: before[0], 1: after}
    assert re.search(r"slot restart requested slot=1 by=control uid=%d pid=\d+" % os.geteuid(), clusterd.log())

    code, out, err = clusterd.control("restart", "all", "--json")
    assert (code, json.loads(out)) == (0, {"ok": True, "slots": [0, 1]}), err
    recycled = clusterd.wait_for_log(r"worker recycled slot=(\d) reason=restart", count=3, timeout=20.0)
    assert [m.group(1) for m in recycled] == ["1", "0", "1"]
    # One slot at a time: slot 1's new worker was started only after slot 0's had taken over.
    log = clusterd.log()
    assert log.index("worker recycled slot=0 reason=restart") < log.rindex("worker recycling slot=1")
    status = wait_until(lambda: (lambda s: s if len(s["workers"]) == 2 else None)(clusterd.status()),
                        message="the old workers gone", describe=clusterd.log_tail)
    assert not set(slot_pids(status).values()) & (set(before.values()) | {after})
    clusterd.seen_pids.update(slot_pids(status).values())

    code, out, err = clusterd.control("restart", "2")
    assert (code, out, err) == (1, "", "clusterd: restart: no slot 2; the slots are 0-1\n")


def test_restart_ends_a_slots_backoff_and_clears_its_count_and_last_exit(start_clusterd, tmpdir_short):
    broken = os.path.join(tmpdir_short, "broken")
    # The worker exits 1 at once while the file `broken` exists: a release with a bad setting.
    command = ["/bin/sh", "-c", 'test -e "$0" && exit 1; exec "$@"', broken] + HTTP_WORKER
    clusterd = start_clusterd(["--workers", "2", "--listen", "http=127.0.0.1:0", "--set", "restart.delay=60s",
                               "--"] + command, tmpdir=tmpdir_short)
    [first, _] = clusterd.ready_pids(2)
    open(broken, "w").close()
    os.kill(first, signal.SIGKILL)
    # Restarted at once (the first failure of a streak), exits 1, then waits about a minute.
    status = wait_until(lambda: (lambda s: s if any(w["state"] == "backoff" for w in s["workers"]) else None)(
        clusterd.status()), 10.0, "a slot in backoff", describe=clusterd.log_tail)
    [waiting] = [w for w in status["workers"] if w["state"] == "backoff"]
    assert waiting["restarts"] == 1 and waiting["last_exit"] == {"code": 1}, waiting
    os.unlink(broken)                                 # the fix
    code, out, err = clusterd.control("restart", str(waiting["slot"]))
    assert (code, err) == (0, ""), err
    assert clusterd.wait_for_log(r"slot restart requested slot=%d was=backoff by=control " % waiting["slot"])
    ready = clusterd.wait_for_log(r"worker ready slot=%d gen=1 pid=(\d+)" % waiting["slot"], count=2)[-1]
    clusterd.seen_pids.add(int(ready.group(1)))
    [entry] = [w for w in clusterd.status()["workers"] if w["slot"] == waiting["slot"]]
    assert (entry["state"], entry["restarts"], entry["last_exit"]) == ("ready", 0, None), entry


def test_scale_by_n_counts_from_the_workers_wanted_and_the_log_names_who_asked(start_clusterd):
    clusterd = start_http(start_clusterd, 1)
    clusterd.ready_pids(1)
    code, out, err = clusterd.control("scale", "+2")
    assert (code, out, err) == (0, "workers wanted: 3\n", "")
    clusterd.ready_pids(3)
    assert re.search(r"scaling workers=3 from=1 by=control uid=%d pid=\d+" % os.geteuid(), clusterd.log())
    code, out, err = clusterd.control("scale", "-1", "--json")
    assert (code, json.loads(out)) == (0, {"ok": True, "workers_wanted": 2}), err
    clusterd.wait_for_log(r"scaling workers=2 from=3 by=control ")
    code, out, err = clusterd.control("scale", "-2")
    assert (code, out) == (1, "")
    assert err == "clusterd: scale: 2 workers now, so -2 would make 0; the count is 1-4096\n"
    clusterd.signal(signal.SIGTTIN)
    clusterd.wait_for_log(r"scaling workers=3 from=2 by=SIGTTIN$")


def test_relative_scales_read_together_each_count_from_the_one_before(start_clusterd, tmpdir_short):
    path = os.path.join(tmpdir_short, "c.sock")
    clusterd = start_http(start_clusterd, 1, "--control", path, tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    # One write: clusterd reads and answers all four before it handles the first, so each must
    # count from the target queued before it, not from the count wanted when they arrived.
    send_and_close(path, b"scale +1\nscale +1\nscale -1\nscale +2\n")
    clusterd.wait_for_log(r"scaling workers=", count=4)
    assert [int(m.group(1)) for m in clusterd.matches(r"scaling workers=(\d+)")] == [2, 3, 2, 4]
    assert clusterd.status("--control", path)["workers_wanted"] == 4
    clusterd.ready_pids(4)


@harness.needs_private_runtime
def test_ls_lists_every_instance_in_the_runtime_directories(start_clusterd, tmpdir_short):
    runtime = os.path.join(tmpdir_short, "run")
    os.mkdir(runtime, 0o700)
    clusterd = start_http(start_clusterd, 2, "--name", "shop", env={"RUNTIME_DIRECTORY": runtime},
                          private_runtime=True)
    clusterd.ready_pids(2)
    # What a killed instance leaves: a socket file nobody listens on.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.path.join(runtime, "gone.sock"))
    stale.close()
    code, out, err = clusterd.control("ls", discover=True)
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert re.match(r"NAME +PID +GEN +WORKERS +STATE +SOCKET$", lines[0]), out
    assert re.match(r"shop +%d +1 +2/2 +running +%s/shop\.sock$" % (clusterd.pid, re.escape(runtime)), lines[2]), out
    assert re.match(r"- +- +- +- +no answer +%s/gone\.sock \(.*refused.*\)$" % re.escape(runtime), lines[1]), out
    code, out, err = clusterd.control("ls", "--json", discover=True)
    listed = {entry["socket"]: entry for entry in json.loads(out)}
    assert listed[os.path.join(runtime, "shop.sock")] == {
        "socket": os.path.join(runtime, "shop.sock"), "ok": True, "name": "shop", "pid": clusterd.pid,
        "generation": 1, "workers_ready": 2, "workers_wanted": 2, "reloading_to": None, "stopping": False}
    assert listed[os.path.join(runtime, "gone.sock")]["ok"] is False


def tree_cpu_seconds(pid):
    """User + system CPU of pid and its children, from /proc as the test reads it."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        with open("/proc/%d/stat" % current) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
        for task in os.listdir("/proc/%d/task" % current):
            with open("/proc/%d/task/%s/children" % (current, task)) as f:
                pids += [int(p) for p in f.read().split()]
    return total / os.sysconf("SC_CLK_TCK")


def test_status_shows_what_each_workers_process_tree_costs(start_clusterd, tmpdir_short):
    done = os.path.join(tmpdir_short, "done")
    clusterd = start_clusterd(["--workers", "1", "--listen", "http=127.0.0.1:0", "--", PYTHON,
                               worker("costly_worker.py"), "--child-mib", "64", "--child-cpu", "0.5",
                               "--done", done])
    [pid] = clusterd.ready_pids(1)
    wait_until(lambda: os.path.exists(done), 30.0, "the worker's child to use its memory and CPU")

    before = tree_cpu_seconds(pid)
    status = clusterd.status()
    after = tree_cpu_seconds(pid)
    [entry] = status["workers"]
    assert entry["pid"] == pid and entry["processes"] == 2      # the worker and its child
    assert before - 0.01 <= entry["cpu_s"] <= after + 0.01
    assert entry["cpu_s"] >= 0.5
    # PSS is read only when asked: it costs more than everything else together.
    assert entry["rss_bytes"] >= 64 << 20 and entry["pss_bytes"] is None
    [with_pss] = clusterd.status("--pss")["workers"]
    assert with_pss["pid"] == pid and with_pss["processes"] == 2
    assert 64 << 20 <= with_pss["pss_bytes"] <= with_pss["rss_bytes"]
    assert abs(entry["started_at"] - (time.time() - entry["uptime_s"])) < 2.0
    # The first request: the average since the worker started.
    assert entry["cpu_percent"] > 0

    # A later request: the share of one core since the previous one, while the worker idles.
    wait_until(lambda: clusterd.status()["workers"][0]["cpu_percent"] < 10, 10.0,
               "the idle worker's CPU share to fall", describe=clusterd.log_tail)

    code, out, err = clusterd.control("status")
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("SLOT"))
    [row] = lines[lines.index(header) + 1:]
    columns = dict(zip(header.replace("LAST EXIT", "LAST_EXIT").split(), row.split()))
    assert columns["PID"] == str(pid)
    assert re.fullmatch(r"\d+(\.\d)?%", columns["CPU"])
    assert re.fullmatch(r"\d+(\.\d)?M", columns["MEM"]) and float(columns["MEM"][:-1]) >= 64


def thread_count(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^Threads:\s+(\d+)$", f.read(), re.M).group(1))


def children_listed(pid, tid):
    with open("/proc/%d/task/%d/children" % (pid, tid)) as f:
        return [int(p) for p in f.read().split()]


def test_a_child_forked_by_a_thread_counts_before_and_after_that_thread_ends(start_clusterd, tmpdir_short):
    # clusterd reads a one-thread process's children from its main thread's list alone: this
    # checks the list it reads is the right one on either side of the thread's end.
    forked = os.path.join(tmpdir_short, "forked")
    release = os.path.join(tmpdir_short, "release")
    os.mkfifo(release)
    clusterd = start_clusterd(["--workers", "1", "--ready", "exec", "--", PYTHON,
                               worker("threaded_fork_worker.py"), "--forked", forked, "--release", release])
    [pid] = clusterd.ready_pids(1)
    wait_until(lambda: os.path.exists(forked), 10.0, "the worker's second thread to fork")
    with open(forked) as f:
        child = int(f.read())
    assert thread_count(pid) == 2 and child not in children_listed(pid, pid)
    [entry] = clusterd.status()["workers"]
    assert entry["pid"] == pid and entry["processes"] == 2, entry

    def released():
        try:  # O_NONBLOCK: ENXIO until the thread has the FIFO open for reading
            os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError:
            return False
    wait_until(released, 10.0, "the worker's second thread to open the FIFO")
    wait_until(lambda: thread_count(pid) == 1, 10.0, "the worker's second thread to end")
    assert children_listed(pid, pid) == [child]
    [entry] = clusterd.status()["workers"]
    assert entry["pid"] == pid and entry["processes"] == 2, entry
