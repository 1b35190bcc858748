"""Worker logs (output = "prefix"): `clusterd logs` shows each slot's recent lines and follows new
ones over the control socket, a follower that stops reading is cut off without slowing clusterd
or a worker, and output.file takes the lines (timestamps, SIGUSR1 reopen, rotation by size)."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import harness
from harness import BIN, PYTHON, wait_until, worker

LINE = re.compile(r"^\[(\d+) (\d+)\] (.*)$")
STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \[(\d+) (\d+)\] (.*)$")


def output_worker(*args):
    return [PYTHON, worker("output_worker.py")] + list(args)


def lines_of(text, pattern=LINE):
    """The groups of each line; a line of any other shape fails the test."""
    parsed = []
    for line in text.splitlines():
        match = pattern.match(line)
        assert match, "not a whole prefixed line: %r" % line[:200]
        parsed.append(match.groups())
    return parsed


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def logs(clusterd, *args):
    code, out, err = clusterd.control("logs", *args)
    assert code == 0, "logs exited %d: %s%s\n%s" % (code, out, err, clusterd.log_tail())
    return out


def test_logs_shows_the_recent_lines_of_every_slot_or_of_one(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--output", "prefix", "--"] + output_worker("--lines", "5"))
    pids = clusterd.ready_pids(2)
    # 5 lines on stdout and 5 on stderr per worker.
    wait_until(lambda: len(logs(clusterd, "-n", "100").splitlines()) == 20, message="20 lines kept",
               describe=clusterd.log_tail)
    every = lines_of(logs(clusterd, "-n", "100"))
    assert {int(pid) for _, pid, _ in every} == set(pids)
    for slot, pid, text in every:
        assert re.match(r"^(out|err) %s \d$" % pid, text), text

    only = lines_of(logs(clusterd, "--slot", "1", "-n", "100"))
    assert len(only) == 10 and {slot for slot, _, _ in only} == {"1"}
    # Each stream's lines in the order the worker wrote them.
    pid = only[0][1]
    assert [text for _, _, text in only if text.startswith("out")] == ["out %s %d" % (pid, i) for i in range(5)]

    # The default is the last 10 lines; -n takes the last N of them.
    assert len(logs(clusterd).splitlines()) == 10
    assert lines_of(logs(clusterd, "-n", "3")) == every[-3:]
    assert logs(clusterd, "-n", "0") == ""

    stamped = lines_of(logs(clusterd, "-n", "2", "-t"), STAMPED)
    assert [groups[1:] for groups in stamped] == [tuple(entry) for entry in every[-2:]]

    reply = json.loads(logs(clusterd, "-n", "2", "--json"))
    assert reply["ok"] is True
    for record, (slot, pid, text) in zip(reply["lines"], every[-2:]):
        assert record["slot"] == int(slot) and record["pid"] == int(pid) and record["text"] == text
        assert record["stream"] == ("stdout" if text.startswith("out") else "stderr")
        assert abs(record["time"] - time.time()) < 600


def test_recent_lines_are_bounded_per_slot(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--set", "output.recent_lines=7", "--"]
                              + output_worker("--lines", "50"))
    (pid,) = clusterd.ready_pids(1)
    # Every line read: the last of each stream is out on clusterd's stdout and stderr.
    wait_until(lambda: "out %d 49" % pid in read(clusterd.stdout_path) and "err %d 49" % pid in clusterd.log(),
               message="the last lines", describe=clusterd.log_tail)
    kept = [text for _, _, text in lines_of(logs(clusterd, "-n", "1000"))]
    assert len(kept) == 7, kept
    # The 7 read last: clusterd reads stdout and stderr apart, so in either order, but each
    # stream's kept lines are its newest, up to its last.
    for tag in ("out", "err"):
        numbers = [int(text.split()[2]) for text in kept if text.startswith(tag)]
        assert numbers == list(range(50 - len(numbers), 50)), kept
    assert any(text.endswith(" 49") for text in kept), kept


def test_a_follower_gets_every_new_line_and_ends_when_clusterd_stops(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--output", "prefix", "--"] + output_worker("--lines", "3"))
    first = clusterd.ready_pids(2)
    follower = subprocess.Popen([BIN, "logs", "-f", "-n", "0", "--slot", "0", "--json", "--control",
                                 clusterd.control_path()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Following once clusterd answered it (its first line): then slot 0 gets a new worker.
        assert json.loads(follower.stdout.readline()) == {"ok": True, "lines": []}
        assert clusterd.control("restart", "0")[0] == 0
        pids = clusterd.ready_pids(3)
        (new_pid,) = set(pids) - set(first)
        assert clusterd.control("restart", "1")[0] == 0
        clusterd.ready_pids(4)
        assert clusterd.control("stop")[0] == 0
        out, err = follower.communicate(timeout=15)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records[-1] == {"ok": True, "end": "clusterd stopped"}
    lines = [(str(r["slot"]), str(r["pid"]), r["text"]) for r in records[:-1]]
    # Only slot 0's new worker: its six lines, none of the old ones, none of slot 1.
    assert sorted(text for _, _, text in lines) == sorted(
        "%s %d %d" % (tag, new_pid, i) for tag in ("out", "err") for i in range(3)), out
    assert {(slot, int(pid)) for slot, pid, _ in lines} == {("0", new_pid)}


def test_a_follower_that_stops_reading_is_cut_off_and_holds_up_nobody(start_clusterd, tmpdir_short):
    stop = os.path.join(tmpdir_short, "stop")
    output = os.path.join(tmpdir_short, "workers.log")
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--ready", "exec",
                               "--set", "output.file=" + output, "--"] + output_worker("--flood-until", stop))
    (pid,) = clusterd.ready_pids(1)
    follower = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The smallest receive buffer: the stall reaches clusterd's side at once.
    follower.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        follower.connect(clusterd.control_path())
        follower.sendall(b"logs lines 0 follow\n")
        # It reads nothing from now on. clusterd cuts it off once it holds 1 MiB for it.
        clusterd.wait_for_log(r"log follower cut off .*left more than 1024 KiB unread", timeout=60)
        # The worker was never held up: its flood goes on into output.file, and status answers.
        size = os.path.getsize(output)
        wait_until(lambda: os.path.getsize(output) >= size + (1 << 20), timeout=30,
                   message="another MiB written after the cut-off", describe=clusterd.log_tail)
        status = clusterd.status()
        assert status["workers"][0]["pid"] == pid
        # Read at last (within the 10 s clusterd gives it after the cut-off): the records that were queued, then why it was cut off, then the end.
        follower.settimeout(30)
        received = b""
        while True:
            chunk = follower.recv(65536)
            if not chunk:
                break
            received += chunk
    finally:
        follower.close()
    lines = received.decode(errors="replace").splitlines()
    assert json.loads(lines[0]) == {"ok": True, "lines": []}
    last = json.loads(lines[-1])
    assert last["ok"] is False and "cut off" in last["error"], last
    for line in lines[1:-1]:
        record = json.loads(line)  # every record whole: the one being written was finished
        assert record["slot"] == 0 and record["pid"] == pid and record["text"].startswith("flood %d " % pid)
    harness.write_file(tmpdir_short, "stop", "")
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit() == 0


def test_output_file_takes_the_lines_with_timestamps_and_is_reopened_on_sigusr1(start_clusterd, tmpdir_short):
    output = os.path.join(tmpdir_short, "workers.log")
    config = harness.write_file(tmpdir_short, "c.toml", """
