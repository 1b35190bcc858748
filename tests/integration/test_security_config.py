"""Quieter leaks of a root clusterd (issue #13, item 8), against the real binary as root:
`group` without `user` is warned about (workers stay uid 0); `inherit_env` keeps clusterd's
secrets from the workers while the default passes everything; relative paths of the config file
are taken from the file's directory, not from clusterd's working directory (`/` under systemd);
a worker of another user that would inherit clusterd's stdout/stderr file is warned about.
"""
import grp
import os
import pwd
import re
import signal
import stat
import subprocess

import pytest

import harness
from harness import BIN, run_clusterd, toml_string, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the warnings are about a root clusterd")

SLEEPER = ["/bin/sleep", "1000"]


def a_group_not_root():
    for name in ("nogroup", "daemon", "users"):
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if group.gr_gid != 0:
            return group
    pytest.fail("no group other than root's to test with")


def proc_ids(pid):
    """(Uid, Gid, CapEff) lines of /proc/PID/status, split."""
    with open("/proc/%d/status" % pid) as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return status["Uid"].split(), status["Gid"].split(), status["CapEff"]


def proc_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        entries = [e.decode(errors="replace") for e in f.read().split(b"\0") if e]
    return dict(e.split("=", 1) for e in entries if "=" in e)


def check_with_stdio_file(args, tmpdir, cwd=None):
    """`clusterd check ARGS` with stdout and stderr on regular files, as a start under
    `clusterd ... >>file 2>&1` would have them. Returns (code, stdout, stderr)."""
    out_path, err_path = os.path.join(tmpdir, "check.out"), os.path.join(tmpdir, "check.err")
    env = dict(os.environ, RUNTIME_DIRECTORY=tmpdir)
    env.pop("NOTIFY_SOCKET", None)
    with open(out_path, "w") as out, open(err_path, "w") as err:
        code = subprocess.run([BIN, "check"] + list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              cwd=cwd, env=env, timeout=15).returncode
    with open(out_path) as out, open(err_path) as err:
        return code, out.read(), err.read()


# ---- (a) group without user

GROUP_ALONE = re.compile(r"group: workers run as root \(uid 0, every capability\): group without user changes "
                         r"only the gid; set user as well, for example user = \"nobody\"")


def test_group_without_user_is_warned_about_at_check_start_and_reload(start_clusterd, tmpdir_short):
    group = a_group_not_root()
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
group = %s
command = %s
""" % (toml_string(group.gr_name), toml_string(SLEEPER)))

    code, out, err = run_clusterd(["check", "-c", config])
    assert code == 0, err
    assert re.search(r"^clusterd: warning: %s:3:9: " % re.escape(config) + GROUP_ALONE.pattern, err, re.M), err

    clusterd = start_clusterd(["-c", config], cwd="/")
    [pid] = clusterd.ready_pids(1)
    clusterd.wait_for_log(r" warn .*%s:3:9: " % re.escape(config) + GROUP_ALONE.pattern)
    # What the warning says is true: the worker is root with every capability, only its gid changed.
    uids, gids, cap_eff = proc_ids(pid)
    assert uids == ["0"] * 4
    assert gids == [str(group.gr_gid)] * 4
    assert int(cap_eff, 16) != 0

    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload: .*" + GROUP_ALONE.pattern)


def test_group_with_user_is_no_warning(start_clusterd, tmpdir_short):
    group = a_group_not_root()
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
user = "nobody"
group = %s
output = "prefix"
command = %s
""" % (toml_string(group.gr_name), toml_string(SLEEPER)))
    code, out, err = run_clusterd(["check", "-c", config])
    assert code == 0 and "warning" not in err, err


# ---- (b) inherit_env

def test_inherit_env_list_keeps_secrets_from_workers_and_reloads(start_clusterd, tmpdir_short):
    config_text = """
workers = 1
inherit_env = %s
command = %s
[env]
APP_ENV = "test"
"""
    config = harness.write_file(tmpdir_short, "clusterd.toml",
                                config_text % ('["KEEP_ME", "PATH"]', toml_string(SLEEPER)))
    clusterd = start_clusterd(["-c", config], env={"DB_PASSWORD": "s3cret", "KEEP_ME": "kept"})
    [pid] = clusterd.ready_pids(1)
    env = proc_environ(pid)
    assert "DB_PASSWORD" not in env, env
    assert env["KEEP_ME"] == "kept" and env["PATH"] == os.environ["PATH"]
    assert env["APP_ENV"] == "test" and env["CLUSTERD_WORKER_ID"] == "0"
    # NOTIFY_SOCKET is the worker's own (ready.mode = "auto"), set whatever inherit_env says.
    assert set(env) == {"KEEP_ME", "PATH", "APP_ENV", "CLUSTERD_WORKER_ID", "CLUSTERD_WORKERS",
                        "CLUSTERD_GENERATION", "NOTIFY_SOCKET"}, env

    # Reloadable: the next generation gets the new list.
    harness.write_file(tmpdir_short, "clusterd.toml", config_text % ("false", toml_string(SLEEPER)))
    clusterd.signal(signal.SIGHUP)
    m = clusterd.wait_for_log(r"worker ready slot=0 gen=2 pid=(\d+)")[0]
    new_pid = int(m.group(1))
    clusterd.seen_pids.add(new_pid)
    env = proc_environ(new_pid)
    assert set(env) == {"APP_ENV", "CLUSTERD_WORKER_ID", "CLUSTERD_WORKERS", "CLUSTERD_GENERATION",
                        "NOTIFY_SOCKET"}, env


