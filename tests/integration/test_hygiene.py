"""What a worker gets and nothing more: its fds, its environment, its own process group and session,
expanded argv, /dev/null stdin; orphans are reaped; `--workers auto` counts usable CPUs.
"""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest

import harness
from harness import PYTHON, http_get, wait_for_reports, wait_until, worker


def report_worker(report_dir, *extra):
    return [PYTHON, worker("report_worker.py"), "--report-dir", report_dir] + list(extra)


def is_socket(target):
    return target.startswith("socket:[")


@pytest.mark.parametrize("listeners", [0, 2], ids=["no-listener", "two-listeners"])
def test_worker_holds_only_stdio_and_its_listeners(start_clusterd, tmpdir_short, listeners):
    listen = []
    for index in range(listeners):
        listen += ["--listen", "l%d=127.0.0.1:0" % index]
    clusterd = start_clusterd(["--workers", "2"] + listen + ["--"] + report_worker(tmpdir_short))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    for pid, report in reports.items():
        assert report["fds"] == list(range(3 + listeners)), report["fd_targets"]
        for fd in range(3, 3 + listeners):
            assert is_socket(report["fd_targets"][str(fd)])
        listen_env = {k: v for k, v in report["env"].items() if k.startswith("LISTEN_")}
        if listeners:
            assert listen_env == {"LISTEN_FDS": "2", "LISTEN_PID": str(pid),
                                  "LISTEN_FDNAMES": "l0:l1"}
        else:
            assert listen_env == {}


def test_listener_fds_are_the_logged_sockets(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "a=127.0.0.1:0",
                               "--listen", "b=127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--name", "b"])
    address_b = clusterd.address("b")
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address_b)
    assert reply["pid"] == pid
    assert reply["startup_fds"] == [0, 1, 2, 3, 4]
    assert reply["listen"]["LISTEN_PID"] == str(pid)
    assert "127.0.0.1:%d" % reply["served_address"][1] == address_b


