"""user and group: workers run with the configured identity and still serve the listener that clusterd
bound as root; unknown names are configuration errors; a worker of another user dies with clusterd;
a clusterd that is not root runs workers as another user only when it may switch to it and signal
it (CAP_SETUID, CAP_SETGID, CAP_KILL); a worker that cannot start is reported with the step that
failed. Needs root.
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess

import pytest

import harness
from harness import PYTHON, http_get, run_clusterd, toml_string, worker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user/group")

HTTP_WORKER = [PYTHON, worker("http_worker.py")]


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")


def a_group_not_root():
    for name in ("nogroup", "daemon", "users"):
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if group.gr_gid != 0:
            return group
    pytest.skip("no group other than root's to test with")


@pytest.mark.parametrize("how", ["config", "set"])
def test_user_gives_workers_its_ids_and_identity_variables(start_clusterd, tmpdir_short, how):
    user = nobody()
    if how == "config":
        config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
user = "nobody"
command = %s

[[listen]]
address = "127.0.0.1:0"
""" % toml_string(HTTP_WORKER))
        args = ["-c", config]
    else:
        args = ["--workers", "1", "--set", "user=nobody", "--listen", "127.0.0.1:0", "--"] \
            + HTTP_WORKER
    # The workers' directory is clusterd's; start it where nobody may be.
    clusterd = start_clusterd(args, cwd="/")
    address = clusterd.address()
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address)          # served on the socket root bound
    assert reply["pid"] == pid
    assert (reply["uid"], reply["gid"]) == (user.pw_uid, user.pw_gid)
    assert reply["groups"] == sorted(set(os.getgrouplist("nobody", user.pw_gid)))
    env = reply["env"]
    assert (env.get("HOME"), env.get("USER"), env.get("LOGNAME")) == \
        (user.pw_dir, "nobody", "nobody")
    with open("/proc/%d/status" % pid) as f:    # seen from outside too, every uid/gid field
        status = dict(line.split(":", 1) for line in f)
    assert status["Uid"].split() == [str(user.pw_uid)] * 4
    assert status["Gid"].split() == [str(user.pw_gid)] * 4


def test_group_alone_changes_only_the_gid(start_clusterd, tmpdir_short):
    group = a_group_not_root()
    clusterd = start_clusterd(["--workers", "1", "--set", "group=%s" % group.gr_name,
                               "--listen", "127.0.0.1:0", "--"] + HTTP_WORKER, cwd="/")
    address = clusterd.address()
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address)
    assert reply["pid"] == pid
    assert reply["uid"] == os.getuid()
    assert reply["gid"] == group.gr_gid
    # the user's identity is not touched
    for key in ("HOME", "USER", "LOGNAME"):
        assert reply["env"].get(key) == os.environ.get(key)


@pytest.mark.parametrize("key", ["user", "group"])
@pytest.mark.parametrize("how", ["config", "set"])
def test_unknown_user_or_group_exits_2_naming_the_key(tmpdir_short, key, how):
    name = "clusterd-test-no-such-%s" % key
    if how == "config":
        config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 1
