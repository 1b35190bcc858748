"""Recycling: a worker over recycle.max_rss, or older than recycle.max_lifetime, is replaced like a
one-slot reload step (the new worker ready first, then the old one stopped), one slot at a time,
without a failed request and without counting as a failure.

The load clients and their rule for what counts as a failed request are test_reload.py's.
"""
import os
import re
import signal
import time

from harness import PYTHON, cpu_seconds, http_get, log_time, wait_until, worker
from test_reload import assert_no_failed_requests, live_children, start_load, write_config

READY = r"worker ready slot=(\d+) gen=1 pid=(\d+)"


def index_of(lines, pattern):
    for index, line in enumerate(lines):
        if re.search(pattern, line):
            return index
    raise AssertionError("no log line /%s/" % pattern)


def test_worker_over_max_rss_is_replaced_without_a_failed_request(start_clusterd, tmpdir_short):
    # The first worker to create the --once file grows by 100 MiB once the test opens the --grow-when
    # gate (when the load has reached both workers); the other, and its replacement, stay small (a
    # Python worker is ~20 MiB).
    grow = os.path.join(tmpdir_short, "grow")
    command = [PYTHON, worker("notify_worker.py"), "--ready-after", "0.3", "--grow-rss", "100",
               "--grow-when", grow, "--once", os.path.join(tmpdir_short, "once")]
    config = write_config(tmpdir_short, workers=2, command=command, extra=(
        '\n[ready]\nmode = "notify"\n'
        '\n[recycle]\nmax_rss = "64MiB"\ncheck_interval = "200ms"\n'))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    first = {int(m.group(1)): int(m.group(2)) for m in clusterd.wait_for_log(READY, count=2)}
    clusterd.seen_pids.update(first.values())
    clients = start_load(address)
    try:
        wait_until(lambda: {a[1] for c in clients for a in c.answers} >= set(first.values()), 15.0,
                   "the load answered by both workers", describe=clusterd.log_tail)
        open(grow, "w").close()
        [over] = clusterd.wait_for_log(r"worker over recycle\.max_rss slot=(\d+) gen=1 pid=(\d+) "
                                       r"rss=(\d+) max_rss=(\d+)")
        slot, big = int(over.group(1)), int(over.group(2))
        [recycled] = clusterd.wait_for_log(r"worker recycled slot=%d reason=max_rss old_pid=%d pid=(\d+)"
                                           % (slot, big))
        replacement = int(recycled.group(1))
        clusterd.seen_pids.add(replacement)
        clusterd.wait_for_log(r"worker stopped slot=%d gen=1 pid=%d " % (slot, big))
        stopped_seen = time.monotonic()
        wait_until(lambda: all(len(c.answers_since(stopped_seen)) >= 20 for c in clients), 15.0,
                   "answers after the recycle", describe=clusterd.log_tail)
    finally:
        for client in clients:
            client.finish()

    assert_no_failed_requests(clients)
    assert first[slot] == big
    assert int(over.group(3)) > int(over.group(4)) == 64 << 20
    lines = clusterd.log().splitlines()
    recycling = index_of(lines, r"worker recycling slot=%d gen=1 pid=%d reason=max_rss" % (slot, big))
    ready = index_of(lines, r"worker ready slot=%d gen=1 pid=%d" % (slot, replacement))
    stopped = index_of(lines, r"worker stopped slot=%d gen=1 pid=%d " % (slot, big))
    assert recycling < ready < stopped           # new worker ready before the old one is stopped
    other = first[1 - slot]
    assert sorted(live_children(clusterd)) == sorted([replacement, other])
    assert clusterd.count(r"worker recycling") == 1
    assert clusterd.count(r"worker exited") == 0   # a recycle is not a failure
    for client in clients:
        assert {answer[1] for answer in client.answers_since(stopped_seen)} <= {replacement, other}
    assert {answer[1] for client in clients for answer in client.answers} >= {big}


