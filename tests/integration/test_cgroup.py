"""A cgroup v2 per worker (issue 18): what a worker starts goes with it.

Each test runs clusterd in a cgroup the test creates at the top of the cgroup v2 hierarchy and
removes at the end, marked delegated the way systemd's Delegate=yes marks a unit's cgroup (the
xattr trusted.delegate=1), or not marked, or as the root of a cgroup namespace of its own (a
container). Nothing else of the hierarchy is touched.
"""
import errno
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import harness
from harness import pid_alive, pid_gone, wait_until, worker
from test_security_processes import KINDS, ORPHAN_WORKER, orphan_pids

KILLED_LEFTOVERS = r"worker exited, killing what is left in its cgroup slot=0 gen=1 pid=%d cgroup=(\S+)"


def unified_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


def cgroup_of(pid):
    """The cgroup v2 path of `pid` (the 0:: line), relative to the hierarchy's root."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise AssertionError("no cgroup v2 line for pid %d" % pid)


def read_text(path):
    with open(path) as f:
        return f.read()


class OwnCgroups:
    """Cgroups this test made under the top of the cgroup v2 hierarchy; removed, innermost
    first, once their processes are gone."""

    def __init__(self):
        if os.geteuid() != 0:
            pytest.skip("needs root to create cgroups")
        self.mount = unified_mount()
        if self.mount is None:
            pytest.skip("no cgroup v2 hierarchy is mounted")
        if not os.path.exists(os.path.join(self.mount, "cgroup.kill")) and \
                not os.path.exists(os.path.join(self.mount, "cgroup.procs")):
            pytest.skip("the cgroup v2 mount has no cgroup.procs")
        self.created = []

    def create(self, delegated):
        directory = os.path.join(self.mount, "cd-test-%d-%d" % (os.getpid(), len(self.created)))
        os.mkdir(directory)
        self.created.append(directory)
        if not os.path.exists(os.path.join(directory, "cgroup.kill")):
            pytest.skip("this kernel has no cgroup.kill (Linux 5.14)")
        if delegated:
            os.setxattr(directory, "trusted.delegate", b"1")
        return directory

    def relative(self, directory):
        return "/" + os.path.relpath(directory, self.mount)

    @staticmethod
    def enter(directory, *then):
        """A wrapper that moves the command into the cgroup, then execs it (same pid)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', directory, *then]

    def remove(self):
        def removed(directory):
            for path in sorted((os.path.join(root, d) for root, dirs, _ in os.walk(directory) for d in dirs),
                               key=len, reverse=True) + [directory]:
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    return False   # EBUSY until its last process has exited
            return True

        for directory in reversed(self.created):
            wait_until(lambda: removed(directory), 20.0, "cgroup %s removed" % directory)


@pytest.fixture
def cgroups():
    """Requested before start_clusterd, so it is removed after clusterd and its workers are gone."""
    made = OwnCgroups()
    yield made
    made.remove()


def start_in(start_clusterd, tmpdir, cgroup_dir, args, env=None):
    return start_clusterd(args, tmpdir=tmpdir, env=env, wrapper=OwnCgroups.enter(cgroup_dir))


def start_orphan_workers_in(start_clusterd, tmpdir, cgroup_dir, *extra):
    clusterd = start_in(start_clusterd, tmpdir, cgroup_dir,
                        ["--workers", "1", "--listen", "127.0.0.1:0", "--ready", "exec", *extra, "--",
                         *ORPHAN_WORKER], env={"ORPHAN_DIR": tmpdir})
    address = clusterd.address()
    [worker_pid] = clusterd.ready_pids(1)
    orphans = wait_until(lambda: (lambda found: found if len(found) == len(KINDS) else None)(orphan_pids(tmpdir)),
                         10.0, "the orphans' pid files", describe=clusterd.log_tail)
    clusterd.extra_pids.update(orphans.values())
    return clusterd, address, worker_pid, orphans


