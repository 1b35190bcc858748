"""user and group: workers run with the configured identity and still serve the listener that clusterd
bound as root; unknown names are configuration errors. Needs root.
"""
import grp
import os
import pwd
import re

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