def test_max_lifetime_replaces_workers_one_at_a_time_new_ready_before_old_stopped(start_clusterd,
                                                                                  tmpdir_short):
    # ready.mode = "500ms": each replacement takes half a second to count as ready, so a second
    # recycle due meanwhile must wait for the first to finish.
    config = write_config(tmpdir_short, workers=2, extra=(
        '\n[ready]\nmode = "500ms"\n\n[recycle]\nmax_lifetime = "2s"\n'))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    first = {int(m.group(1)): int(m.group(2)) for m in clusterd.wait_for_log(READY, count=2)}
    clusterd.seen_pids.update(first.values())
    clients = start_load(address)
    try:
        recycled = clusterd.wait_for_log(r"worker recycled slot=(\d+) reason=max_lifetime old_pid=(\d+) "
                                         r"pid=(\d+)", count=2)
        clusterd.seen_pids.update(int(m.group(3)) for m in recycled)
        for m in recycled[:2]:
            clusterd.wait_for_log(r"worker stopped slot=%s gen=1 pid=%s " % (m.group(1), m.group(2)))
        done = time.monotonic()
        wait_until(lambda: all(len(c.answers_since(done)) >= 20 for c in clients), 15.0,
                   "answers after the recycles", describe=clusterd.log_tail)
    finally:
        for client in clients:
            client.finish()

    assert_no_failed_requests(clients)
    assert sorted(int(m.group(1)) for m in recycled[:2]) == [0, 1]
    assert {int(m.group(2)) for m in recycled[:2]} == set(first.values())
    lines = clusterd.log().splitlines()
    steps = [line for line in lines if re.search(r"worker (recycling|recycled) ", line)]
    # One slot at a time: recycling A, recycled A, recycling B, recycled B.
    kinds = [re.search(r"worker (recycling|recycled) slot=(\d+)", line).groups() for line in steps[:4]]
    assert [kind for kind, _ in kinds] == ["recycling", "recycled"] * 2, steps
    assert kinds[0][1] == kinds[1][1] and kinds[2][1] == kinds[3][1] != kinds[0][1], steps
    for m in recycled[:2]:
        slot, old, new = m.group(1), m.group(2), m.group(3)
        start = index_of(lines, r"worker recycling slot=%s gen=1 pid=%s reason=max_lifetime" % (slot, old))
        ready = index_of(lines, r"worker ready slot=%s gen=1 pid=%s" % (slot, new))
        stopped = index_of(lines, r"worker stopped slot=%s gen=1 pid=%s " % (slot, old))
        assert start < ready < stopped, (slot, lines[start], lines[ready], lines[stopped])
        # Not before its lifetime: ready 0.5 s after it started, due 2-2.2 s after it started.
        old_ready = index_of(lines, r"worker ready slot=%s gen=1 pid=%s" % (slot, old))
        age = log_time(lines[start]) - log_time(lines[old_ready])
        assert age >= 1.45, (slot, age)
    assert clusterd.count(r"worker exited") == 0   # a recycle is not a failure


def test_a_recycle_whose_replacement_never_becomes_ready_keeps_the_old_worker_and_is_retried(
        start_clusterd, tmpdir_short):
    # Only the first worker sends READY=1 (--ready-once); every replacement stays unready.
    command = [PYTHON, worker("notify_worker.py"), "--ready-once", os.path.join(tmpdir_short, "once")]
    config = write_config(tmpdir_short, workers=1, command=command, extra=(
        '\n[ready]\nmode = "notify"\ntimeout = "1s"\n\n[restart]\nmax_delay = "1s"\n'
        '\n[recycle]\nmax_lifetime = "1s"\n'))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    [(_, pid)] = [(m.group(1), int(m.group(2))) for m in clusterd.wait_for_log(READY)]
    clusterd.seen_pids.add(pid)
    [failed] = clusterd.wait_for_log(r"worker recycle failed: slot=0 gen=1 not ready within 1s; "
                                     r"the running worker keeps serving, retry_in=1s")
    assert http_get(address)["pid"] == pid
    retried = clusterd.wait_for_log(r"worker recycling slot=0 gen=1 pid=%d reason=max_lifetime" % pid,
                                    count=2)[1]
    # Retried after restart.max_delay, not at once.
    assert log_time(retried.string) - log_time(failed.string) >= 0.95
    assert http_get(address)["pid"] == pid
    # The old worker still runs beside the retry's replacement (pids wrap: not the lowest one).
    assert pid in live_children(clusterd)
    assert clusterd.count(r"worker (exited|stopped) slot=0 gen=1 pid=%d " % pid) == 0
    assert clusterd.count(r"worker recycled") == 0


def test_a_reload_after_a_failed_recycle_does_not_spin_the_cpu(start_clusterd, tmpdir_short):
    # The recycle's replacement never becomes ready (--ready-once): its retry waits 1 s. A reload
    # then runs past that retry time (its new worker is never ready either, with a long timeout).
    command = [PYTHON, worker("notify_worker.py"), "--ready-once", os.path.join(tmpdir_short, "once")]
    config = write_config(tmpdir_short, workers=1, command=command, extra=(
        '\n[ready]\nmode = "notify"\ntimeout = "1s"\n\n[restart]\nmax_delay = "1s"\n'
        '\n[recycle]\nmax_lifetime = "1s"\n'))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    clusterd.wait_for_log(r"worker recycle failed: slot=0 gen=1 not ready within 1s")
    write_config(tmpdir_short, workers=1, command=command, extra=(
        '\n[ready]\nmode = "notify"\ntimeout = "30s"\n\n[restart]\nmax_delay = "1s"\n'
        '\n[recycle]\nmax_lifetime = "1s"\n'))
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload started generation=2 ")
    before = cpu_seconds(clusterd.pid)
    time.sleep(3.0)  # a measured interval, not synchronisation: the retry time passes inside it
    used = cpu_seconds(clusterd.pid) - before
    assert "reload finished" not in clusterd.log() and "reload abandoned" not in clusterd.log()
    assert used < 0.3, "clusterd used %.2f CPU s in 3 s while idle mid-reload" % used