def test_in_a_delegated_cgroup_clusterd_moves_to_a_leaf_and_each_worker_gets_its_own(
        cgroups, start_clusterd, tmpdir_short):
    unit = cgroups.create(delegated=True)
    clusterd = start_in(start_clusterd, tmpdir_short, unit,
                        ["--workers", "3", "--ready", "exec", "--", "/bin/sleep", "1000"])
    pids = clusterd.ready_pids(3)
    clusterd.wait_for_log(r"a cgroup per worker parent=%s$" % re.escape(unit))
    assert cgroup_of(clusterd.pid) == cgroups.relative(unit) + "/supervisor"
    paths = {cgroup_of(pid) for pid in pids}
    assert len(paths) == 3
    for path in paths:
        assert re.fullmatch(re.escape(cgroups.relative(unit)) + r"/worker\.[0-2]\.1\.\d+", path), path
    status = clusterd.status()
    assert len(status["workers"]) == 3


def test_a_crashed_workers_daemonized_helpers_are_killed_with_it(cgroups, start_clusterd, tmpdir_short):
    # The regression: a helper that left the worker's process group (setsid) and kept the
    # listening socket lived on after its worker died, serving on its own, until clusterd stopped.
    unit = cgroups.create(delegated=True)
    clusterd, _, worker_pid, orphans = start_orphan_workers_in(start_clusterd, tmpdir_short, unit)
    holder = orphans[("holder", worker_pid)]
    assert os.readlink("/proc/%d/fd/3" % holder).startswith("socket:")
    assert cgroup_of(holder) == cgroup_of(worker_pid)
    os.kill(worker_pid, signal.SIGKILL)
    [killed] = clusterd.wait_for_log(KILLED_LEFTOVERS % worker_pid)
    assert killed.group(1) == os.path.join(cgroups.mount, cgroup_of(clusterd.pid).lstrip("/")).rsplit(
        "/supervisor", 1)[0] + "/" + os.path.basename(killed.group(1))
    wait_until(lambda: all(pid_gone(pid) for pid in orphans.values()), 10.0, "the helpers gone",
               describe=lambda: str({kind: pid for (kind, _), pid in orphans.items() if not pid_gone(pid)}))
    # The exit counts once nothing is left: logged after the kill, then the slot restarts.
    clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d status=signal:KILL" % worker_pid)
    assert clusterd.ready_pids(2)[1] != worker_pid
    assert not os.path.exists(killed.group(1))


def test_stop_leaves_no_process_no_worker_cgroup_and_a_free_port(cgroups, start_clusterd, tmpdir_short):
    unit = cgroups.create(delegated=True)
    clusterd, address, worker_pid, orphans = start_orphan_workers_in(start_clusterd, tmpdir_short, unit,
                                                                     "--grace", "1s")
    code, out, err = clusterd.control("stop")
    assert code == 0, out + err + clusterd.log_tail()
    assert clusterd.wait_exit(10.0) == 0, clusterd.log_tail()
    left = {kind: pid for (kind, _), pid in orphans.items() if not pid_gone(pid)}
    assert not left, "%s outlived clusterd\n%s" % (left, clusterd.log_tail())
    assert sorted(d for d in os.listdir(unit) if os.path.isdir(os.path.join(unit, d))) == ["supervisor"]
    assert read_text(os.path.join(unit, "supervisor", "cgroup.procs")) == ""
    host, port = harness.split_host_port(address)
    assert harness.can_listen(host, port)


def test_a_hundred_workers_each_in_a_cgroup_all_removed_after_stop(cgroups, start_clusterd, tmpdir_short):
    unit = cgroups.create(delegated=True)
    clusterd = start_in(start_clusterd, tmpdir_short, unit,
                        ["--workers", "100", "--ready", "exec", "--", "/bin/sleep", "1000"])
    clusterd.wait_for_log(r"all workers ready workers=100", timeout=60.0)
    workers = clusterd.status()["workers"]
    assert len(workers) == 100
    clusterd.seen_pids.update(w["pid"] for w in workers)
    per_worker = {cgroup_of(w["pid"]) for w in workers}
    assert len(per_worker) == 100
    made = [d for d in os.listdir(unit) if d.startswith("worker.")]
    assert len(made) == 100
    for name in made:
        assert len(read_text(os.path.join(unit, name, "cgroup.procs")).split()) == 1
    assert clusterd.stop() == 0
    assert [d for d in os.listdir(unit) if os.path.isdir(os.path.join(unit, d))] == ["supervisor"]


