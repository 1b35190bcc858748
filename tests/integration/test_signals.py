"""clusterd sets every signal it relies on to a known state at start, whatever its launcher left:
an inherited ignored SIGCHLD (the kernel would reap the workers itself), `nohup`'s ignored SIGHUP,
an ignored and blocked SIGTERM, or other blocked signals. Each launcher here execs clusterd in
place, so its pid is clusterd's and the harness ends it by pid as usual.
"""
import os
import shutil
import signal

import pytest

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
