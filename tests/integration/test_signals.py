"""clusterd sets every signal it relies on to a known state at start, whatever its launcher left:
an inherited ignored SIGCHLD (the kernel would reap the workers itself), `nohup`'s ignored SIGHUP,
an ignored and blocked SIGTERM, or other blocked signals. Each launcher here execs clusterd in
place, so its pid is clusterd's and the harness ends it by pid as usual.

Then what the signals do (operations.md, "Signals"): SIGUSR2 is forwarded to every process of
every worker's group, and a signal sent while clusterd is still starting (even before it ran at
all) is not lost: SIGTERM/SIGINT stop it cleanly, SIGHUP reloads.
"""
import json
import os
import shutil
import signal

import pytest

import harness
from harness import PYTHON, pid_alive, pid_gone, wait_until, worker

# The signals clusterd reads from its signalfd (protocols §3.6).
HANDLED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
           signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU)

# What a careless parent does between fork and exec (as a preexec_fn would): argv[1] is the
# signals to ignore, argv[2] those to block, both comma-separated names; argv[3:] is the command,
# exec'd in place. SIGPIPE is put back to the default (Python itself ignores it), so clusterd
# must ignore it on its own.
LAUNCHER = r"""
import os, signal, sys
named = lambda text: [getattr(signal, "SIG" + name) for name in text.split(",") if name]
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
for signum in named(sys.argv[1]):
    signal.signal(signum, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, named(sys.argv[2]))
os.execv(sys.argv[3], sys.argv[3:])
"""


def launched_with(ignore=(), block=()):
    """A harness wrapper that starts clusterd with `ignore` set to SIG_IGN and `block` blocked."""
    return [PYTHON, "-c", LAUNCHER, ",".join(ignore), ",".join(block)]


def start_workers(start_clusterd, count, wrapper):
    clusterd = start_clusterd(["--workers", str(count), "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")], wrapper=wrapper)
    clusterd.ready_pids(count)
    return clusterd


def ready_now(clusterd):
    """{slot: pid} of the workers `clusterd status` (this instance's own control socket, in its
    temp dir) reports ready; the pids are recorded so cleanup waits for them."""
    pids = {w["slot"]: w["pid"] for w in clusterd.status()["workers"] if w["state"] == "ready"}
    clusterd.seen_pids.update(pids.values())
    return pids


def ready_workers(clusterd, count, unlike=None):
    """Waits until `count` workers are ready, none of them `unlike`; returns {slot: pid}."""
    def ready():
        pids = ready_now(clusterd)
        return pids if len(pids) == count and unlike not in pids.values() else None

    return wait_until(ready, 10.0, "%d ready workers in status%s"
                      % (count, " without pid %d" % unlike if unlike else ""), describe=clusterd.log_tail)


def mask_of(signums):
    return sum(1 << (signum - 1) for signum in signums)


def signal_masks(pid):
    """{tid: (blocked, ignored)} of every thread of pid, from /proc/PID/task/TID/status."""
    masks = {}
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        masks[int(tid)] = (int(fields["SigBlk"], 16), int(fields["SigIgn"], 16))
    return masks


def test_worker_restarted_when_started_with_sigchld_ignored(start_clusterd):
    clusterd = start_workers(start_clusterd, 2, launched_with(ignore=["CHLD"]))
    before = ready_workers(clusterd, 2)
    victim_slot = min(before)
    victim = before[victim_slot]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not pid_alive(victim), 10.0, "killed worker dead")

    after = ready_workers(clusterd, 2, unlike=victim)
    assert after[1 - victim_slot] == before[1 - victim_slot]
    clusterd.wait_for_log(r"worker exited slot=%d gen=1 pid=%d status=signal:KILL" % (victim_slot, victim))
    # Reaped by clusterd itself, not left to the kernel: only live workers are its children.
    assert set(clusterd.children()) == set(after.values())

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert not [pid for pid in after.values() if pid_alive(pid)]
    assert "stopped code=0" in clusterd.log()


def test_stops_when_started_with_sigchld_ignored(start_clusterd):
    # The other half of the hang: stopping waits for every worker's exit, which clusterd must see.
    clusterd = start_workers(start_clusterd, 2, launched_with(ignore=["CHLD"]))
    pids = ready_workers(clusterd, 2)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    for slot, pid in pids.items():
        assert clusterd.count(r"worker stopped slot=%d gen=1 pid=%d status=" % (slot, pid)) == 1
    assert "stopped code=0" in clusterd.log()


def test_reload_works_under_nohup(start_clusterd):
    clusterd = start_workers(start_clusterd, 2, [shutil.which("nohup")])
    old = ready_workers(clusterd, 2)
    assert clusterd.status()["generation"] == 1

    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2", timeout=15.0)
    status = wait_until(lambda: (lambda s: s if s["generation"] == 2 else None)(clusterd.status()),
                        10.0, "generation 2 in status", describe=clusterd.log_tail)
    new = {w["slot"]: w["pid"] for w in status["workers"]}
    clusterd.seen_pids.update(new.values())
    assert all(w["generation"] == 2 for w in status["workers"])
    assert not set(new.values()) & set(old.values())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stops_when_the_stop_signal_was_ignored_and_blocked_by_the_launcher(start_clusterd, signum):
    name = signal.Signals(signum).name[3:]
    clusterd = start_workers(start_clusterd, 2, launched_with(ignore=[name], block=[name]))
    pids = ready_workers(clusterd, 2)
    clusterd.signal(signum)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    assert "stopping workers=2 signal=TERM" in clusterd.log()