def test_the_root_of_a_cgroup_namespace_gets_a_cgroup_of_clusterds_own_removed_at_exit(
        cgroups, start_clusterd, tmpdir_short):
    # As in a container with a cgroup namespace of its own: clusterd sees its cgroup as "/".
    container = cgroups.create(delegated=False)
    # The namespace's own view of the hierarchy, mounted beside the host's (whose root it does not see).
    mount = os.path.join(tmpdir_short, "cgroup")
    os.mkdir(mount)
    namespace = ["unshare", "--cgroup", "--mount", "--propagation", "private", "/bin/sh", "-c",
                 'mount -t cgroup2 cgroup2 "$0" && exec "$@"', mount]
    clusterd = start_clusterd(["--workers", "2", "--ready", "exec", "--", "/bin/sleep", "1000"],
                              tmpdir=tmpdir_short, wrapper=OwnCgroups.enter(container, *namespace))
    pids = clusterd.ready_pids(2)
    own = os.path.join(container, "clusterd.%d" % clusterd.pid)
    clusterd.wait_for_log(r"a cgroup per worker parent=%s/clusterd\.%d$" % (re.escape(mount), clusterd.pid))
    assert cgroup_of(clusterd.pid) == cgroups.relative(container)
    for pid in pids:
        assert os.path.dirname(os.path.join(cgroups.mount, cgroup_of(pid).lstrip("/"))) == own
    assert clusterd.stop() == 0
    wait_until(lambda: not os.path.exists(own), 10.0, "clusterd's cgroup removed")


def test_a_cgroup_not_delegated_is_left_alone(cgroups, start_clusterd, tmpdir_short):
    session = cgroups.create(delegated=False)
    clusterd = start_in(start_clusterd, tmpdir_short, session,
                        ["--workers", "1", "--ready", "exec", "--", "/bin/sleep", "1000"])
    [pid] = clusterd.ready_pids(1)
    clusterd.wait_for_log(r"the workers stay in clusterd's cgroup: clusterd's cgroup %s was not delegated to it "
                          r"\(a systemd unit needs Delegate=yes" % re.escape(session))
    assert cgroup_of(pid) == cgroup_of(clusterd.pid) == cgroups.relative(session)
    assert clusterd.stop() == 0


