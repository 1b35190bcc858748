"""The shipped systemd unit's sandbox (packaging/systemd/clusterd.service): its exposure score as
`systemd-analyze security --offline=yes` rates it, every hardening line documented in
docs/install.md ("The unit's sandbox"), and clusterd really working inside it, with workers of
another user, a port below 1024, readiness, reload and stop.

systemd is not PID 1 where the tests run (a container, CI), so the sandbox is rebuilt around the
real binary: unit_sandbox.py applies the unit's capability bounding set, NoNewPrivileges=, UMask=,
SystemCallFilter= with SystemCallErrorNumber= and RestrictAddressFamilies=; the wrapper adds a
mount namespace with /proc mounted as ProtectProc=invisible mounts it (hidepid=invisible) and a
network namespace of its own, where port 80 is free; /run/clusterd is an empty tmpfs there
(harness.private_runtime_wrapper), so the test never touches the machine's. The rest of the unit
(ProtectSystem=, PrivateTmp=, ...) restricts what the workers may reach, not what clusterd needs,
and is left to systemd. Needs root (setpriv, unshare, mount).

Before this test the unit scored 9.6 "UNSAFE".
"""
import json
import os
import re
import shutil
import subprocess

import pytest

import harness
from harness import PYTHON, toml_string, worker

UNIT = os.path.join(harness.SOURCE_DIR, "packaging", "systemd", "clusterd.service")
INSTALL_DOC = os.path.join(harness.SOURCE_DIR, "docs", "install.md")
SANDBOX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unit_sandbox.py")
NODE = "/usr/bin/node"

# The exposure `systemd-analyze security --offline=yes` (systemd 252) gives the unit: 2.8 "OK".
# A change that opens the sandbox further must raise this on purpose, and say why in the docs:
# 2.6 → 2.8 for Delegate=yes and ProtectControlGroups=no, a cgroup per worker (issue 18).
MAX_EXPOSURE = 2.8

# What issue #13 asks the unit to close, at least.
REQUIRED = {"CapabilityBoundingSet", "ProtectSystem", "ProtectHome", "RestrictAddressFamilies",
            "SystemCallFilter", "PrivateTmp"}

# The wrapper around unit_sandbox.py, run by unshare in a mount namespace and a network namespace
# of its own: it brings the loopback up (SIOCSIFFLAGS: IFF_UP|IFF_RUNNING), where port 80 is free
# whatever else runs on this machine, and mounts /proc the way ProtectProc=invisible does. Each step
# execs the next, so the pid stays clusterd's.
_NAMESPACES = """
import fcntl, os, socket, struct, subprocess, sys
with socket.socket() as s:
    fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", 0x1 | 0x40))
subprocess.run(["mount", "-t", "proc", "-o", "hidepid=invisible,nosuid,nodev,noexec", "proc", "/proc"],
               check=True)
os.execvp(sys.argv[1], sys.argv[1:])
"""


def need(program, package):
    path = shutil.which(program)
    assert path, "%s not found: install the Debian package %s (tools/dev does)" % (program, package)
    return path