def test_signal_mask_and_dispositions_do_not_depend_on_the_launcher(start_clusterd):
    # Every handled signal ignored, and the mask full of others (SIGSEGV and SIGALRM among them).
    ignored = [signal.Signals(s).name[3:] for s in HANDLED]
    blocked = ["SEGV", "ALRM", "USR1", "PIPE", "TERM", "CONT", "WINCH"]
    clusterd = start_workers(start_clusterd, 1, launched_with(ignore=ignored, block=blocked))
    [pid] = ready_workers(clusterd, 1).values()

    masks = signal_masks(clusterd.pid)
    for tid, (blocked_mask, ignored_mask) in masks.items():
        assert blocked_mask == mask_of(HANDLED), \
            "thread %d blocks %#x, not exactly the handled set %#x" % (tid, blocked_mask, mask_of(HANDLED))
    _, ignored_mask = masks[clusterd.pid]
    assert ignored_mask & mask_of(HANDLED) == 0, "handled signals still ignored: %#x" % ignored_mask
    assert ignored_mask & mask_of([signal.SIGPIPE]), "SIGPIPE not ignored: %#x" % ignored_mask
    # The worker starts with nothing blocked, whatever clusterd was given.
    assert signal_masks(pid)[pid][0] == 0
    # And it all still works: a stop signal stops it.
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    wait_until(lambda: pid_gone(pid), 10.0, "worker reaped")


# ---- what the signals do: SIGUSR2 forwarded, signals during start-up


def signal_worker(directory, *extra):
    """tests/workers/signal_worker.py: records its signals as files in directory."""
    return [PYTHON, worker("signal_worker.py"), "--dir", directory] + list(extra)


def started_workers(directory, count, describe=None):
    """{pid: report} once `count` workers wrote started-PID.json, that is have their handlers."""
    def enough():
        reports = {}
        for name in os.listdir(directory):
            if name.startswith("started-") and name.endswith(".json"):
                with open(os.path.join(directory, name)) as f:
                    report = json.load(f)
                reports[report["pid"]] = report
        return reports if len(reports) >= count else None

    return wait_until(enough, 10.0, "%d started workers in %s" % (count, directory), describe=describe)


def usr2_counts(directory, pids):
    """{pid: how many SIGUSR2 that process recorded}."""
    counts = {}
    for pid in pids:
        try:
            with open(os.path.join(directory, "usr2-%d.log" % pid)) as f:
                counts[pid] = f.read().count("USR2\n")
        except FileNotFoundError:
            counts[pid] = 0
    return counts


