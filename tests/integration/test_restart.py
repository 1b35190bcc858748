"""Restarts: a dead worker is replaced on its slot without a refused connection; crash loops back off
(delays on the schedule, one restart per delay, CPU only for the restarts); restart.policy and
restart.burst decide when to give up.
"""
import os
import re
import signal
import threading
import time

import harness
from harness import PYTHON, http_get, parse_duration, wait_until, worker

EXITED = r"worker exited slot=(\d+) gen=(\d+) pid=(\d+) status=(\S+) uptime=(\S+)"


class Client(threading.Thread):
    """Keeps sending requests, a fresh connection each, until told to stop or its limits (count and
    time) are reached. On request it SIGKILLs a worker between two requests (so no request of its
    own is in flight in the victim) and waits until that process is dead before connecting again."""

    def __init__(self, address, max_requests=5000, max_seconds=40.0):
        super().__init__(daemon=True)
        self.address = address
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.answers = []          # (pid, slot) per successful request
        self.errors = []
        self.victim = None
        self.killed = threading.Event()
        self.stop_now = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self.stop_now.is_set() or time.monotonic() > deadline:
                return
            if self.victim is not None and not self.killed.is_set():
                os.kill(self.victim, signal.SIGKILL)
                wait_until(lambda: not harness.pid_alive(self.victim), 10.0, "victim dead")
                self.killed.set()
            try:
                reply = http_get(self.address, timeout=10.0)
                self.answers.append((reply["pid"], reply["slot"]))
            except Exception as error:  # every failure counts, whatever its kind
                self.errors.append(repr(error))


def test_killed_worker_is_replaced_on_its_slot_without_failed_connections(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")])
    address = clusterd.address()
    ready = set(clusterd.ready_pids(2))
    client = Client(address)
    client.start()
    try:
        wait_until(lambda: {pid for pid, _ in client.answers} == ready, 10.0,
                   "answers from both workers", describe=lambda: str(client.errors))
        slot_of = dict(client.answers)
        victim = min(ready)
        survivor = max(ready)
        client.victim = victim
        wait_until(client.killed.is_set, 15.0, "victim killed")

        exited = clusterd.wait_for_log(r"worker exited slot=(\d+) gen=\d+ pid=%d status=signal:KILL"
                                       % victim)[0]
        assert exited.group(1) == slot_of[victim]
        replacement_line = clusterd.wait_for_log(r"worker ready slot=%s gen=1 pid=(\d+)"
                                                 % slot_of[victim], count=2)[1]
        replacement = int(replacement_line.group(1))
        clusterd.seen_pids.add(replacement)
        assert replacement not in ready

        # Keep going until the replacement itself has answered a few times.
        wait_until(lambda: sum(1 for pid, _ in client.answers if pid == replacement) >= 3, 15.0,
                   "answers from the replacement", describe=clusterd.log_tail)
    finally:
        client.stop_now.set()
        client.join(30.0)
    assert not client.is_alive()
    assert client.errors == []
    answered_by = {pid: slot for pid, slot in client.answers}
    assert answered_by[replacement] == slot_of[victim]          # same CLUSTERD_WORKER_ID
    assert answered_by[survivor] == slot_of[survivor]
    assert set(answered_by) == {victim, survivor, replacement}
    assert set(clusterd.children()) == {survivor, replacement}


def test_sigkill_not_sent_by_clusterd_is_reported_as_possibly_out_of_memory(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")])
    [pid] = clusterd.ready_pids(1)
    os.kill(pid, signal.SIGKILL)
    [line] = clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d status=signal:KILL .*" % pid)
    assert "possibly out of memory" in line.group(0)
    replacement = clusterd.ready_pids(2)[1]

    # A worker that ends another way is not blamed on memory.
    os.kill(replacement, signal.SIGTERM)
    [line] = clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d .*" % replacement)
    assert "out of memory" not in line.group(0)


def backoff_ceiling(restart, delay=0.1, multiplier=2.0, max_delay=30.0):
    """configuration.md [restart]: restart 1 of a streak is immediate, restart k >= 2 waits
    between half and all of delay * multiplier^(k-2), capped at max_delay."""
    if restart < 2:
        return 0.0
    return min(delay * multiplier ** (restart - 2), max_delay)


def announced_tenths(restart):
    """The next_restart_in values the log may show for restart k, in tenths of a second: the
    delay is drawn from [ceiling/2, ceiling] and logged rounded to a tenth (half away from 0)."""
    ceiling = backoff_ceiling(restart)
    return range(int(ceiling / 2 * 10 + 0.5), int(ceiling * 10 + 0.5) + 1)


# clusterd's CPU time for one restart of a worker that exits at once (spawn, reap, log lines):
# about 1 ms in a release build, 11 ms under AddressSanitizer; this allows several times that.
CPU_PER_RESTART = 0.05


def test_crash_loop_backs_off_with_growing_delays_at_little_cost(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--log-level", "debug", "--set", "restart.delay=100ms",
                               "--control", "none", "--", "/bin/false"])
    exit_line = EXITED + r" next_restart_in=(\S+)$"
    # Exit 4 announces restart 4 (0.2-0.4 s away); from here to exit 7 clusterd restarts 3 times
    # and spends at least 0.2 + 0.4 + 0.8 s waiting in between: CPU is measured over that span.
    clusterd.wait_for_log(exit_line, count=4, timeout=60.0)
    exits_before = clusterd.count(exit_line)
    cpu_before = harness.cpu_seconds(clusterd.pid)
    clusterd.wait_for_log(exit_line, count=exits_before + 3, timeout=60.0)
    cpu_used = harness.cpu_seconds(clusterd.pid) - cpu_before
    exits_after = clusterd.count(exit_line)
    assert not clusterd.exited()

    lines = clusterd.log().splitlines()
    exits = [(index, match) for index, match in ((i, re.search(exit_line, line)) for i, line in enumerate(lines))
             if match]
    assert len(exits) >= exits_after
    # Each exit announces the delay of the restart it causes, as the schedule says.
    for restart, (_, match) in enumerate(exits, start=1):
        assert match.group(1, 2, 4) == ("0", "1", "exit:1"), match.string
        tenths = round(parse_duration(match.group(6)) * 10)
        assert tenths in announced_tenths(restart), (restart, match.string)
    assert exits[0][1].group(6) == "0.0s"            # the first restart of a streak: at once

    # Between two exits exactly one restart, and it came no earlier than announced (log
    # timestamps: ms; the announced delay: rounded to 0.05 s at most).
    for (index, match), (next_index, _) in zip(exits, exits[1:]):
        spawned = [line for line in lines[index + 1:next_index] if re.search(r"worker spawned slot=0 gen=1 ", line)]
        assert len(spawned) == 1, lines[index:next_index + 1]
        waited = harness.log_time(spawned[0]) - harness.log_time(match.string)
        assert waited >= parse_duration(match.group(6)) - 0.051, (waited, match.string, spawned[0])

    # Asleep while it waits: the CPU of the measured span is that of its restarts, not of its
    # waits (at least 1.4 s of them; a clusterd polling or spinning through them uses that much).
    waits = sum(parse_duration(match.group(6)) for _, match in exits[exits_before - 1:exits_after - 1])
    assert waits >= 1.3, [match.group(6) for _, match in exits]
    restarts = exits_after - exits_before + 1
    assert cpu_used <= restarts * CPU_PER_RESTART + 0.02, \
        "clusterd used %.2f s CPU for %d restarts and %.1f s of backoff" % (cpu_used, restarts, waits)


def test_on_failure_policy_does_not_restart_clean_exits_and_exits_0(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--set", "restart.policy=on-failure", "--",
                               "/bin/true"])
    code = clusterd.wait_exit(10.0)
    log = clusterd.log()
    assert code == 0, clusterd.log_tail()
    exits = clusterd.matches(EXITED + r" restart=no")
    assert sorted(m.group(1) for m in exits) == ["0", "1"]
    assert all(m.group(4) == "exit:0" for m in exits)
    assert clusterd.count(r"worker exited") == 2     # neither was restarted
    assert "no worker runs and none will be restarted; exiting code=0" in log


