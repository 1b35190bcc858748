"""Files another user could change (issue 13, attacks 2 and 3), run as root with the attacker's steps
run as `nobody` (setpriv):

- the config file chooses the commands clusterd runs: as long as a user other than root could
  change it (its mode, its owner, a directory on its path), a start, a reload and `check` are
  refused with the chmod/chown that mends it, and a refused reload keeps the workers serving;
- log.file is opened without following a link, in a directory only root may write: with the log
  directory open to `nobody`, a link planted at the log's name between two rotations does not make
  a SIGUSR1 (logrotate's postrotate) append to the file it points at; clusterd keeps writing to
  its old file, says why, and keeps serving. Such a directory is refused at start.

Needs root: the attacks are root's to defend against (docs/configuration.md, "Who may change the
config file", and "[log]").
"""
import os
import pwd
import re
import shutil
import signal
import subprocess

import pytest

import harness
from harness import PYTHON, http_get, run_clusterd, toml_string, wait_until, worker

SETPRIV = shutil.which("setpriv")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV,
                                reason="needs root, and setpriv to act as nobody")

NOBODY = 65534
AS_NOBODY = [SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
HTTP_WORKER = [PYTHON, worker("http_worker.py")]


def as_nobody(script):
    """Runs a shell script as nobody (the attacker); returns (exit status, stderr)."""
    result = subprocess.run(AS_NOBODY + ["/bin/sh", "-c", script], capture_output=True, text=True,
                            timeout=30, cwd="/")
    return result.returncode, result.stderr


def nobody_writes(path, text):
    """nobody overwrites the file at path in place (its mode lets them)."""
    code, err = as_nobody("printf '%%s' %s > %s" % (shell_quote(text), shell_quote(path)))
    assert code == 0, "nobody could not write %s: %s" % (path, err)


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def marker_command(marker):
    """A command that proves it ran (as whom) by writing `marker`, then idles as a worker."""
    return ["/bin/sh", "-c", "id -u > %s; exec sleep 1000" % marker]


def marker_program(marker):
    """A command that proves it ran (as whom) by writing `marker`, then exits."""
    return ["/bin/sh", "-c", "id -u > %s" % marker]


def opened_to_nobody(directory):
    """The test's root-owned temp dir, opened for nobody to enter (mode 0755): still trusted."""
    os.chmod(directory, 0o755)
    return directory


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


# ---- the config file: a start and `check`


@pytest.mark.parametrize("how", ["file-mode-0666", "file-owned-by-nobody", "directory-owned-by-nobody"])
def test_a_config_file_another_user_may_change_is_refused_at_start_and_by_check(tmpdir_short, how):
    base = opened_to_nobody(tmpdir_short)
    etc = os.path.join(base, "etc")
    os.mkdir(etc, 0o755)
    config = harness.write_file(etc, "shop.toml", 'command = ["/bin/true"]\n[restart]\npolicy = "never"\n')
    marker = os.path.join(base, "ran-as")
    if how == "file-mode-0666":
        os.chmod(config, 0o666)
        problem, fix = "%s (mode 0666) is writable by its group and by others" % config, "chmod go-w %s" % config
    elif how == "file-owned-by-nobody":
        os.chown(config, NOBODY, NOBODY)
        problem, fix = "%s is owned by uid %d" % (config, NOBODY), "chown root %s" % config
    else:
        os.chown(etc, NOBODY, NOBODY)
        problem, fix = "%s is owned by uid %d" % (etc, NOBODY), "chown root %s" % etc
    # The attacker chooses the command root will run (in place, or by a file of their own).
    attack = 'command = %s\n[restart]\npolicy = "never"\n' % toml_string(marker_program(marker))
    if how == "directory-owned-by-nobody":
        code, err = as_nobody("printf '%%s' %s > %s/new && mv -f %s/new %s" % (
            shell_quote(attack), etc, etc, config))
        assert code == 0, err
    else:
        nobody_writes(config, attack)

    for args in (["-c", config], ["check", "-c", config]):
        code, out, err = run_clusterd(args, cwd="/")
        assert not os.path.exists(marker), "the attacker's command ran as uid %s" % read(marker)
        assert code == 2, (args, code, out, err)
        [line] = err.splitlines()
        assert line.startswith("%s: config file refused: " % config), line
        assert problem in line and fix in line, line


def test_a_symbolic_link_to_the_config_file_is_followed_when_root_owns_both(tmpdir_short):
    # /etc/clusterd/clusterd.toml -> /srv/shop/shop.toml is an ordinary deployment: allowed.
    base = opened_to_nobody(tmpdir_short)
    config = harness.write_file(base, "real.toml", 'command = ["/bin/true"]\nname = "linked"\n')
    link = os.path.join(base, "clusterd.toml")
    os.symlink(config, link)
    code, out, err = run_clusterd(["check", "-c", link], cwd="/")
    assert (code, err) == (0, ""), err
    assert 'name = "linked"' in out
    # ...and where it leads is judged: the target open to others is refused by its own name.
    os.chmod(config, 0o646)
    code, out, err = run_clusterd(["check", "-c", link], cwd="/")
    assert code == 2
    assert err == "%s: config file refused: %s (mode 0646) is writable by others, who could change it " \
                  "(chmod go-w %s)\n" % (link, config, config)


# ---- the config file: a reload of a running pool


def start_pool(start_clusterd, base, config):
    clusterd = start_clusterd(["-c", config, "--control", os.path.join(base, "c.sock")], tmpdir=base, cwd="/")
    address = clusterd.address()
    [pid] = clusterd.ready_pids(1)
    assert http_get(address)["pid"] == pid
    return clusterd, address, pid


@pytest.mark.parametrize("how", ["file-made-writable", "directory-made-writable"])
def test_a_reload_from_a_config_file_nobody_changed_is_refused_and_the_workers_keep_serving(
        start_clusterd, tmpdir_short, how):
    base = opened_to_nobody(tmpdir_short)
    etc = os.path.join(base, "etc")
    os.mkdir(etc, 0o755)
    good = 'name = "shop"\nworkers = 1\ncommand = %s\n[[listen]]\naddress = "127.0.0.1:0"\n' % toml_string(HTTP_WORKER)
    config = harness.write_file(etc, "shop.toml", good)
    clusterd, address, pid = start_pool(start_clusterd, base, config)

    marker = os.path.join(base, "ran-as")
    attack = good.replace(toml_string(HTTP_WORKER), toml_string(marker_command(marker)))
    if how == "file-made-writable":
        os.chmod(config, 0o666)                     # the operator's mistake...
        nobody_writes(config, attack)               # ...and nobody's edit
        problem = "%s (mode 0666) is writable by its group and by others, who could change it (chmod go-w %s)" \
            % (config, config)
    else:
        os.chmod(etc, 0o777)
        code, err = as_nobody("printf '%%s' %s > %s/new && mv -f %s/new %s" % (
            shell_quote(attack), etc, etc, config))
        assert code == 0, err
        problem = "config file directory %s: %s (mode 0777) is writable by its group and by others" % (etc, etc)

    code, out, err = clusterd.control("reload")
    assert not os.path.exists(marker), "the attacker's command ran as uid %s" % read(marker)
    assert (code, out) == (1, ""), (code, out, err)
    assert "reload refused: " in err and "%s: config file refused: " % config in err, err
    assert problem in err, err
    assert clusterd.count(r"reload refused: %s: config file refused: " % re.escape(config)) == 1
    assert clusterd.count(r"reload refused: the configuration has 1 problem\(s\); the running workers keep "
                          r"serving$") == 1
    # SIGHUP (systemctl reload) is refused the same way.
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload refused: the configuration has 1 problem\(s\)", count=2)
    assert not os.path.exists(marker)
    status = clusterd.status()
    assert status["generation"] == 1
    assert [w["pid"] for w in status["workers"]] == [pid]
    assert http_get(address)["pid"] == pid


# ---- log.file


def start_logging_to(start_clusterd, base, log_file, *args):
    """A pool that logs to log_file; the harness reads its log there."""
    clusterd = start_clusterd(["--workers", "1", "--log-file", log_file,
                               "--control", os.path.join(base, "c.sock"), *args, "--", "/bin/sleep", "1000"],
                              tmpdir=base, cwd="/")
    wait_until(lambda: os.path.exists(log_file), 10.0, "clusterd to create " + log_file,
               describe=clusterd.log_tail)
    clusterd.log_path = log_file    # harness helpers (ready_pids, control, status) read it there
    clusterd.ready_pids(1)
    return clusterd


def test_a_link_nobody_plants_at_the_log_name_is_not_followed_on_sigusr1(start_clusterd, tmpdir_short):
    base = opened_to_nobody(tmpdir_short)
    logs = os.path.join(base, "logs")
    os.mkdir(logs, 0o755)
    log_file = os.path.join(logs, "clusterd.log")
    victim = harness.write_file(base, "victim", "root's file\n")
    clusterd = start_logging_to(start_clusterd, base, log_file)
    [pid] = [w["pid"] for w in clusterd.status()["workers"]]

    os.chmod(logs, 0o777)                           # the log directory is opened up to nobody
    rotated = log_file + ".1"
    os.rename(log_file, rotated)                    # logrotate moves the file...
    clusterd.log_path = rotated
    code, err = as_nobody("ln -s %s %s" % (victim, log_file))   # ...nobody plants a link...
    assert code == 0, err
    clusterd.signal(signal.SIGUSR1)                 # ...and logrotate's postrotate signals
    # The signalfd hands out SIGUSR1 (10) before SIGTTIN (21): once the scale is logged (in one
    # file or the other), the reopen has been done or refused.
    clusterd.signal(signal.SIGTTIN)
    wait_until(lambda: "scaling workers=2" in read(rotated) + read(victim), 10.0, "the scale logged",
               describe=clusterd.log_tail)

    assert read(victim) == "root's file\n"
    assert os.readlink(log_file) == victim
    [line] = [line for line in clusterd.log().splitlines() if "cannot reopen log file" in line]
    assert harness.log_level(line) == "error"
    refused = re.search(r"cannot reopen log file path=(\S+) error=\"(.*)\"; still writing to the old file$", line)
    assert refused, line
    assert refused.group(1) == log_file
    assert refused.group(2) == ('cannot open "%s" for appending: log.file directory %s: %s (mode 0777) is '
                                "writable by its group and by others, who could swap a file in it for a link "
                                "to another (chmod go-w %s)" % (log_file, logs, logs, logs))
    # Still logging, still serving.
    clusterd.ready_pids(2)
    status = clusterd.status()
    assert status["workers_ready"] == 2 and pid in [w["pid"] for w in status["workers"]]
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert read(victim) == "root's file\n"
    assert read(rotated).splitlines()[-1].endswith("stopped code=0")


@pytest.mark.parametrize("how", ["mode-0777", "owned-by-nobody", "sticky-1777"])
def test_a_log_directory_another_user_may_write_is_refused_at_start(tmpdir_short, how):
    base = opened_to_nobody(tmpdir_short)
    logs = os.path.join(base, "logs")
    os.mkdir(logs, 0o755)
    if how == "mode-0777":
        os.chmod(logs, 0o777)
        problem = "%s (mode 0777) is writable by its group and by others" % logs
    elif how == "owned-by-nobody":
        os.chown(logs, NOBODY, NOBODY)
        problem = "%s is owned by uid %d" % (logs, NOBODY)
    else:
        os.chmod(logs, 0o1777)                      # as /tmp: anyone could create the name first
        problem = "%s (mode 1777) may be written by its group and by others" % logs
    log_file = os.path.join(logs, "clusterd.log")
    marker = os.path.join(base, "ran-as")
    for args in ([], ["check"]):
        code, out, err = run_clusterd(args + ["--log-file", log_file, "--set", "restart.policy=never", "--"]
                                      + marker_program(marker), cwd="/")
        assert not os.path.exists(marker), "started although the log directory is %s" % how
        assert code == 2, (args, code, out, err)
        [line] = err.splitlines()
        assert line.startswith('--log-file: log.file: cannot open "%s" for appending: log.file directory %s: '
                               % (log_file, logs)), line
        assert problem in line, line
    assert not os.path.lexists(log_file)


def test_a_hard_link_nobody_makes_to_roots_file_is_stopped_by_the_kernel_or_refused(start_clusterd,
                                                                                   tmpdir_short):
    # With fs.protected_hardlinks = 1 (the default) the kernel itself refuses nobody a link to a
    # file they may not write; log_file_test covers clusterd's own check (one link only). With 0,
    # the link is made and clusterd must still refuse it.
    base = opened_to_nobody(tmpdir_short)
    logs = os.path.join(base, "logs")
    os.mkdir(logs, 0o755)
    log_file = os.path.join(logs, "clusterd.log")
    victim = harness.write_file(base, "victim", "root's file\n")
    clusterd = start_logging_to(start_clusterd, base, log_file)
    os.chmod(logs, 0o777)
    rotated = log_file + ".1"
    os.rename(log_file, rotated)
    clusterd.log_path = rotated
    code, err = as_nobody("ln %s %s" % (victim, log_file))
    with open("/proc/sys/fs/protected_hardlinks") as f:
        protected = f.read().strip() == "1"
    if protected:
        assert code != 0 and "Operation not permitted" in err, (code, err)
        assert not os.path.lexists(log_file)
        return
    assert code == 0, err
    clusterd.signal(signal.SIGUSR1)
    clusterd.signal(signal.SIGTTIN)
    wait_until(lambda: "scaling workers=2" in read(rotated) + read(victim), 10.0, "the scale logged",
               describe=clusterd.log_tail)
    assert read(victim) == "root's file\n"
    assert clusterd.count(r"cannot reopen log file path=%s " % re.escape(log_file)) == 1