def hardening_lines():
    """The unit's lines after its "# ---- Hardening" comment, as KEY=VALUE strings."""
    with open(UNIT) as f:
        text = f.read()
    assert "# ---- Hardening" in text, "%s has no hardening section" % UNIT
    section = text.split("# ---- Hardening", 1)[1].split("\n", 1)[1].split("\n[", 1)[0]
    return [line.strip() for line in section.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def unit_keys():
    with open(UNIT) as f:
        return {line.split("=", 1)[0].strip() for line in f
                if "=" in line and not line.lstrip().startswith(("#", ";"))}


def sandbox_section():
    with open(INSTALL_DOC) as f:
        text = f.read()
    assert "\n## The unit's sandbox\n" in text, "%s has no section \"The unit's sandbox\"" % INSTALL_DOC
    return text.split("\n## The unit's sandbox\n", 1)[1].split("\n## ", 1)[0]


def capability_mask(names):
    """CAP_* names → the hex mask /proc/PID/status shows (CapBnd:)."""
    numbers = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
               "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
               "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21}
    return "%016x" % sum(1 << numbers[name] for name in names)


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return {key: value.strip() for key, value in (line.split(":", 1) for line in f)}


def wrapper():
    need("setpriv", "util-linux")
    need("systemd-analyze", "systemd")
    return ["unshare", "--net", "--mount", "--propagation", "private", PYTHON, "-c", _NAMESPACES,
            PYTHON, SANDBOX, UNIT, "--"]


def in_namespaces(clusterd, command):
    """Runs `command` in clusterd's network and mount namespaces (its /proc); returns the result."""
    return subprocess.run(["nsenter", "--net", "--mount", "--target", str(clusterd.pid), "--"] + command,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def get_inside(clusterd, port):
    """GET / on 127.0.0.1:PORT from inside clusterd's network namespace: the JSON reply."""
    script = ("import http.client, sys\n"
              "c = http.client.HTTPConnection('127.0.0.1', %d, timeout=5)\n"
              "c.request('GET', '/')\n"
              "sys.stdout.write(c.getresponse().read().decode())\n" % port)
    result = in_namespaces(clusterd, [PYTHON, "-c", script])
    assert result.returncode == 0, result.stderr + clusterd.log_tail()
    return json.loads(result.stdout)


def expected_bounding_set():
    [line] = [l for l in hardening_lines() if l.startswith("CapabilityBoundingSet=")]
    return capability_mask(line.split("=", 1)[1].split())


def assert_sandboxed(pid, uid):
    status = proc_status(pid)
    assert status["Uid"].split() == [str(uid)] * 4, status["Uid"]
    assert status["CapBnd"] == expected_bounding_set(), status["CapBnd"]
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"                 # a filter is in force
    assert status["Umask"] == "0077"
    if uid != 0:
        assert status["CapEff"] == status["CapPrm"] == "0" * 16   # a worker of a user has none
    return status


# ---- the score and the docs

def test_unit_exposure_is_at_most_the_measured_score():
    analyze = need("systemd-analyze", "systemd")
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager",
                             "--threshold=%d" % round(MAX_EXPOSURE * 10), UNIT],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    m = re.search(r"Overall exposure level for clusterd\.service: (\d+\.\d)", result.stdout)
    assert m, result.stdout + result.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hardening_line_is_documented_and_every_documented_line_is_in_the_unit():
    lines = hardening_lines()
    assert REQUIRED <= {line.split("=", 1)[0] for line in lines}, lines
    assert len(lines) == len(set(lines)), "a hardening line repeated in %s" % UNIT
    section = sandbox_section()
    documented = re.findall(r"^\| `([A-Za-z]+=[^`]*)` \|", section, re.M)
    assert sorted(documented) == sorted(lines), (
        "docs/install.md \"The unit's sandbox\" and the unit's hardening lines differ:\n"
        "only in the docs: %s\nonly in the unit: %s"
        % (sorted(set(documented) - set(lines)), sorted(set(lines) - set(documented))))
    # What stays open on purpose ("Not in the unit, on purpose: `User=` ..."): not in the unit.
    m = re.search(r"Not in the unit, on purpose:(.*?)(?:\n\n|\Z)", section, re.S)
    assert m, section
    left_open = set(re.findall(r"`([A-Za-z]+)=`", m.group(1)))
    assert {"User", "PrivateNetwork", "PrivateUsers"} <= left_open, left_open
    assert not left_open & unit_keys(), left_open & unit_keys()
    # Group root is what lets clusterd see its workers under ProtectProc=invisible.
    assert "Group" not in unit_keys()


# ---- clusterd inside the sandbox

# The sanitizer build's leak check stops the process with ptrace, which the unit's system-call
# filter refuses (as it refuses it to any service); every other test checks for leaks.
NO_LEAK_CHECK = {"ASAN_OPTIONS": "detect_leaks=0"}

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setpriv, unshare and mount")
def test_clusterd_runs_workers_of_another_user_on_port_80_inside_the_units_sandbox(start_clusterd,
                                                                                    tmpdir_short):
    nobody = 65534
    config = harness.write_file(tmpdir_short, "clusterd.toml", """
workers = 2
user = "nobody"
command = %s

[ready]
mode = "notify"

[stop]
grace = "10s"

[[listen]]
name = "http"
address = "127.0.0.1:80"
""" % toml_string([PYTHON, worker("notify_worker.py")]))
    # $RUNTIME_DIRECTORY as the unit makes it: root's, mode 0700 (RuntimeDirectoryMode=). Workers
    # of another user cannot pass through it, so their notify sockets go to /tmp (the service's
    # own under PrivateTmp=).
    os.chmod(tmpdir_short, 0o700)
    env = dict(NO_LEAK_CHECK, RUNTIME_DIRECTORY=tmpdir_short)

    # ExecStartPre=: `clusterd check` passes inside the sandbox (it may switch to nobody).
    check = subprocess.run(harness.private_runtime_wrapper() + wrapper() + [harness.BIN, "check", "-c", config],
                           capture_output=True, text=True, timeout=30, env=dict(os.environ, **env),
                           stdin=subprocess.DEVNULL)
    assert check.returncode == 0, check.stderr

    clusterd = start_clusterd(["-c", config], wrapper=wrapper(), private_runtime=True, cwd="/", env=env)
    assert clusterd.address("http") == "127.0.0.1:80", clusterd.log_tail()    # NET_BIND_SERVICE
    first = clusterd.ready_pids(2, timeout=15.0)                               # SETUID, SETGID, CHOWN
    assert_sandboxed(clusterd.pid, 0)
    for pid in first:
        assert_sandboxed(pid, nobody)
    reply = get_inside(clusterd, 80)
    assert reply["pid"] in first and (reply["uid"], reply["gid"]) == (nobody, 65534)

    # Under ProtectProc=invisible clusterd (group root) still reads a worker's /proc/PID/status,
    # while a worker sees no process but its own.
    seen_by_root = in_namespaces(clusterd, [PYTHON, SANDBOX, UNIT, "--", "cat", "/proc/%d/status" % first[0]])
    assert seen_by_root.returncode == 0 and "Uid:\t%d" % nobody in seen_by_root.stdout, seen_by_root.stderr
    seen_by_worker = in_namespaces(clusterd, ["setpriv", "--reuid=%d" % nobody, "--regid=65534",
                                              "--clear-groups", "ls", "/proc/%d" % clusterd.pid])
    assert seen_by_worker.returncode != 0, seen_by_worker.stdout

    # A reload replaces the workers: the old ones, of another uid, get their stop signal (KILL).
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err + clusterd.log_tail()
    second = set(clusterd.ready_pids(4, timeout=15.0)) - set(first)
    assert len(second) == 2, clusterd.log_tail()
    harness.wait_until(lambda: not [p for p in first if harness.pid_alive(p)], 15.0, "old workers gone",
                       describe=clusterd.log_tail)
    assert get_inside(clusterd, 80)["pid"] in second

    code, out, err = clusterd.control("stop")
    assert code == 0, out + err
    assert clusterd.wait_exit(timeout=15.0) == 0, clusterd.log_tail()
    assert not [p for p in second if harness.pid_alive(p)]
    # Nothing clusterd needs was refused. The unit leaves out CAP_BPF and bpf() on purpose
    # (install.md): the listener is one shared socket, and clusterd says so once.
    steering = [line for line in clusterd.log().splitlines() if "one shared socket name=http" in line]
    assert len(steering) == 1 and steering[0].endswith(
        "need the steering program: cannot create the steering state map (bpf BPF_MAP_CREATE): "
        "Operation not permitted"), clusterd.log_tail()
    others = [line for line in clusterd.log().splitlines() if line not in steering]
    assert not [line for line in others if "Operation not permitted" in line], clusterd.log_tail()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setpriv, unshare and mount")
def test_a_node_worker_with_its_jit_runs_inside_the_units_sandbox(start_clusterd, tmpdir_short):
    # MemoryDenyWriteExecute= stays off and the system-call filter allows what Node.js uses
    # (libuv's io_uring, V8's protection keys): a filter that broke a common worker would be
    # worse than none.
    need("node", "nodejs")
    os.chmod(tmpdir_short, 0o700)
    clusterd = start_clusterd(["--workers", "1", "--set", "user=nobody", "--listen", "web=127.0.0.1:80",
                               "--", NODE, worker("node_server.js"), "3"],
                              wrapper=wrapper(), private_runtime=True, cwd="/",
                              env=dict(NO_LEAK_CHECK, RUNTIME_DIRECTORY=tmpdir_short))
    [pid] = clusterd.ready_pids(1, timeout=15.0)
    assert_sandboxed(pid, 65534)
    reply = harness.wait_until(lambda: _try_get(clusterd), 15.0, "node answers", describe=clusterd.log_tail)
    assert reply["server"] == "node" and reply["pid"] == pid


def _try_get(clusterd):
    script = ("import http.client, sys\n"
              "c = http.client.HTTPConnection('127.0.0.1', 80, timeout=5)\n"
              "c.request('GET', '/')\n"
              "sys.stdout.write(c.getresponse().read().decode())\n")
    result = in_namespaces(clusterd, [PYTHON, "-c", script])
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_the_template_unit_has_the_same_sandbox_as_the_unit():
    """clusterd@.service repeats clusterd.service's hardening (systemd has no include): every line
    from "# ---- Hardening." on is the same, so the two cannot drift apart."""
    def sandbox(path):
        with open(path) as f:
            text = f.read()
        return text[text.index("# ---- Hardening."):].replace("clusterd@INSTANCE", "clusterd")

    template = os.path.join(os.path.dirname(UNIT), "clusterd@.service")
    assert sandbox(template) == sandbox(UNIT)