def test_on_failure_policy_restarts_only_the_failing_slot(start_clusterd):
    # slot 0 exits 0 (done for good), slot 1 exits 1 (restarted, with backoff).
    clusterd = start_clusterd(["--workers", "2", "--set", "restart.policy=on-failure",
                               "--set", "restart.delay=100ms", "--",
                               "/bin/sh", "-c", "exit $CLUSTERD_WORKER_ID"])
    clusterd.wait_for_log(r"worker exited slot=1 gen=1 pid=\d+ status=exit:1 ", count=3)
    assert not clusterd.exited()
    assert clusterd.count(r"worker exited slot=0 ") == 1
    assert clusterd.count(r"worker exited slot=0 gen=1 pid=\d+ status=exit:0 .*restart=no") == 1


def test_never_policy_with_a_failing_worker_exits_1(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--set", "restart.policy=never", "--", "/bin/false"])
    code = clusterd.wait_exit(10.0)
    assert code == 1, clusterd.log_tail()
    assert clusterd.count(r"worker exited slot=0 gen=1 pid=\d+ status=exit:1 .*restart=no") == 1
    assert clusterd.count(r"worker exited") == 1
    assert "no worker runs and none will be restarted; exiting code=1" in clusterd.log()


def test_never_policy_exits_1_when_any_slot_failed(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--set", "restart.policy=never", "--",
                               "/bin/sh", "-c", "exit $CLUSTERD_WORKER_ID"])
    code = clusterd.wait_exit(10.0)
    assert code == 1, clusterd.log_tail()
    assert clusterd.count(r"worker exited") == 2


def test_burst_limit_fails_every_slot_for_good_and_exits_1(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--set", "restart.burst=2",
                               "--set", "restart.interval=60s", "--set", "restart.delay=100ms",
                               "--", "/bin/false"])
    code = clusterd.wait_exit(15.0)
    assert code == 1, clusterd.log_tail()
    log = clusterd.log()
    for slot in (0, 1):
        [failed] = clusterd.matches(r"worker slot failed for good slot=%d burst=2 interval=(\S+)"
                                    % slot)
        assert parse_duration(failed.group(1)) == 60.0
        # the first start and 2 restarts ran; the 3rd restart would exceed the burst
        assert clusterd.count(r"worker exited slot=%d " % slot) == 3, clusterd.log_tail()
    assert "every worker slot failed for good; exiting code=1" in log


def test_a_worker_that_stayed_up_reset_after_is_restarted_at_once(start_clusterd):
    # Each worker lives ~1.2 s, longer than reset_after=1s: every exit starts a new streak, whose
    # first restart is immediate, however often it happens (restart.delay=5s is never applied).
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0",
                               "--set", "restart.reset_after=1s", "--set", "restart.delay=5s", "--",
                               PYTHON, worker("http_worker.py"), "--exit-after", "1.2"])
    exits = clusterd.wait_for_log(EXITED + r" next_restart_in=(\S+)", count=3, timeout=20.0)
    for exit_line in exits:
        assert exit_line.group(4) == "exit:1"
        assert parse_duration(exit_line.group(5)) >= 1.0
        assert exit_line.group(6) == "0.0s", exit_line.string
    clusterd.seen_pids.update(int(m.group(3)) for m in exits)