def test_systemd_variables_of_clusterd_are_not_passed_on(start_clusterd, tmpdir_short):
    # clusterd runs "under systemd": give it a real notify socket so it can do its part.
    notify_path = os.path.join(tmpdir_short, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    reports_dir = os.path.join(tmpdir_short, "r")
    os.mkdir(reports_dir)
    inherited = {
        "NOTIFY_SOCKET": notify_path,
        "LISTEN_PIDFDID": "12345",
        "LISTEN_FDNAMES": "stale",
        "WATCHDOG_USEC": "600000000",
        "WATCHDOG_PID": "1",
        "SYSTEMD_EXEC_PID": "1",
        "MAINPID": "1",
        "MANAGERPID": "1",
        "CLUSTERD_TEST_KEEP": "kept",
    }
    try:
        clusterd = start_clusterd(["--workers", "1", "--"] + report_worker(reports_dir),
                                  env=inherited)
        [report] = wait_for_reports(reports_dir, 1, describe=clusterd.log_tail).values()
        clusterd.seen_pids.add(report["pid"])
    finally:
        notify.close()
    env = report["env"]
    assert env.get("CLUSTERD_TEST_KEEP") == "kept"      # the rest of clusterd's environment is passed
    # The one NOTIFY_SOCKET a worker has is its own (ready.mode = "auto" gives each worker one),
    # never the service manager's: nothing of systemd's reaches it.
    own_notify = env.pop("NOTIFY_SOCKET", None)
    assert own_notify is not None and own_notify != notify_path
    assert os.path.dirname(os.path.dirname(own_notify)) == clusterd.tmpdir, own_notify
    leaked = sorted((set(inherited) - {"CLUSTERD_TEST_KEEP"}) & set(env))
    assert leaked == [], {k: env[k] for k in leaked}
    assert not [k for k in env if k.startswith("LISTEN_") or k.startswith("WATCHDOG_")]


def test_env_and_worker_identity_variables(start_clusterd, tmpdir_short):
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
name = "envtest"
workers = 3
command = %s

[env]
FROM_FILE = "file value"
""" % harness.toml_string(report_worker(tmpdir_short)))
    clusterd = start_clusterd(["-c", config, "--set", "env.FROM_FLAG=1"])
    reports = wait_for_reports(tmpdir_short, 3, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    assert sorted(r["slot"] for r in reports.values()) == ["0", "1", "2"]
    for report in reports.values():
        assert report["env"]["FROM_FILE"] == "file value"
        assert report["env"]["FROM_FLAG"] == "1"
        assert report["env"]["CLUSTERD_WORKER_ID"] == report["slot"]
        assert report["env"]["CLUSTERD_WORKERS"] == "3"
        assert report["env"]["CLUSTERD_GENERATION"] == "1"


def test_env_values_take_the_fd_and_worker_id_placeholders(start_clusterd, tmpdir_short):
    # nginx finds its inherited sockets in NGINX="3;4;", php-fpm in FPM_SOCKETS=ADDRESS=FD.
    clusterd = start_clusterd(["--workers", "2", "--listen", "first=127.0.0.1:0",
                               "--listen", "second=127.0.0.1:0",
                               "--set", "env.NGINX={fd:first};{fd:second};",
                               "--set", "env.CACHE=/var/cache/app-{worker_id}",
                               "--set", "env.LITERAL={{fd:first}", "--"] + report_worker(tmpdir_short))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    for report in reports.values():
        assert report["env"]["NGINX"] == "3;4;"
        assert report["env"]["CACHE"] == "/var/cache/app-%s" % report["slot"]
        assert report["env"]["LITERAL"] == "{fd:first}"


def test_each_worker_leads_its_own_process_group_and_session(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--"] + report_worker(tmpdir_short))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    for pid, report in reports.items():
        assert report["pgid"] == pid and report["sid"] == pid
        stat = harness.proc_stat(pid)                 # and seen from outside
        assert (stat["pgrp"], stat["session"], stat["ppid"]) == (pid, pid, clusterd.pid)
    assert set(clusterd.children()) == set(reports)


def test_argv_placeholders_are_expanded(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--listen", "first=127.0.0.1:0",
                               "--listen", "second=127.0.0.1:0", "--"]
                              + report_worker(tmpdir_short, "--fd", "{fd:second}", "--first",
                                              "{fd:first}", "--id={worker_id}", "x{{y"))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    for report in reports.values():
        assert report["argv"][-6:] == ["--fd", "4", "--first", "3", "--id=%s" % report["slot"],
                                       "x{y"]


def test_stdin_is_dev_null_whatever_clusterd_has(start_clusterd, tmpdir_short):
    # clusterd's own stdin is a pipe here; the worker must still read from /dev/null.
    clusterd = start_clusterd(["--workers", "1", "--"] + report_worker(tmpdir_short),
                              stdin=subprocess.PIPE)
    try:
        [report] = wait_for_reports(tmpdir_short, 1, describe=clusterd.log_tail).values()
        clusterd.seen_pids.add(report["pid"])
    finally:
        clusterd.process.stdin.close()
    assert report["fd_targets"]["0"] == "/dev/null"


def test_clusterd_started_with_stdio_closed_still_gives_workers_dev_null(start_clusterd,
                                                                       tmpdir_short):
    clusterd = start_clusterd(["--workers", "1", "--listen", "127.0.0.1:0", "--"]
                              + report_worker(tmpdir_short), close_stdio=True)
    [report] = wait_for_reports(tmpdir_short, 1, describe=clusterd.log_tail).values()
    clusterd.seen_pids.add(report["pid"])
    # None of clusterd's own sockets or files landed on the worker's 0-2.
    assert report["fds"] == [0, 1, 2, 3], report["fd_targets"]
    assert [report["fd_targets"][str(fd)] for fd in (0, 1, 2)] == ["/dev/null"] * 3
    assert is_socket(report["fd_targets"]["3"])
    clusterd.address()                               # and it logs to --log-file as usual


def test_orphans_of_a_worker_are_killed_and_reaped(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "2", "--"] + report_worker(tmpdir_short, "--orphan"))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    [parent] = [pid for pid, report in reports.items() if report["orphan"]]
    orphan = reports[parent]["orphan"]
    clusterd.extra_pids.add(orphan)
    # clusterd is a subreaper: the orphan is its child now, in the worker's process group.
    stat = harness.proc_stat(orphan)
    assert stat["ppid"] == clusterd.pid and stat["pgrp"] == parent

    os.kill(parent, signal.SIGKILL)
    wait_until(lambda: harness.pid_gone(orphan), 10.0, "orphan killed and reaped",
               describe=lambda: "%r\n%s" % (harness.proc_stat(orphan), clusterd.log_tail()))
    reports = wait_for_reports(tmpdir_short, 3, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    workers = {pid for pid in reports if pid != parent}

    def only_workers_remain():
        children = clusterd.children()
        states = [harness.proc_stat(pid) for pid in children]
        return set(children) == workers and all(s and s["state"] != "Z" for s in states)

    wait_until(only_workers_remain, 10.0, "clusterd's children are exactly its workers",
               describe=lambda: str(clusterd.children()))


def voluntary_context_switches(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/%d/status" % pid)


def test_idle_clusterd_does_not_wake_up(start_clusterd, tmpdir_short):
    # Nothing configured that needs a timer (interface §7): clusterd sleeps until something happens.
    # In the default ready.mode = "auto": once the workers are seen waiting on their socket,
    # nothing is looked at any more.
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("wait_worker.py"), "epoll"])
    clusterd.ready_pids(2)
    # Asleep in its event loop once it has handled the workers' start.
    wait_until(lambda: harness.proc_stat(clusterd.pid)["state"] == "S", 10.0, "clusterd asleep")
    before = voluntary_context_switches(clusterd.pid)
    started = time.monotonic()
    # A measurement window, not synchronisation.
    wait_until(lambda: time.monotonic() - started >= 1.5, 10.0, "1.5 s idle")
    assert voluntary_context_switches(clusterd.pid) == before


# ---- `--workers auto` from inputs the test sets itself: the affinity mask (taskset) and the CPU
# quota of cgroups it creates. The rule (configuration.md, `workers`): the CPUs of the mask, capped
# by the lowest quota along the cgroup's path rounded up, at least 1. Each case below states its
# expected count, worked out by hand from those inputs.

AUTO_RESOLVED = r"workers=auto resolved workers=(\d+) affinity_cpus=(\d+) quota_cpus=(\S+) source=(\S+(?: \S+)?)$"


def first_cpus(count):
    """The first `count` CPUs this test may run on, as taskset's list."""
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0))[:count])