def test_default_passes_the_whole_environment(start_clusterd):
    # The documented default (inherit_env = true): what clusterd has, its workers get.
    clusterd = start_clusterd(["-w", "1", "--"] + SLEEPER, env={"DB_PASSWORD": "s3cret"})
    [pid] = clusterd.ready_pids(1)
    assert proc_environ(pid)["DB_PASSWORD"] == "s3cret"


# ---- (c) relative paths

def test_relative_paths_are_taken_from_the_config_files_directory(start_clusterd, tmpdir_short):
    for sub in ("data", "sock", "logs"):
        os.mkdir(os.path.join(tmpdir_short, sub), 0o755)
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
directory = "data"
command = %s
[[listen]]
name = "app"
address = "unix:sock/app.sock"
[ready]
mode = "exec"  # the sleeper never waits on its socket
[log]
file = "logs/c.log"
""" % toml_string(SLEEPER))
    data = os.path.join(tmpdir_short, "data")
    sock = os.path.join(tmpdir_short, "sock", "app.sock")
    log = os.path.join(tmpdir_short, "logs", "c.log")

    # check, run from /, judges and prints the absolute paths.
    code, out, err = run_clusterd(["check", "-c", config], cwd="/")
    assert code == 0, err
    assert 'directory = %s' % toml_string(data) in out
    assert 'address = %s' % toml_string("unix:" + sock) in out
    assert 'file = %s' % toml_string(log) in out

    clusterd = start_clusterd(["-c", config], cwd="/", tmpdir=tmpdir_short)

    def log_text():
        try:
            with open(log) as f:
                return f.read()
        except FileNotFoundError:
            return ""
    ready = wait_until(lambda: re.search(r"worker ready slot=0 gen=1 pid=(\d+)", log_text()), 10,
                       "worker ready in " + log, describe=lambda: log_text() + clusterd.log_tail())
    pid = int(ready.group(1))
    clusterd.seen_pids.add(pid)
    assert "listening name=app address=unix:%s " % sock in log_text()
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert os.readlink("/proc/%d/cwd" % pid) == data
    # The control socket's path is in the log file, not in the harness's stderr log.
    control = re.search(r"control socket path=(\S+)", log_text()).group(1)
    code, out, err = clusterd.control("status", "--json", "--control", control)
    assert code == 0, err
    assert '"unix:%s"' % sock in out, out

    # A reload reads the file by the same rule and changes nothing.
    clusterd.signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"worker ready slot=0 gen=2 pid=(\d+)", log_text()), 10, "gen 2 ready",
               describe=log_text)
    assert "reload refused" not in log_text()


def test_relative_flag_paths_are_taken_from_the_working_directory(tmpdir_short):
    os.mkdir(os.path.join(tmpdir_short, "work"), 0o755)
    code, out, err = run_clusterd(["check", "--set", "directory=work", "--log-file", "c.log",
                                   "--listen", "unix:a.sock", "--"] + SLEEPER, cwd=tmpdir_short)
    assert code == 0, err
    assert 'directory = %s' % toml_string(os.path.join(tmpdir_short, "work")) in out
    assert 'file = %s' % toml_string(os.path.join(tmpdir_short, "c.log")) in out
    assert 'address = %s' % toml_string("unix:" + os.path.join(tmpdir_short, "a.sock")) in out


# ---- (d) a worker of another user inheriting clusterd's output file

OUTPUT_SHARED = (r"output: workers run as user \"nobody\" and inherit clusterd's (stdout \(%s\) and )?stderr "
                 r"\(%s\) open for writing \(output = \"inherit\"\), so they can truncate or overwrite it; set "
                 r"output = \"prefix\", or give clusterd a pipe or the journal as stdout and stderr rather than "
                 r"a file \(log.file moves only clusterd's own log\)")


def test_output_file_inherited_by_another_user_is_warned_about(start_clusterd, tmpdir_short):
    pwd.getpwnam("nobody")
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
user = "nobody"
command = %s
""" % toml_string(SLEEPER))
    clusterd = start_clusterd(["-c", config], cwd="/")
    clusterd.ready_pids(1)
    # The harness gives clusterd a regular file as stdout and as stderr.
    pattern = OUTPUT_SHARED % (re.escape(clusterd.stdout_path), re.escape(clusterd.log_path))
    clusterd.wait_for_log(r" warn .*%s:3:8: " % re.escape(config) + pattern)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload: .*" + pattern)

    out_path, err_path = os.path.join(tmpdir_short, "check.out"), os.path.join(tmpdir_short, "check.err")
    code, out, err = check_with_stdio_file(["-c", config], tmpdir_short, cwd="/")
    assert code == 0, err
    assert re.search(r"^clusterd: warning: %s:3:8: " % re.escape(config) +
                     OUTPUT_SHARED % (re.escape(out_path), re.escape(err_path)), err, re.M), err


def test_no_output_warning_with_prefix_or_pipes(tmpdir_short):
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
user = "nobody"
output = "prefix"
command = %s
""" % toml_string(SLEEPER))
    code, out, err = check_with_stdio_file(["-c", config], tmpdir_short)
    assert code == 0 and "warning" not in err, err
    # run_clusterd gives pipes: nothing a worker could truncate.
    code, out, err = run_clusterd(["check", "--set", "user=nobody", "--"] + SLEEPER)
    assert code == 0 and "warning" not in err, err