def processes_started_with(marker):
    """Pids of the live processes whose command line holds marker (a test's own temp dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline and pid_alive(int(entry)):
            pids.append(int(entry))
    return pids


def test_sigusr2_is_forwarded_once_to_every_process_of_every_worker(start_clusterd, tmpdir_short):
    # Each worker forks a helper that stays in its process group: the signal goes to the group.
    clusterd = start_clusterd(["--workers", "3", "--"] + signal_worker(tmpdir_short, "--helper"))
    workers = set(clusterd.ready_pids(3))
    started = started_workers(tmpdir_short, 3, describe=clusterd.log_tail)
    assert set(started) == workers
    helpers = {report["helper"] for report in started.values()}
    clusterd.extra_pids.update(helpers)                 # no parent-death signal: killed at cleanup
    for pid, report in started.items():
        assert harness.proc_stat(report["helper"])["pgrp"] == pid
    everyone = workers | helpers

    for sent in (1, 2):
        clusterd.signal(signal.SIGUSR2)
        clusterd.wait_for_log(r"forwarded signal=USR2 workers=3$", count=sent)
        wait_until(lambda: min(usr2_counts(tmpdir_short, everyone).values()) >= sent, 10.0,
                   "SIGUSR2 #%d recorded by every process" % sent,
                   describe=lambda: "%r\n%s" % (usr2_counts(tmpdir_short, everyone), clusterd.log_tail()))
        # Exactly once per signal sent to clusterd. (Two standard signals that arrive together are
        # merged by the kernel, so a duplicate may go unseen; one is never counted twice.)
        assert usr2_counts(tmpdir_short, everyone) == {pid: sent for pid in everyone}

    # Only forwarded: the same workers still run, none restarted, and clusterd stops as usual.
    status = clusterd.status()
    assert {w["pid"] for w in status["workers"]} == workers
    assert all(w["state"] == "ready" and w["restarts"] == 0 for w in status["workers"])
    assert clusterd.count(r"worker exited") == 0
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_signal_while_workers_are_not_yet_ready_stops_them_and_exits_0(start_clusterd, tmpdir_short,
                                                                             signum):
    # notify mode, and the workers never send READY=1: clusterd has not finished starting.
    clusterd = start_clusterd(["--workers", "2", "--ready", "notify", "--"] + signal_worker(tmpdir_short))
    started = started_workers(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(started)
    status = clusterd.status()
    assert status["workers_ready"] == 0
    assert [w["state"] for w in status["workers"]] == ["starting", "starting"]

    clusterd.signal(signum)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    log = clusterd.log()
    assert "received signal=%s" % signal.Signals(signum).name[3:] in log
    assert "stopping workers=2 signal=TERM grace=30s" in log
    for pid in started:
        # Its stop signal, handled: a graceful stop, not a kill.
        assert os.path.exists(os.path.join(tmpdir_short, "term-%d" % pid))
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=exit:0 " % pid) == 1
    assert clusterd.count(r"worker ready|all workers ready") == 0
    assert log.splitlines()[-1].endswith("stopped code=0")
    assert processes_started_with(tmpdir_short) == []      # no worker left behind


def test_sighup_while_workers_are_not_yet_ready_reloads_once_they_are(start_clusterd, tmpdir_short):
    go = os.path.join(tmpdir_short, "go")              # the workers send READY=1 once it exists
    clusterd = start_clusterd(["--workers", "2", "--ready", "notify", "--"]
                              + signal_worker(tmpdir_short, "--ready-when", go))
    first = started_workers(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(first)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload started generation=2 workers=2 batch=1$")
    with open(go, "w"):
        pass
    clusterd.wait_for_log(r"reload finished generation=2 workers=2$", timeout=20.0)

    status = clusterd.status()
    new = {w["pid"] for w in status["workers"]}
    clusterd.seen_pids.update(new)
    assert status["generation"] == 2 and status["workers_ready"] == 2
    assert all(w["generation"] == 2 and w["state"] == "ready" for w in status["workers"])
    assert len(new) == 2 and not new & set(first)
    assert clusterd.count(r"received signal=HUP") == 1
    assert not [pid for pid in first if pid_alive(pid)]
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()


# Blocks the signal named by argv[1], sends it to itself, then execs argv[2:] in place: the signal
# is pending before clusterd runs its first instruction (the mask and pending signals survive
# execve), as early as a signal can come.
PENDING_LAUNCHER = r"""
import os, signal, sys
signum = getattr(signal, "SIG" + sys.argv[1])
signal.pthread_sigmask(signal.SIG_BLOCK, [signum])
os.kill(os.getpid(), signum)
assert signum in signal.sigpending()
os.execv(sys.argv[2], sys.argv[2:])
"""


def pending_at_exec(name):
    return [PYTHON, "-c", PENDING_LAUNCHER, name]


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_a_stop_signal_sent_before_clusterd_ran_stops_it_cleanly(start_clusterd, tmpdir_short, name):
    clusterd = start_clusterd(["--workers", "2", "--log-level", "debug", "--"] + signal_worker(tmpdir_short),
                              wrapper=pending_at_exec(name))
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    spawned = [int(m.group(1)) for m in clusterd.matches(r"worker spawned slot=\d gen=1 pid=(\d+)$")]
    clusterd.seen_pids.update(spawned)
    messages = [harness.LOG_LINE.match(line).group(3) for line in clusterd.log().splitlines()]
    # It started (both workers spawned), then read the signal that was waiting.
    assert len(spawned) == 2
    last_spawned = max(i for i, message in enumerate(messages) if message.startswith("worker spawned "))
    assert messages.index("received signal=%s" % name) > last_spawned
    assert "stopping workers=2 signal=TERM grace=30s" in messages
    for pid in spawned:
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=" % pid) == 1
        assert pid_gone(pid)
    assert messages[-1] == "stopped code=0"
    assert processes_started_with(tmpdir_short) == []


def test_a_sighup_sent_before_clusterd_ran_is_a_reload(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--log-level", "debug", "--"] + signal_worker(tmpdir_short),
                              wrapper=pending_at_exec("HUP"))
    clusterd.wait_for_log(r"reload finished generation=2 workers=2$", timeout=20.0)
    assert clusterd.count(r"received signal=HUP") == 1
    first = [int(m.group(1)) for m in clusterd.matches(r"worker spawned slot=\d gen=1 pid=(\d+)$")]
    clusterd.seen_pids.update(first)
    assert len(first) == 2
    status = clusterd.status()
    new = {w["pid"] for w in status["workers"]}
    clusterd.seen_pids.update(new)
    assert status["generation"] == 2 and status["workers_ready"] == 2
    assert all(w["generation"] == 2 and w["state"] == "ready" for w in status["workers"])
    wait_until(lambda: set(clusterd.children()) == new, 10.0, "only generation 2 left",
               describe=lambda: str(clusterd.children()))
    assert not [pid for pid in first if pid_alive(pid)]
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
