"""output = "prefix": workers' stdout and stderr reach clusterd's own as whole lines "[SLOT PID] text";
the default leaves them the workers' own (clusterd's stdout and stderr, nothing copied)."""
import fcntl
import json
import os
import re
import signal
import subprocess
import termios
import threading
import time

import harness
from harness import BIN, PYTHON, cpu_seconds, wait_until, worker

LINE = re.compile(r"^\[(\d+) (\d+)\] (.*)$")


def output_worker(*args):
    return [PYTHON, worker("output_worker.py")] + list(args)


def read(path):
    with open(path, errors="replace") as f:
        text = f.read()
    return text[:text.rfind("\n") + 1]


def tail(path, size=4096):
    """The last `size` bytes of the file, as text."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - size))
        return f.read().decode(errors="replace")


def prefixed(text):
    """(slot, pid, text) of each "[SLOT PID] text" line; a line of any other shape fails the test."""
    lines = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, "not a whole prefixed line: %r" % line[:200]
        lines.append((int(match.group(1)), int(match.group(2)), match.group(3)))
    return lines


def test_each_line_arrives_whole_with_its_slot_and_pid(start_clusterd):
    count = 300
    clusterd = start_clusterd(["--workers", "2", "--output", "prefix", "--control", "none", "--"]
                              + output_worker("--lines", str(count)))
    pids = clusterd.ready_pids(2)

    def stdout_lines():
        return [entry for entry in prefixed(read(clusterd.stdout_path))]
    wait_until(lambda: len(stdout_lines()) == 2 * count, message="every stdout line", describe=clusterd.log_tail)

    slots = {}
    for slot, pid, text in stdout_lines():
        assert pid in pids
        slots.setdefault(pid, set()).add(slot)
        assert text.startswith("out %d " % pid), text  # the worker's own line, not another's
    assert sorted(min(s) for s in slots.values()) == [0, 1] and all(len(s) == 1 for s in slots.values())
    for pid in pids:
        numbers = [int(text.split()[2]) for _, p, text in stdout_lines() if p == pid]
        assert numbers == list(range(count)), "lines of pid %d out of order or lost" % pid

    # stderr lines go to clusterd's stderr, among its own log lines.
    def stderr_lines():
        return [line for line in read(clusterd.log_path).splitlines() if line.startswith("[")]
    wait_until(lambda: len(stderr_lines()) == 2 * count, message="every stderr line", describe=clusterd.log_tail)
    stderr = prefixed("\n".join(stderr_lines()))
    for pid in pids:
        assert [text for _, p, text in stderr if p == pid] == ["err %d %d" % (pid, i) for i in range(count)]

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit() == 0


def test_a_long_line_is_split_into_4_kib_pieces(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--control", "none", "--"]
                              + output_worker("--long", "10000"))
    (pid,) = clusterd.ready_pids(1)
    pieces = wait_until(lambda: [text for _, _, text in prefixed(read(clusterd.stdout_path))]
                        if read(clusterd.stdout_path).count("\n") >= 3 else None,
                        message="the long line's pieces", describe=clusterd.log_tail)
    assert [len(piece) for piece in pieces] == [4096, 4096, 10000 - 2 * 4096]
    assert "".join(pieces) == "x" * 10000
    assert read(clusterd.stdout_path).startswith("[0 %d] " % pid)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit() == 0


def test_last_words_before_exit_come_before_the_exit_is_logged(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--control", "none",
                               "--set", "restart.policy=never", "--"]
                              + output_worker("--last", "fatal: cannot continue", "--exit", "3"))
    # The only slot failed and will not restart: clusterd exits by itself, 1 for the failure.
    assert clusterd.wait_exit() == 1
    log = read(clusterd.log_path)
    match = re.search(r"^\[0 (\d+)\] fatal: cannot continue$", log, re.M)
    assert match, log
    exited = re.search(r"worker exited slot=0 gen=1 pid=%s status=exit:3" % match.group(1), log)
    assert exited, log
    assert match.start() < exited.start()


def test_a_flooding_worker_is_not_held_up_and_clusterd_keeps_answering(start_clusterd, tmpdir_short):
    flooding = os.path.join(tmpdir_short, "flooding")   # the worker: "my first MiB is written"
    stop = os.path.join(tmpdir_short, "stop")           # the test: "end the flood now"
    # Ready at its exec: the flood starts at once, and a wait for readiness would let it grow
    # beyond what the test reads back.
    clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--ready", "exec", "--"]
                              + output_worker("--flood-until", stop, "--flooding", flooding))
    (pid,) = clusterd.ready_pids(1)
    # The flood is under way, and clusterd is copying it: the worker has written 1 MiB into a
    # pipe that holds 64 KiB. It goes on until the test creates `stop`, so it is under way for as
    # long as the status below takes.
    wait_until(lambda: os.path.exists(flooding), timeout=30, message="the worker flooding",
               describe=clusterd.log_tail)
    copied = os.path.getsize(clusterd.stdout_path)
    assert copied >= (1 << 20) - (1 << 16), copied

    status = clusterd.status()
    [worker_entry] = status["workers"]
    uptime = worker_entry.pop("uptime_s")
    assert isinstance(uptime, float) and uptime >= 0, uptime
    cost = {key: worker_entry.pop(key) for key in ("cpu_percent", "cpu_s", "rss_bytes", "pss_bytes",
                                                    "processes", "started_at", "cgroup")}
    assert cost["processes"] == 1 and cost["rss_bytes"] > 0, cost
    # A cgroup per worker where the machine gives one (root on cgroup v2), null elsewhere.
    assert cost["cgroup"] is None or cost["cgroup"]["processes"] == 1, cost
    assert worker_entry == {"slot": 0, "pid": pid, "generation": 1, "state": "ready", "restarts": 0,
                            "last_exit": None, "next_restart_in_s": None, "notify_status": None}
    del status["workers"]
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    assert status == {"ok": True, "name": "python3", "pid": clusterd.pid, "version": version,
                      "generation": 1, "config": None, "workers_wanted": 1, "workers_ready": 1,
                      "reloading_to": None, "stopping": False, "listeners": []}
    # The flood went on through the status and goes on after it: clusterd copies another MiB,
    # and the worker has not finished (its stop file does not exist yet).
    wait_until(lambda: os.path.getsize(clusterd.stdout_path) >= copied + (1 << 20), timeout=30,
               message="another MiB copied after the status", describe=clusterd.log_tail)
    # Only the end of the output is read while waiting, and the whole of it line by line after:
    # on a loaded machine the flood can reach gigabytes before the test gets its turn.
    assert "flood done" not in tail(clusterd.stdout_path)

    harness.write_file(tmpdir_short, "stop", "")
    wait_until(lambda: "flood done %d" % pid in tail(clusterd.stdout_path), timeout=60,
               message="the flood to end", describe=clusterd.log_tail)
    # Every line whole, prefixed, in order, none lost: 0, 1, 2, ... then "flood done".
    expected_number, total, last = 0, 0, None
    with open(clusterd.stdout_path, errors="replace") as f:
        for line in f:
            [(slot, line_pid, text)] = prefixed(line)
            assert (slot, line_pid) == (0, pid), line[:200]
            total += len(line)  # as the file's size counts it: prefix and newline included
            if text.startswith("flood done"):
                last = text
                continue
            assert last is None, "a line after the last one: %r" % line[:200]
            fields = text.split(" ")
            assert fields[:2] == ["flood", str(pid)] and fields[3] == "y" * 80 and len(fields) == 4, text[:200]
            assert int(fields[2]) == expected_number, "flood lines lost or out of order at %d" % expected_number
            expected_number += 1
    assert last == "flood done %d" % pid
    assert total >= copied + (1 << 20)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit() == 0


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


class StdoutPipe:
    """A pipe the test holds the read end of, as clusterd's stdout (`clusterd | reader`), read only
    once the test says so."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()
        self.received = bytearray()
        self.reader = threading.Thread(target=self._read_to_end)
        # sh opens the pipe by the test's /proc entry and execs clusterd in place (same pid).
        self.wrapper = ["/bin/sh", "-c", 'exec "$@" >/proc/%d/fd/%d' % (os.getpid(), self.write_end), "sh"]

    def _read_to_end(self):
        self.received.extend(b"".join(iter(lambda: os.read(self.read_end, 65536), b"")))

    def opened_by(self, clusterd):
        """Waits until clusterd holds the pipe as its stdout, then leaves it the only writer."""
        ours = os.readlink("/proc/self/fd/%d" % self.write_end)
        wait_until(lambda: os.readlink("/proc/%d/fd/1" % clusterd.pid) == ours, message="clusterd's stdout")
        os.close(self.write_end)
        self.write_end = None

    def unread(self):
        """Bytes waiting in the pipe."""
        return int.from_bytes(fcntl.ioctl(self.read_end, termios.FIONREAD, b"\0\0\0\0"), "little")

    def stays_full(self, seconds=0.3):
        """True if the pipe holds something and nothing was added to it for `seconds`."""
        before = self.unread()
        time.sleep(seconds)
        return before > 0 and self.unread() == before

    def start_reading(self):
        self.reader.start()

    def close(self):
        """Ends the test's part: without a reader started, closing the read end lets clusterd's
        writes fail with EPIPE, so a clusterd stuck writing still reaches its cleanup."""
        if self.write_end is not None:
            os.close(self.write_end)
        if self.reader.ident is not None:
            self.reader.join(timeout=10)
        os.close(self.read_end)