def test_mode_on_takes_its_cgroup_as_delegated_and_refuses_to_start_without_cgroups(
        cgroups, start_clusterd, tmpdir_short):
    unmarked = cgroups.create(delegated=False)
    clusterd = start_in(start_clusterd, tmpdir_short, unmarked,
                        ["--set", "cgroup.mode=on", "--workers", "1", "--ready", "exec", "--", "/bin/sleep", "1000"])
    [pid] = clusterd.ready_pids(1)
    assert cgroup_of(clusterd.pid) == cgroups.relative(unmarked) + "/supervisor"
    assert re.fullmatch(re.escape(cgroups.relative(unmarked)) + r"/worker\.0\.1\.\d+", cgroup_of(pid))
    assert clusterd.stop() == 0

    # A read-only /sys/fs/cgroup (a default container, ProtectControlGroups=yes): nothing starts.
    read_only = cgroups.create(delegated=True)
    refused = subprocess.run(
        OwnCgroups.enter(read_only, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                         'mount -o remount,bind,ro "$0" && exec "$@"', cgroups.mount,
                         harness.BIN, "--set", "cgroup.mode=on", "--workers", "1", "--control", "none", "--",
                         "/bin/sleep", "1000"),
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2, refused
    assert refused.stderr == ("clusterd: cgroup.mode = \"on\": cannot write %s/cgroup.kill: Read-only file system\n"
                              % read_only), refused.stderr


def test_mode_off_keeps_the_workers_in_clusterds_cgroup(cgroups, start_clusterd, tmpdir_short):
    unit = cgroups.create(delegated=True)
    clusterd = start_in(start_clusterd, tmpdir_short, unit,
                        ["--set", "cgroup.mode=off", "--workers", "1", "--ready", "exec", "--", "/bin/sleep", "1000"])
    [pid] = clusterd.ready_pids(1)
    assert cgroup_of(pid) == cgroup_of(clusterd.pid) == cgroups.relative(unit)
    assert "cgroup" not in clusterd.log()


def test_a_killed_clusterds_cgroups_are_removed_by_the_next_start(cgroups, start_clusterd, tmpdir_short):
    # clusterd killed by SIGKILL cannot remove its cgroups; its workers die with it (parent-death
    # signal). The next clusterd at the same root removes the empty ones.
    container = cgroups.create(delegated=False)
    mount = os.path.join(tmpdir_short, "cgroup")
    os.mkdir(mount)
    namespace = ["unshare", "--cgroup", "--mount", "--propagation", "private", "/bin/sh", "-c",
                 'mount -t cgroup2 cgroup2 "$0" && exec "$@"', mount]
    args = ["--workers", "2", "--ready", "exec", "--control", "none", "--", "/bin/sleep", "1000"]
    killed = start_clusterd(args, tmpdir=tmpdir_short, wrapper=OwnCgroups.enter(container, *namespace))
    pids = killed.ready_pids(2)
    left = os.path.join(container, "clusterd.%d" % killed.pid)
    assert len([d for d in os.listdir(left) if d.startswith("worker.")]) == 2
    killed.signal(signal.SIGKILL)
    killed.wait_exit()
    wait_until(lambda: all(pid_gone(pid) for pid in pids), 10.0, "the workers gone with clusterd")
    assert os.path.isdir(left)

    again = start_clusterd(args, tmpdir=tmpdir_short, wrapper=OwnCgroups.enter(container, *namespace))
    again.ready_pids(2)
    again.wait_for_log(r"removed the cgroup of a clusterd that is gone cgroup=%s/clusterd\.%d$"
                       % (re.escape(mount), killed.pid))
    assert not os.path.exists(left)
    assert os.path.isdir(os.path.join(container, "clusterd.%d" % again.pid))


def test_status_shows_each_workers_cgroup_and_what_it_counted(cgroups, start_clusterd, tmpdir_short):
    # The worker's child burns 0.3 s of CPU and exits: gone from the process tree, still counted
    # by the cgroup.
    unit = cgroups.create(delegated=True)
    done = os.path.join(tmpdir_short, "done")
    clusterd = start_in(start_clusterd, tmpdir_short, unit,
                        ["--workers", "1", "--listen", "127.0.0.1:0", "--", harness.PYTHON,
                         worker("costly_worker.py"), "--child-mib", "1", "--child-cpu", "0.3", "--done", done,
                         "--child-exits"])
    [pid] = clusterd.ready_pids(1)
    wait_until(lambda: os.path.exists(done), 20.0, "the child done")
    wait_until(lambda: clusterd.status()["workers"][0]["processes"] == 1, 10.0, "the child gone")
    [entry] = clusterd.status()["workers"]
    assert entry["pid"] == pid
    cgroup = entry["cgroup"]
    assert cgroup["path"] == os.path.join(cgroups.mount, cgroup_of(pid).lstrip("/"))
    assert cgroup["processes"] == 1
    assert cgroup["cpu_s"] >= 0.3 > entry["cpu_s"], entry
    has_memory = os.path.exists(os.path.join(cgroup["path"], "memory.current"))
    assert (cgroup["memory_bytes"] is not None) == has_memory, entry


def test_without_cgroups_status_says_null(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--set", "cgroup.mode=off", "--workers", "1", "--ready", "exec", "--",
                               "/bin/sleep", "1000"], tmpdir=tmpdir_short)
    clusterd.ready_pids(1)
    assert clusterd.status()["workers"][0]["cgroup"] is None