command = [%s]
workers = 1
[output]
file = "%s"
timestamps = true
""" % (", ".join(json.dumps(arg) for arg in output_worker("--lines", "2")), output))
    clusterd = start_clusterd(["-c", config])
    (pid,) = clusterd.ready_pids(1)
    wait_until(lambda: read(output).count("\n") == 4, message="4 lines in output.file", describe=clusterd.log_tail)
    first = lines_of(read(output), STAMPED)
    assert {(slot, int(line_pid)) for _, slot, line_pid, _ in first} == {("0", pid)}
    assert sorted(text for *_, text in first) == sorted("%s %d %d" % (t, pid, i) for t in ("out", "err") for i in (0, 1))
    assert read(clusterd.stdout_path) == ""  # nothing on clusterd's own stdout

    # logrotate's way: move the file, then SIGUSR1; the next worker's lines go to a new file.
    os.rename(output, output + ".old")
    clusterd.signal(signal.SIGUSR1)
    clusterd.wait_for_log(r"output file reopened path=%s" % re.escape(output))
    assert clusterd.control("restart", "0")[0] == 0
    new_pid = [p for p in clusterd.ready_pids(2) if p != pid][0]
    wait_until(lambda: os.path.exists(output) and read(output).count("\n") == 4, message="the new file",
               describe=clusterd.log_tail)
    assert {int(line_pid) for _, _, line_pid, _ in lines_of(read(output), STAMPED)} == {new_pid}
    assert lines_of(read(output + ".old"), STAMPED) == first


def test_output_file_is_rotated_by_size_keeping_the_files_asked(start_clusterd, tmpdir_short):
    output = os.path.join(tmpdir_short, "workers.log")
    names = ("workers.log.2", "workers.log.1", "workers.log")  # oldest first
    # 5 MiB of numbered lines into 1 MiB files: rotated four times or more, two kept.
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--set", "output.file=" + output,
                               "--set", "output.max_size=1MiB", "--set", "output.keep=2", "--"]
                              + output_worker("--flood", str(5 << 20)))
    (pid,) = clusterd.ready_pids(1)

    def texts():
        return [t for name in names if os.path.exists(os.path.join(tmpdir_short, name))
                for _, _, t in lines_of(read(os.path.join(tmpdir_short, name)))]
    wait_until(lambda: "flood done %d" % pid in texts()[-1:], timeout=60, message="the last line",
               describe=clusterd.log_tail)
    assert sorted(os.listdir(tmpdir_short)) == sorted(names)
    for name in names[:2]:
        text = read(os.path.join(tmpdir_short, name))
        # Rotated once it held 1 MiB, after a whole line.
        assert len(text) >= 1 << 20 and text.endswith("\n"), (name, len(text))
    # The files hold the newest lines in order, none lost between them: .2, .1, then the file.
    numbers = [int(t.split()[2]) for t in texts()[:-1]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "lines lost or out of order"
    assert numbers[0] > 0  # the oldest file was dropped


def test_a_reload_that_changes_output_file_keeps_writing_to_the_open_one(start_clusterd, tmpdir_short):
    first = os.path.join(tmpdir_short, "first.log")
    second = os.path.join(tmpdir_short, "second.log")
    body = """
