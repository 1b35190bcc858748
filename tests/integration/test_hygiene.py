"""What a worker gets and nothing more: its fds, its environment, its own process group and session,
expanded argv, /dev/null stdin; orphans are reaped; `--workers auto` counts usable CPUs.
"""
import math
import os
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
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--"]
                              + report_worker(tmpdir_short))
    reports = wait_for_reports(tmpdir_short, 2, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    clusterd.ready_pids(2)
    # Asleep in its event loop once it has handled the workers' start.
    wait_until(lambda: harness.proc_stat(clusterd.pid)["state"] == "S", 10.0, "clusterd asleep")
    before = voluntary_context_switches(clusterd.pid)
    started = time.monotonic()
    # A measurement window, not synchronisation.
    wait_until(lambda: time.monotonic() - started >= 1.5, 10.0, "1.5 s idle")
    assert voluntary_context_switches(clusterd.pid) == before


def expected_auto_workers():
    """Usable CPUs as interface §1 defines them: the affinity mask, capped by the cgroup CPU quota
    (v2 cpu.max or v1 cfs_quota_us/cfs_period_us, along the cgroup's path) rounded up, at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quotas = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":   # v2
                base = "/sys/fs/cgroup"
                if not os.path.exists(os.path.join(base, "cgroup.controllers")):
                    base = "/sys/fs/cgroup/unified"
                for part in ancestors(path):
                    quota = read_v2_quota(os.path.join(base, part.lstrip("/"), "cpu.max"))
                    if quota:
                        quotas.append(quota)
            elif "cpu" in controllers.split(","):
                for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
                    if os.path.isdir(base):
                        for part in ancestors(path):
                            quota = read_v1_quota(os.path.join(base, part.lstrip("/")))
                            if quota:
                                quotas.append(quota)
                        break
    if quotas:
        cpus = min(cpus, math.ceil(min(quotas)))
    return max(cpus, 1)


def ancestors(path):
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def read_v2_quota(path):
    try:
        with open(path) as f:
            quota, period = f.read().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def read_v1_quota(directory):
    try:
        with open(os.path.join(directory, "cpu.cfs_quota_us")) as f:
            quota = int(f.read())
        with open(os.path.join(directory, "cpu.cfs_period_us")) as f:
            period = int(f.read())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else quota / period


def test_workers_auto_starts_one_worker_per_usable_cpu(start_clusterd, tmpdir_short):
    expected = expected_auto_workers()
    clusterd = start_clusterd(["--workers", "auto", "--"] + report_worker(tmpdir_short))
    started = clusterd.wait_for_log(r"started name=\S+ pid=\d+ workers=(\d+) ")[0]
    assert int(started.group(1)) == expected
    reports = wait_for_reports(tmpdir_short, expected, describe=clusterd.log_tail)
    clusterd.seen_pids.update(reports)
    assert sorted(int(r["slot"]) for r in reports.values()) == list(range(expected))
    assert all(r["workers"] == str(expected) for r in reports.values())
    assert len(clusterd.ready_pids(expected)) == expected


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not shutil.which("taskset"),
                    reason="needs 2 CPUs and taskset")
def test_workers_auto_follows_the_affinity_mask(start_clusterd, tmpdir_short):
    clusterd = start_clusterd(["--workers", "auto", "--"] + report_worker(tmpdir_short),
                              wrapper=[shutil.which("taskset"), "-c", str(min(os.sched_getaffinity(0)))])
    started = clusterd.wait_for_log(r"started name=\S+ pid=\d+ workers=(\d+) ")[0]
    assert started.group(1) == "1"
    [report] = wait_for_reports(tmpdir_short, 1, describe=clusterd.log_tail).values()
    clusterd.seen_pids.add(report["pid"])
    assert report["workers"] == "1"
