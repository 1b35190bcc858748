"""Restarts: a dead worker is replaced on its slot without a refused connection; crash loops back off
(growing delays, bounded count, little CPU); restart.policy and restart.burst decide when to give up.
"""
import os
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
    """interface §2.3: restart 1 is immediate, restart k waits delay * multiplier^(k-2), capped."""
    if restart < 2:
        return 0.0
    return min(delay * multiplier ** (restart - 2), max_delay)


def test_crash_loop_backs_off_with_growing_delays_at_little_cost(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--set", "restart.delay=100ms", "--", "/bin/false"])
    [started] = clusterd.wait_for_log(r"started name=")
    # The measurement starts here; clusterd has only started.
    window_start = time.monotonic()
    cpu_start = harness.cpu_seconds(clusterd.pid)

    # A measurement window, not synchronisation: how many restarts happen in 3 s of crashing.
    # Backoff allows at most 7 exits in 3 s (0 + 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s > 3 s before
    # the 8th); without backoff, /bin/false would run hundreds of times.
    wait_until(lambda: time.monotonic() - window_start >= 3.0, 10.0, "3 s of crash loop")
    cpu_used = harness.cpu_seconds(clusterd.pid) - cpu_start
    assert not clusterd.exited()
    # Counted by clusterd's own timestamps, so a slow test process cannot stretch the window.
    t0 = harness.log_time(started.string)
    exits = [m for m in clusterd.matches(EXITED + r" next_restart_in=(\S+)")
             if harness.log_time(m.string) - t0 <= 3.0]
    assert 4 <= len(exits) <= 8, [m.group(0) for m in exits]
    assert cpu_used < 0.5, "clusterd used %.2fs CPU in a 3s crash loop" % cpu_used
    assert all(m.group(4) == "exit:1" for m in exits)

    # The announced delays follow the schedule: restart k waits half to all of its ceiling.
    delays = [parse_duration(m.group(6)) for m in exits]
    for restart, announced in enumerate(delays, start=1):
        ceiling = backoff_ceiling(restart)
        # the log rounds to a tenth of a second
        assert ceiling / 2 - 0.05 <= announced <= ceiling + 0.05, (restart, delays)
    assert delays[0] == 0.0
    assert all(later >= earlier - 0.05 for earlier, later in zip(delays, delays[1:])), delays
    assert delays[-1] >= 0.2, delays

    # ...and clusterd really waits that long: the gap between two exits is at least the delay
    # announced at the first of them (log timestamps have millisecond precision).
    times = [harness.log_time(m.string) for m in exits]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for announced, gap in zip(delays, gaps):
        assert gap >= announced - 0.06, (delays, gaps)
    assert gaps[-1] > gaps[0], gaps


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