command = [%s]
workers = 1
[output]
file = "%%s"
""" % ", ".join(json.dumps(arg) for arg in output_worker("--lines", "1"))
    config = harness.write_file(tmpdir_short, "c.toml", body % first)
    clusterd = start_clusterd(["-c", config])
    clusterd.ready_pids(1)
    harness.write_file(tmpdir_short, "c.toml", body % second)
    code, out, err = clusterd.control("reload", "--json")
    assert code == 0 and json.loads(out)["restart_needed"] == ["output.file"], out + err
    new_pid = [p for p in clusterd.ready_pids(2)][-1]
    wait_until(lambda: "out %d 0" % new_pid in read(first), message="the new worker's line in the open file",
               describe=clusterd.log_tail)
    assert not os.path.exists(second)
    # Back to the file that is open: nothing needs a restart.
    harness.write_file(tmpdir_short, "c.toml", body % first)
    code, out, err = clusterd.control("reload", "--json")
    assert code == 0 and "restart_needed" not in json.loads(out), out + err


def test_logs_without_prefix_mode_says_how_to_get_them(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--"] + output_worker())
    clusterd.ready_pids(1)
    code, out, err = clusterd.control("logs")
    assert code == 1 and out == ""
    assert 'output = "inherit"' in err and 'set output = "prefix"' in err, err


def test_logs_of_a_slot_the_pool_does_not_have_is_refused(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--output", "prefix", "--"] + output_worker())
    clusterd.ready_pids(2)
    code, out, err = clusterd.control("logs", "--slot", "7")
    assert (code, out, err) == (1, "", "clusterd: logs: no slot 7: the pool has slots 0-1\n")
    code, out, err = clusterd.control("logs", "--slot", "4096")
    assert code == 2 and "--slot 4096: expected a slot number 0-4095" in err, err
    code, out, err = clusterd.control("logs", "-n", "-1")
    assert code == 2 and "--lines -1: expected a count 0-100000" in err, err


def test_output_file_in_a_directory_others_can_write_is_refused_at_start(start_clusterd, tmpdir_short):
    shared = os.path.join(tmpdir_short, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    output = os.path.join(shared, "workers.log")
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--set", "output.file=" + output, "--"]
                              + output_worker())
    assert clusterd.wait_exit() == 2
    log = clusterd.log()
    assert "output.file" in log and "writable by its group and by others" in log and "chmod go-w" in log, log
    assert not os.path.exists(output)