def start_auto(start_clusterd, report_dir, cpus, wrapper=()):
    """clusterd --workers auto on the first `cpus` CPUs of this test's mask, inside `wrapper`."""
    assert shutil.which("taskset"), "taskset is not installed (util-linux: tools/dev installs it)"
    return start_clusterd(["--workers", "auto", "--control", "none", "--"] + report_worker(report_dir),
                          wrapper=list(wrapper) + [shutil.which("taskset"), "-c", first_cpus(cpus)])


def assert_auto_started(clusterd, report_dir, workers, affinity, quota, source):
    """The resolved line is exactly this, and exactly `workers` workers run, slots 0..workers-1."""
    [resolved] = clusterd.wait_for_log(AUTO_RESOLVED)
    assert resolved.groups() == (str(workers), str(affinity), quota, source), resolved.string
    [started] = clusterd.wait_for_log(r"started name=\S+ pid=\d+ workers=(\d+) ")
    assert started.group(1) == str(workers)
    reports = wait_for_reports(report_dir, workers, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    assert sorted(int(r["slot"]) for r in reports.values()) == list(range(workers))
    assert {r["workers"] for r in reports.values()} == {str(workers)}
    assert len(clusterd.ready_pids(workers)) == workers


def test_workers_auto_follows_the_affinity_mask(start_clusterd, tmpdir_short):
    # One CPU in the mask: one worker, whatever quota this machine has (a quota is at least 1).
    clusterd = start_auto(start_clusterd, tmpdir_short, 1)
    [resolved] = clusterd.wait_for_log(AUTO_RESOLVED)
    assert resolved.group(1, 2) == ("1", "1"), resolved.string
    [started] = clusterd.wait_for_log(r"started name=\S+ pid=\d+ workers=(\d+) ")
    assert started.group(1) == "1"
    [report] = wait_for_reports(tmpdir_short, 1, describe=clusterd.log_tail).values()
    clusterd.seen_pids.add(report["pid"])
    assert report["workers"] == "1"


class CpuCgroups:
    """Cgroups this test creates at the top of this machine's cpu controller hierarchy (so no
    quota but its own applies), each with the quota it is given; removed at the end."""

    def __init__(self):
        self.version, self.top = self._hierarchy()
        self.created = []

    @staticmethod
    def _hierarchy():
        """("v1" or "v2", mount point) of the cpu controller, or pytest.skip with the reason."""
        if os.geteuid() != 0:
            pytest.skip("needs root to create cgroups with a CPU quota")
        v1 = v2 = None
        with open("/proc/self/mounts") as f:
            for line in f:
                _, mount_point, fstype, options = line.split()[:4]
                if fstype == "cgroup" and "cpu" in options.split(","):
                    v1 = mount_point
                elif fstype == "cgroup2" and v2 is None:
                    v2 = mount_point
        if v1:
            top_quota = read_text(os.path.join(v1, "cpu.cfs_quota_us")).strip()
            if top_quota != "-1":
                pytest.skip("the cpu hierarchy's top %s has a quota of its own (%s)" % (v1, top_quota))
            return "v1", v1
        if v2:
            if os.path.exists(os.path.join(v2, "cpu.max")):
                pytest.skip("the cgroup hierarchy's top %s has a cpu.max of its own (a container)" % v2)
            subtree_control = os.path.join(v2, "cgroup.subtree_control")
            if "cpu" not in read_text(subtree_control).split():
                # systemd enables it there whenever a unit sets a CPU quota or weight; done here
                # for the test's own cgroups, and left on (harmless, and systemd may rely on it).
                try:
                    write_text(subtree_control, "+cpu")
                except OSError as error:
                    pytest.skip("cannot enable the cpu controller in %s: %s" % (subtree_control, error))
            return "v2", v2
        pytest.skip("no cgroup hierarchy with the cpu controller here")

    def create(self, parent, quota_us):
        """A new cgroup under `parent` (None: the top) with quota_us/100000 CPUs (None: no quota);
        its directory."""
        directory = os.path.join(parent or self.top, "cd-auto-%d-%d" % (os.getpid(), len(self.created)))
        if parent and self.version == "v2":
            write_text(os.path.join(parent, "cgroup.subtree_control"), "+cpu")   # its children get cpu.max
        try:
            os.mkdir(directory)
        except OSError as error:
            pytest.skip("cannot create a cgroup in %s: %s" % (self.top, error))
        self.created.append(directory)
        if self.version == "v1":
            write_text(os.path.join(directory, "cpu.cfs_period_us"), "100000")
            write_text(os.path.join(directory, "cpu.cfs_quota_us"), str(quota_us or -1))
        elif quota_us is not None:
            write_text(os.path.join(directory, "cpu.max"), "%d 100000" % quota_us)
        return directory

    def quota_file(self, directory):
        return "cgroup1 %s/cpu.cfs_quota_us" % directory if self.version == "v1" \
            else "cgroup2 %s/cpu.max" % directory

    @staticmethod
    def enter(directory):
        """A wrapper that moves the command into the cgroup, then execs it (same pid)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', directory]

    def remove(self):
        def removed(directory):
            try:
                os.rmdir(directory)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                return False       # EBUSY until its last process has exited

        for directory in reversed(self.created):
            wait_until(lambda: removed(directory), 20.0, "cgroup %s removed" % directory,
                       describe=lambda: read_text(os.path.join(directory, "cgroup.procs")))


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def cpu_cgroups():
    """Requested before start_clusterd, so it is removed after clusterd and its workers are gone."""
    cgroups = CpuCgroups()
    yield cgroups
    cgroups.remove()


# (CPUs in the mask, the quota of a parent cgroup, of clusterd's own cgroup (µs per 100000 µs;
# None: none), workers expected, quota_cpus logged, whose quota applies)
AUTO_CASES = [
    pytest.param(1, None, 150000, 1, "1.500000", "own", id="1-cpu-quota-1.5"),
    pytest.param(2, None, 150000, 2, "1.500000", "own", id="2-cpus-quota-1.5-rounds-up"),
    pytest.param(2, None, 50000, 1, "0.500000", "own", id="2-cpus-quota-0.5"),
    pytest.param(2, None, 300000, 2, "3.000000", "own", id="2-cpus-quota-3"),
    pytest.param(2, 50000, None, 1, "0.500000", "parent", id="2-cpus-parent-quota-0.5"),
    pytest.param(2, None, None, 2, "none", "affinity", id="2-cpus-no-quota"),
]


@pytest.mark.parametrize("cpus, parent_quota, own_quota, workers, logged_quota, applies", AUTO_CASES)
def test_workers_auto_is_the_mask_capped_by_the_cgroup_quota(cpu_cgroups, start_clusterd, tmpdir_short, cpus,
                                                             parent_quota, own_quota, workers, logged_quota,
                                                             applies):
    if len(os.sched_getaffinity(0)) < cpus:
        pytest.skip("needs %d CPUs" % cpus)
    parent = cpu_cgroups.create(None, parent_quota)
    own = cpu_cgroups.create(parent, own_quota)
    source = {"own": cpu_cgroups.quota_file(own), "parent": cpu_cgroups.quota_file(parent),
              "affinity": "affinity"}[applies]
    clusterd = start_auto(start_clusterd, tmpdir_short, cpus, wrapper=CpuCgroups.enter(own))
    assert_auto_started(clusterd, tmpdir_short, workers, cpus, logged_quota, source)


def test_a_worker_writing_to_clusterds_terminal_with_tostop_is_not_stopped(tmpdir_short):
    # Why a worker gets a session, not only a process group (docs/benchmarks.md): in clusterd's
    # session, a worker's process group would be a background one of the terminal, and with
    # `stty tostop` its first write there would stop it with SIGTTOU, with it the pool.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = ('echo "worker $CLUSTERD_WORKER_ID writes to the terminal"; exec "$@"')
    command = ("stty tostop && RUNTIME_DIRECTORY=%s exec %s --workers 2 --listen 127.0.0.1:%d -- /bin/sh -c %s sh %s %s"
               % (shlex.quote(tmpdir_short), shlex.quote(harness.BIN), port, shlex.quote(script),
                  shlex.quote(PYTHON), shlex.quote(worker("http_worker.py"))))
    terminal = harness.Terminal(tmpdir_short, ["/bin/sh", "-c", command])
    try:
        terminal.wait_for_screen(lambda lines: all(any("worker %d writes to the terminal" % slot in line
                                                       for line in lines) for slot in (0, 1)),
                                 "both workers' lines on the terminal")
        # Both answer once both are ready (connections go to ready workers only).
        pids = wait_until(lambda: (lambda seen: seen if len(seen) == 2 else None)(
            {http_get("127.0.0.1:%d" % port)["pid"] for _ in range(4)}), 10.0, "both workers answering")
        for pid in pids:
            assert harness.proc_stat(pid)["state"] != "T"   # not stopped
        [clusterd] = {harness.proc_stat(pid)["ppid"] for pid in pids}
        os.kill(clusterd, signal.SIGTERM)
        screens, code = terminal.watch_until_exit()
        assert code == 0, screens[-1]
        assert all(harness.pid_gone(pid) for pid in pids)
    finally:
        terminal.close()