def test_stalled_stdout_reader_does_not_freeze_clusterd(start_clusterd, tmpdir_short):
    """clusterd's stdout is a pipe nobody reads (`clusterd --output prefix | stalled-reader`): the
    flooding worker waits, clusterd does not: it answers, restarts, stops."""
    control = os.path.join(tmpdir_short, "c.sock")
    stdout = StdoutPipe()

    def status():
        try:
            result = subprocess.run([BIN, "status", "--json", "--control", control], capture_output=True,
                                    text=True, timeout=5, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError("clusterd status did not answer within 5s\n" + clusterd.log_tail()) from None
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    try:
        clusterd = start_clusterd(["--workers", "1", "--output", "prefix", "--control", control, "--"]
                                  + output_worker("--flood", str(1 << 30)), wrapper=stdout.wrapper)
        stdout.opened_by(clusterd)
        (first,) = clusterd.ready_pids(1)
        wait_until(stdout.stays_full, message="clusterd's stdout pipe to fill and stay full",
                   describe=clusterd.log_tail)

        assert [w["pid"] for w in status()["workers"]] == [first]
        # Back-pressured, not spinning: the worker waits on its pipe, clusterd sleeps.
        cpu_before = cpu_seconds(clusterd.pid)
        rss_before = rss_mib(clusterd.pid)
        time.sleep(1.0)  # a measured interval, not synchronisation
        assert cpu_seconds(clusterd.pid) - cpu_before < 0.3, "clusterd busy while its stdout is stalled"
        # And bounded: it does not go on reading the flood (GB/s) into memory while stalled...
        grown = rss_mib(clusterd.pid) - rss_before
        assert grown < 4, "clusterd buffers without bound: +%.1f MiB in 1 s" % grown
        # ...and holds little: the 1 MiB buffer, not the flood. (AddressSanitizer's shadow memory
        # and quarantine make the absolute size meaningless in the sanitizer build.)
        with open("/proc/%d/maps" % clusterd.pid) as f:
            sanitized = "libasan" in f.read()
        if not sanitized:
            assert rss_mib(clusterd.pid) < 32, "clusterd holds %.1f MiB" % rss_mib(clusterd.pid)

        os.kill(first, signal.SIGKILL)
        (second,) = wait_until(lambda: [w["pid"] for w in status()["workers"]
                                        if w["pid"] not in (None, first) and w["state"] == "ready"],
                               message="a restarted worker in status", describe=clusterd.log_tail)
        clusterd.seen_pids.update((first, second))
        assert stdout.stays_full(), "the test's pipe moved: the stall proves nothing"

        # The reader comes back: clusterd's stdout drains, and clusterd stops cleanly.
        stdout.start_reading()
        clusterd.signal(signal.SIGTERM)
        assert clusterd.wait_exit(timeout=15) == 0
    finally:
        stdout.close()
    assert not stdout.reader.is_alive(), "clusterd's stdout never reached end of file"

    by_pid = {}
    for slot, pid, text in prefixed(stdout.received.decode(errors="replace")):
        assert slot == 0 and pid in (first, second), (slot, pid, text[:80])
        by_pid.setdefault(pid, []).append(text)
    assert first in by_pid, "nothing of the first worker's output was copied"
    for pid, texts in by_pid.items():
        # A flood line is cut only where its worker was killed mid-write: its last one.
        assert all(text.startswith("flood %d " % pid) for text in texts[:-1]), pid


def test_a_stalled_stdout_reader_delays_a_stop_by_a_second_at_most(start_clusterd):
    stdout = StdoutPipe()
    try:
        clusterd = start_clusterd(["--workers", "2", "--output", "prefix", "--control", "none", "--"]
                                  + output_worker("--flood", str(1 << 30)), wrapper=stdout.wrapper)
        stdout.opened_by(clusterd)
        clusterd.ready_pids(2)
        wait_until(stdout.stays_full, message="clusterd's stdout pipe to fill and stay full",
                   describe=clusterd.log_tail)
        started = time.monotonic()
        clusterd.signal(signal.SIGTERM)
        assert clusterd.wait_exit(timeout=10) == 0
        # The workers stop at once (SIGTERM); then at most 1s for what is still buffered.
        assert time.monotonic() - started < 3.0, clusterd.log_tail()
        assert stdout.stays_full(0.1), "the test's pipe moved: the stall proves nothing"
    finally:
        stdout.close()


def test_journal_stream_is_removed_only_in_prefix_mode(start_clusterd):
    env = {"JOURNAL_STREAM": "8:12345"}
    prefix = start_clusterd(["--workers", "1", "--output", "prefix", "--control", "none", "--"]
                            + output_worker("--env"), env=env)
    wait_until(lambda: "env JOURNAL_STREAM" in read(prefix.stdout_path), describe=prefix.log_tail)
    assert re.search(r"^\[0 \d+\] env JOURNAL_STREAM=-$", read(prefix.stdout_path), re.M)

    inherit = start_clusterd(["--workers", "1", "--control", "none", "--"] + output_worker("--env"), env=env)
    wait_until(lambda: "env JOURNAL_STREAM" in read(inherit.stdout_path), describe=inherit.log_tail)
    # inherit: the worker wrote straight to clusterd's stdout, unprefixed.
    assert read(inherit.stdout_path) == "env JOURNAL_STREAM=8:12345\n"
    for instance in (prefix, inherit):
        instance.signal(signal.SIGTERM)
        assert instance.wait_exit() == 0


def test_inherit_gives_workers_clusterd_own_stdout_and_stderr(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--control", "none", "--"] + output_worker("--lines", "2"))
    (pid,) = clusterd.ready_pids(1)
    wait_until(lambda: read(clusterd.stdout_path).count("\n") == 2, describe=clusterd.log_tail)
    assert read(clusterd.stdout_path) == "out %d 0\nout %d 1\n" % (pid, pid)
    for stream in (1, 2):
        assert os.readlink("/proc/%d/fd/%d" % (pid, stream)) == os.readlink("/proc/%d/fd/%d" % (clusterd.pid, stream))
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit() == 0


def test_an_unknown_output_mode_is_a_usage_error():
    for args in (["--output", "prefixed"], ["--set", "output=pipe"]):
        result = subprocess.run([BIN] + args + ["--", "/bin/true"], capture_output=True, text=True, timeout=10)
        assert result.returncode == 2
        assert "output" in result.stderr and '"inherit"' in result.stderr and '"prefix"' in result.stderr, result.stderr