%s = %s
command = ["/bin/true"]
""" % (key, toml_string(name)))
        args = ["-c", config]
    else:
        args = ["--workers", "1", "--set", "%s=%s" % (key, name), "--", "/bin/true"]
    code, _, stderr = run_clusterd(args)
    assert code == 2, stderr
    assert name in stderr
    assert re.search(r"\b%s\b" % key, stderr.replace(name, "")), stderr    # the key itself
    if how == "config":
        assert config in stderr                  # names the file too (interface §2.2)


# ---- a privilege-dropped worker dies with clusterd; which step of a spawn failed

SETPRIV = shutil.which("setpriv")
# clusterd itself as nobody (setpriv execs it in place, so the pid is clusterd's), without or with
# capabilities, as systemd's User=nobody with AmbientCapabilities= runs it.
AS_NOBODY = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody_with(*capabilities):
    caps = ",".join("+" + name for name in capabilities)
    return AS_NOBODY + ["--inh-caps=" + caps, "--ambient-caps=" + caps]


AS_NOBODY_WITH_SETID_CAPS = as_nobody_with("setuid", "setgid", "kill")


def another_user(than):
    """A user other than `than` and root for workers to run as, or skip."""
    for name in ("daemon", "bin", "sys"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        if user.pw_uid not in (0, than.pw_uid):
            return user
    pytest.skip("no user other than root and %s to test with" % than.pw_name)


def given_to(user, directory):
    """directory, owned by user and private to it (mode 0700)."""
    os.chown(directory, user.pw_uid, user.pw_gid)
    os.chmod(directory, 0o700)
    return directory


def clusterd_as(who, tmpdir):
    """(the user clusterd runs as, the user its workers run as, wrapper, extra clusterd args) for
    clusterd run as root, or as nobody with CAP_SETUID, CAP_SETGID and CAP_KILL. The latter's
    control socket is in tmpdir, given to nobody."""
    if who == "root":
        return pwd.getpwuid(0), nobody(), (), []
    if not SETPRIV:
        pytest.skip("needs setpriv (util-linux) to run clusterd as nobody")
    control = os.path.join(given_to(nobody(), tmpdir), "c.sock")
    return nobody(), another_user(nobody()), AS_NOBODY_WITH_SETID_CAPS, ["--control", control]


def ids_and_capabilities(pid):
    """The Uid and Gid lines (real, effective, saved, fs) and the CapPrm, CapEff and CapAmb masks."""
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return {"Uid": fields["Uid"].split(), "Gid": fields["Gid"].split(),
            **{key: int(fields[key], 16) for key in ("CapPrm", "CapEff", "CapAmb")}}


def as_plain(user):
    """What ids_and_capabilities says of a process that is just that user."""
    return {"Uid": [str(user.pw_uid)] * 4, "Gid": [str(user.pw_gid)] * 4, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}


@pytest.mark.parametrize("who", ["root", "nobody-with-setid-caps"])
def test_a_worker_running_as_another_user_dies_with_clusterd(start_clusterd, tmpdir_short, who):
    # The parent-death signal is set after setuid(), which would clear it (prctl(2)).
    _, user, wrapper, args = clusterd_as(who, tmpdir_short)
    clusterd = start_clusterd(["--workers", "2", "--set", "user=%s" % user.pw_name, "--listen", "127.0.0.1:0"]
                              + args + ["--"] + HTTP_WORKER, wrapper=wrapper, cwd="/")
    address = clusterd.address()
    pids = clusterd.ready_pids(2)
    answered = set()
    harness.wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(pids), 10.0,
                       "answers from both workers", describe=lambda: str(answered))
    for pid in pids:
        assert ids_and_capabilities(pid) == as_plain(user)

    clusterd.signal(signal.SIGKILL)
    assert clusterd.wait_exit(10.0) == -signal.SIGKILL
    harness.wait_until(lambda: not [pid for pid in pids if harness.pid_alive(pid)], 10.0,
                       "the workers gone with clusterd",
                       describe=lambda: str([pid for pid in pids if harness.pid_alive(pid)]))


def test_a_non_root_clusterd_with_the_capabilities_runs_and_stops_workers_as_the_user(start_clusterd,
                                                                                  tmpdir_short):
    # The start check takes CAP_SETUID/CAP_SETGID for root (configuration.md, "Host checks").
    _, user, wrapper, args = clusterd_as("nobody-with-setid-caps", tmpdir_short)
    clusterd = start_clusterd(["--workers", "1", "--set", "user=%s" % user.pw_name, "--listen", "127.0.0.1:0"]
                              + args + ["--"] + HTTP_WORKER, wrapper=wrapper, cwd="/")
    address = clusterd.address()
    [outcome] = clusterd.wait_for_log(r"worker ready slot=0 .*|worker program cannot be executed .*")
    assert outcome.group(0).startswith("worker ready"), outcome.group(0)
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address)
    assert (reply["pid"], reply["uid"], reply["gid"]) == (pid, user.pw_uid, user.pw_gid)
    # The worker a root clusterd would start: the user's ids, no capability to get others back.
    assert ids_and_capabilities(pid) == as_plain(user)
    clusterd.signal(signal.SIGTERM)                      # its stop signal reaches the other uid
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert clusterd.count(r"worker stopped slot=0 gen=1 pid=%d status=exit:0 " % pid) == 1


@pytest.mark.skipif(not SETPRIV, reason="needs setpriv (util-linux) to run clusterd as nobody")
@pytest.mark.parametrize("capabilities", [(), ("setuid", "setgid")], ids=["none", "setuid-setgid-without-kill"])
def test_a_non_root_clusterd_refuses_a_user_whose_workers_it_could_not_run(tmpdir_short, capabilities):
    user = another_user(nobody())
    os.chmod(tmpdir_short, 0o755)                      # nobody reads the config
    config = harness.write_file(tmpdir_short, "shop.toml", 'workers = 1\nuser = %s\ncommand = ["/bin/sleep", '
                                '"1000"]\n[control]\nsocket = "none"\n' % toml_string(user.pw_name))
    wrapper = as_nobody_with(*capabilities) if capabilities else AS_NOBODY
    try:
        result = subprocess.run(wrapper + [harness.BIN, "-c", config], capture_output=True, text=True,
                                timeout=30, cwd="/", stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as running:
        pytest.fail("clusterd started instead of refusing the user:\n%s"
                    % (running.stderr or b"").decode(errors="replace"))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    prefix = '%s: user: changing to user "%s" needs ' % (config, user.pw_name)
    if not capabilities:
        assert result.stderr == prefix + "root (or CAP_SETUID/CAP_SETGID)\n"
    else:
        # Neither kill(2) nor the parent-death signal would reach the workers' uid.
        assert result.stderr.startswith(prefix) and "CAP_KILL" in result.stderr, result.stderr


@pytest.mark.parametrize("who", ["root", "nobody-with-setid-caps"])
def test_a_worker_its_user_cannot_execute_is_reported_with_the_failed_step(start_clusterd, tmpdir_short, who):
    # The program is in a directory private to clusterd's own user: clusterd may execute it (the
    # host check passes), the worker's user may not.
    owner, user, wrapper, args = clusterd_as(who, tmpdir_short)
    program = harness.write_file(given_to(owner, tmpdir_short), "server", "#!/bin/sh\nexec sleep 1000\n",
                                 mode=0o755)
    os.chown(program, owner.pw_uid, owner.pw_gid)
    clusterd = start_clusterd(["--workers", "1", "--set", "user=%s" % user.pw_name] + args + ["--", program],
                              wrapper=wrapper, cwd="/")
    [failed] = clusterd.wait_for_log(r"(\w+) clusterd\[\d+\]: (worker program cannot be executed .*)$")
    assert failed.group(1) == "error"
    assert re.fullmatch(r'worker program cannot be executed slot=0 gen=1 pid=\d+ status=exec-failed uptime=\S+ '
                        r'program=%s step=exec error="Permission denied" retry_every=30s \(configuration '
                        r'problem: check command, directory and user\)' % re.escape(program), failed.group(2)), \
        failed.group(2)
    # The client runs as clusterd's own user: another user's client does not believe its server
    # (SO_PEERCRED, test_security_client.py).
    client = [] if owner.pw_uid == 0 else AS_NOBODY
    result = subprocess.run(client + [harness.BIN, "status", "--json", "--control", clusterd.control_path()],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    [slot] = json.loads(result.stdout)["workers"]
    assert (slot["pid"], slot["state"], slot["last_exit"]) == (None, "backoff", {"exec_error": "Permission denied"})
