"""clusterd as PID 1, as in a container: `unshare --pid --fork --mount-proc` makes it the first
process of a new pid namespace (with its own /proc), the way docker and Kubernetes start an
ENTRYPOINT. The test looks at the namespace from outside, through the host pids of its processes
(/proc/PID/ns/pid, the NSpid and PPid lines of /proc/PID/status), and from inside with nsenter,
where a readiness probe runs.

- Every orphan is reaped: a worker's double-forked process that escapes its group, outlives it and
  exits later; a process left in the worker's group when it exits. No zombie stays.
- SIGTERM or SIGINT from outside (the container runtime), and SIGTERM from inside (`kill 1`, which
  the kernel drops for a PID 1 that has not asked for it), stop it gracefully with exit 0.
- A worker's LISTEN_PID is its pid as it sees it: the namespace's pid, not the host's.
- examples/container/Dockerfile's ENTRYPOINT (parsed from the file, with its COPY, WORKDIR, USER,
  EXPOSE, STOPSIGNAL and HEALTHCHECK lines) runs as PID 1, serves, is ready by its probe and stops
  with its STOPSIGNAL; k8s.yaml agrees with both. Docker itself is not needed.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import tomllib

import pytest

import harness
from harness import PYTHON, http_get, pid_alive, pid_gone, wait_until, worker

CONTAINER_DIR = os.path.join(harness.SOURCE_DIR, "examples", "container")
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def namespaces_unavailable():
    """Why a new pid namespace cannot be made here (not root, no CAP_SYS_ADMIN), or None."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter (util-linux) are not installed"
    probe = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return "cannot create a pid namespace: %s" % probe.stderr.strip()
    return None


pytestmark = pytest.mark.skipif(namespaces_unavailable() is not None,
                                reason=str(namespaces_unavailable()))


# ---- the namespace seen from the host

def proc_status(pid):
    """/proc/PID/status as a dict of its lines; None when pid is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def namespace_processes(host_pid):
    """{host pid: (pid inside the namespace, host parent pid, state letter)} for every process in
    host_pid's pid namespace."""
    namespace = os.readlink("/proc/%d/ns/pid" % host_pid)
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % entry) != namespace:
                continue
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        status = proc_status(int(entry))
        if status:
            found[int(entry)] = (int(status["NSpid"].split()[-1]), int(status["PPid"]),
                                 status["State"][0])
    return found


def host_pid_of(namespace, inner_pid):
    """The host pid of the process whose pid inside the namespace is inner_pid, or None."""
    return next((host for host, (inner, _, _) in namespace.items() if inner == inner_pid), None)


def catches(pid, signum):
    """True once pid has a handler for signum (the SigCgt mask of /proc/PID/status)."""
    status = proc_status(pid)
    return bool(status) and bool(int(status["SigCgt"], 16) >> (signum - 1) & 1)


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


class Pid1Clusterd(harness.Clusterd):
    """clusterd as PID 1 of a new pid namespace. `unshare` (self.process, self.pid) forks it,
    waits for it and exits with its status; it blocks SIGTERM and SIGINT itself, so signals go to
    clusterd by its host pid (self.host_pid). When clusterd exits, the kernel kills whatever is
    left in its namespace."""

    def __init__(self, args, wrapper=(), **kwargs):
        # A container sees only its own clusterd: the shared control directories are empty
        # tmpfs mounts in its mount namespace, so the probes' discovery meets no other instance.
        super().__init__(args, wrapper=UNSHARE + harness.private_runtime_setup() + list(wrapper), **kwargs)
        self.private_runtime = True
        binary = os.path.realpath(harness.BIN)

        def clusterd_started():
            try:
                with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                    children = [int(p) for p in f.read().split()]
                return next(c for c in children if os.path.realpath("/proc/%d/exe" % c) == binary)
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                return None

        try:
            self.host_pid = wait_until(clusterd_started, 10.0, "clusterd started by unshare",
                                       describe=self.log_tail)
        except AssertionError:
            os.killpg(self.pid, signal.SIGKILL)   # unshare's group: no fixture will clean it up
            self.process.wait()
            raise
        assert proc_status(self.host_pid)["NSpid"].split()[-1] == "1", proc_status(self.host_pid)

    def signal(self, signum):
        try:
            os.kill(self.host_pid, signum)
        except ProcessLookupError:
            pass   # clusterd has exited and unshare reaped it; wait_exit() tells how

    def namespace(self):
        return namespace_processes(self.host_pid)

    def enter_namespaces(self):
        # The mount namespace's /proc is the container's: a client that entered only the mount
        # namespace would not find itself there (the sanitizers' leak check reads /proc/self).
        return ["nsenter", "--target", str(self.host_pid), "--pid", "--mount", "--"]

    def workers(self, count, timeout=15.0):
        """Waits for `count` ready workers; returns {host pid: pid inside} of those logged ready
        (the log, like everything clusterd says, uses the namespace's pids)."""
        ready = self.wait_for_log(r"worker ready slot=\d+ gen=\d+ pid=(\d+)", count, timeout)
        namespace = self.namespace()
        found = {}
        for match in ready:
            host = host_pid_of(namespace, int(match.group(1)))
            if host is not None:
                found[host] = int(match.group(1))
        self.seen_pids.update(found)
        return found

    def in_namespace(self, argv, env=None, timeout=30.0):
        """Runs argv inside clusterd's pid and mount namespaces (as `kubectl exec` or a probe
        would): (exit status, stdout, stderr)."""
        full_env = dict(self.env)
        full_env.update(env or {})
        result = subprocess.run(["nsenter", "--target", str(self.host_pid), "--pid", "--mount", "--"]
                                + list(argv), capture_output=True, text=True, timeout=timeout,
                                env=full_env, stdin=subprocess.DEVNULL)
        return result.returncode, result.stdout, result.stderr


@pytest.fixture
def start_pid1():
    started = []

    def start(args, **kwargs):
        instance = Pid1Clusterd(args, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        # Every process of the namespace dies with its PID 1: cleanup checks they did.
        if pid_alive(instance.host_pid):
            instance.seen_pids.update(p for p in instance.namespace() if p != instance.host_pid)
        instance.cleanup()


def no_zombies(clusterd):
    zombies = [(host, inner) for host, (inner, _, state) in clusterd.namespace().items() if state == "Z"]
    return not zombies


# ---- orphans

ORPHAN_MAKER = r"""#!/bin/sh
# The first worker leaves two orphans behind, then exits 3 when told to; its replacement waits.
cd "$(dirname "$0")"
if [ ! -e spawned ]; then
  : > spawned
  # Double fork into a session of its own: escapes the worker's process group, so nothing kills
  # it when the worker exits; it ends when the test creates "release".
  ( setsid sh -c 'echo $$ > escaped.pid; while [ ! -e release ]; do sleep 0.05; done' & )
  # Double fork within the worker's group: killed with what is left of the group.
  ( sh -c 'echo $$ > grouped.pid; while :; do sleep 1; done' & )
  while [ ! -e worker-exit ]; do sleep 0.05; done
  exit 3
fi
exec sleep 1000
"""


def test_pid1_reaps_every_orphan_and_leaves_no_zombie(start_pid1, tmpdir_short):
    script = harness.write_file(tmpdir_short, "orphans.sh", ORPHAN_MAKER, mode=0o755)
    # Without a cgroup per worker, which would kill the escaped orphan with its worker (test_cgroup.py):
    # where clusterd can make none, PID 1 still reaps what outlives its worker.
    clusterd = start_pid1(["--workers", "1", "--log-level", "debug", "--set", "cgroup.mode=off", "--", script],
                          tmpdir=tmpdir_short)
    [(first, first_inner)] = clusterd.workers(1).items()

    def pid_from(name):
        path = os.path.join(tmpdir_short, name)
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else None

    wait_until(lambda: os.path.exists(os.path.join(tmpdir_short, "escaped.pid"))
               and os.path.exists(os.path.join(tmpdir_short, "grouped.pid"))
               and pid_from("escaped.pid") and pid_from("grouped.pid"), 10.0, "the orphans' pid files")
    escaped_inner, grouped_inner = pid_from("escaped.pid"), pid_from("grouped.pid")
    namespace = clusterd.namespace()
    escaped, grouped = host_pid_of(namespace, escaped_inner), host_pid_of(namespace, grouped_inner)
    assert escaped and grouped, (escaped_inner, grouped_inner, namespace)
    clusterd.extra_pids.update({escaped, grouped})

    # Their parents exited at once: both are reparented to PID 1, clusterd.
    wait_until(lambda: all(proc_status(p)["PPid"] == str(clusterd.host_pid) for p in (escaped, grouped)),
               10.0, "the orphans reparented to clusterd",
               describe=lambda: str({p: proc_status(p) for p in (escaped, grouped)}))
    assert harness.proc_stat(escaped)["pgrp"] != harness.proc_stat(first)["pgrp"]
    assert harness.proc_stat(grouped)["pgrp"] == harness.proc_stat(first)["pgrp"]

    # The worker exits: clusterd kills what is left of its group, reaps it, restarts the slot.
    harness.write_file(tmpdir_short, "worker-exit", "")
    clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d status=exit:3 " % first_inner)
    replacement = clusterd.workers(2)
    wait_until(lambda: pid_gone(grouped), 10.0, "the orphan in the worker's group killed and reaped",
               describe=lambda: str(proc_status(grouped)))
    assert pid_alive(escaped) and proc_status(escaped)["PPid"] == str(clusterd.host_pid)

    # The escaped orphan ends on its own, long after its worker: PID 1 reaps it too.
    harness.write_file(tmpdir_short, "release", "")
    wait_until(lambda: pid_gone(escaped), 10.0, "the escaped orphan reaped",
               describe=lambda: str(proc_status(escaped)))
    # (The log line follows the reap, so it may come a moment after the pid is gone.)
    clusterd.wait_for_log(r"reaped orphan pid=%d$" % escaped_inner)
    clusterd.wait_for_log(r"reaped orphan pid=%d$" % grouped_inner)

    # What is left is clusterd and the replacement worker, and no zombie.
    [current] = [p for p in replacement if p != first]
    wait_until(lambda: no_zombies(clusterd) and set(clusterd.namespace()) == {clusterd.host_pid, current},
               10.0, "only clusterd and its worker in the namespace, no zombie",
               describe=lambda: str(clusterd.namespace()))

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()


# ---- signals

def inside_kill_term(clusterd):
    """`kill -TERM 1` from a process in the namespace (`docker exec … kill 1`)."""
    code, out, err = clusterd.in_namespace(["kill", "-TERM", "1"])
    assert code == 0, out + err


@pytest.mark.parametrize("send, name", [
    (lambda clusterd: clusterd.signal(signal.SIGTERM), "TERM"),
    (lambda clusterd: clusterd.signal(signal.SIGINT), "INT"),
    (inside_kill_term, "TERM"),
], ids=["SIGTERM-from-runtime", "SIGINT-from-runtime", "SIGTERM-from-inside"])
def test_pid1_stops_gracefully_and_exits_0(start_pid1, send, name):
    clusterd = start_pid1(["--workers", "2", "--grace", "20s", "--listen", "127.0.0.1:0", "--",
                           PYTHON, worker("http_worker.py"), "--graceful"])
    address = clusterd.address()
    workers = clusterd.workers(2)
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(workers.values()),
               10.0, "answers from both workers", describe=lambda: str(answered))

    send(clusterd)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    assert clusterd.count(r"received signal=%s$" % name) == 1, clusterd.log_tail()
    for inner in workers.values():
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=exit:0 " % inner) == 1, \
            clusterd.log_tail()
    assert "did not stop within grace" not in clusterd.log()
    assert not [p for p in workers if pid_alive(p)]


# ---- LISTEN_PID

def test_worker_sees_its_own_namespace_pid_as_listen_pid(start_pid1):
    clusterd = start_pid1(["--workers", "2", "--listen", "http=127.0.0.1:0", "--",
                           PYTHON, worker("http_worker.py")])
    address = clusterd.address()
    workers = clusterd.workers(2)
    for host, inner in workers.items():
        assert host != inner
        env = environ_of(host)
        assert env["LISTEN_PID"] == str(inner), (host, inner, env.get("LISTEN_PID"))
        assert (env["LISTEN_FDS"], env["LISTEN_FDNAMES"]) == ("1", "http")
        assert proc_status(host)["PPid"] == str(clusterd.host_pid)
    # The worker agreed (http_worker.py serves only when LISTEN_PID is its getpid()), and it
    # names itself by the namespace's pid.
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(workers.values()),
               10.0, "answers from both workers", describe=lambda: str(answered))
    status = clusterd.status()
    assert status["pid"] == 1, status
    assert {w["pid"] for w in status["workers"]} == set(workers.values()), status


# ---- the readiness probe

def probe_command():
    return os.path.join(CONTAINER_DIR, "clusterd-ready")


# The jq form of the same check, as docs/operations.md gives it.
JQ_READY = "clusterd status --json | jq -e '.workers_ready == .workers_wanted and (.stopping | not)'"


def probes_agree(clusterd, env, expected):
    """clusterd-ready and, where jq is installed, docs/operations.md's jq line exit `expected`;
    returns what clusterd-ready said on stderr."""
    code, out, probe_err = clusterd.in_namespace([probe_command()], env=env)
    assert code == expected, (code, out, probe_err)
    if shutil.which("jq"):
        code, out, err = clusterd.in_namespace(["sh", "-c", JQ_READY + " >/dev/null"], env=env)
        assert code == expected, (JQ_READY, code, out, err)
    return probe_err


def test_readiness_probe_waits_for_every_worker(start_pid1, tmpdir_short):
    bin_dir = os.path.join(tmpdir_short, "bin")
    os.mkdir(bin_dir)
    os.symlink(harness.BIN, os.path.join(bin_dir, "clusterd"))
    path = {"PATH": bin_dir + ":" + SYSTEM_PATH}
    clusterd = start_pid1(["--workers", "2", "--ready", "notify", "--listen", "127.0.0.1:0", "--",
                           PYTHON, worker("notify_worker.py"), "--ready-on-usr1"], env=path)
    # Both workers run, neither is ready: clusterd answers (status exits 0), the probe says no.
    clusterd.wait_for_log(r"control socket path=")   # logged once it listens
    wait_until(lambda: len([w for w in clusterd.status()["workers"] if w["pid"]]) == 2, 10.0,
               "two workers started")
    code, out, err = clusterd.in_namespace(["clusterd", "status", "--json"], env=path)
    assert code == 0 and json.loads(out)["workers_ready"] == 0, out + err
    assert "not ready: 0 of 2 workers ready" in probes_agree(clusterd, path, 1)

    namespace = clusterd.namespace()
    children = [h for h, (_, parent, _) in namespace.items() if parent == clusterd.host_pid]
    clusterd.seen_pids.update(children)
    # SIGUSR1 makes notify_worker.py send READY=1, once it has its handler.
    wait_until(lambda: all(catches(p, signal.SIGUSR1) for p in children), 10.0, "SIGUSR1 handlers")
    os.kill(children[0], signal.SIGUSR1)
    clusterd.wait_for_log(r"worker ready slot=")
    assert "not ready: 1 of 2 workers ready" in probes_agree(clusterd, path, 1)

    os.kill(children[1], signal.SIGUSR1)
    clusterd.wait_for_log(r"all workers ready workers=2")
    probes_agree(clusterd, path, 0)

    # No clusterd at all: 1 (Docker's "unhealthy"), not status's 2 (which Docker reserves).
    empty = tempfile.mkdtemp(prefix="cd-")
    try:
        code, out, err = clusterd.in_namespace([probe_command()],
                                               env=dict(path, RUNTIME_DIRECTORY=empty))
        assert code == 1, (code, out, err)
    finally:
        os.rmdir(empty)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()


# ---- examples/container: the Dockerfile's ENTRYPOINT as PID 1

def dockerfile_instructions(path):
    """[(INSTRUCTION, arguments)] of a Dockerfile: comments dropped, continuation lines joined."""
    instructions = []
    pending = ""
    with open(path) as f:
        for line in f:
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            whole = (pending + stripped).strip()
            pending = ""
            keyword, _, rest = whole.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


class Image:
    """What the test can rebuild of the image without Docker: the files COPY puts in it (from the
    repository, the build context), and the run settings."""

    def __init__(self, dockerfile):
        self.copies = []          # (source in the repository, destination in the image)
        self.settings = {}
        for keyword, rest in dockerfile_instructions(dockerfile):
            if keyword == "COPY":
                words = shlex.split(rest)
                if any(w.startswith("--") or "$" in w for w in words):
                    continue      # the .deb (ARG) or another stage: stands for clusterd itself
                *sources, destination = words
                for source in sources:
                    target = destination
                    if destination.endswith("/"):
                        target = destination + os.path.basename(source)
                    self.copies.append((source, target))
            elif keyword in ("ENTRYPOINT", "CMD", "WORKDIR", "USER", "EXPOSE", "STOPSIGNAL",
                             "HEALTHCHECK"):
                self.settings[keyword] = rest

    def exec_form(self, keyword):
        return json.loads(self.settings[keyword])

    def healthcheck(self):
        options, _, command = self.settings["HEALTHCHECK"].partition("CMD ")
        return json.loads(command)

    def unpack(self, root):
        """Copies every COPY'd file to root + its path in the image (world-readable, as COPY
        leaves them, with the execute bit kept)."""
        for source, target in self.copies:
            destination = root + target
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.copy2(os.path.join(harness.SOURCE_DIR, source), destination)
        for directory, _, _ in os.walk(root):
            os.chmod(directory, 0o755)


def test_container_example_entrypoint_runs_as_pid1_is_ready_serves_and_stops(start_pid1, tmpdir_short):
    image = Image(os.path.join(CONTAINER_DIR, "Dockerfile"))
    entrypoint = image.exec_form("ENTRYPOINT")
    assert entrypoint[0] == "clusterd", entrypoint
    assert "CMD" not in image.settings
    uid, _, gid = image.settings["USER"].partition(":")
    assert uid.isdigit() and gid.isdigit(), "USER should be numeric (runAsNonRoot): %r" % uid
    workdir = image.settings["WORKDIR"]
    stop_signal = getattr(signal, image.settings["STOPSIGNAL"])
    [exposed] = [int(p.split("/")[0]) for p in image.settings["EXPOSE"].split()]

    os.chmod(tmpdir_short, 0o755)   # the image's user must reach the unpacked files
    root = os.path.join(tmpdir_short, "image")
    image.unpack(root)
    # clusterd from the .deb is /usr/bin/clusterd; here it is the binary under test.
    os.makedirs(root + "/usr/bin", exist_ok=True)
    os.symlink(harness.BIN, root + "/usr/bin/clusterd")
    # The image's paths, rooted in the unpacked copy.
    args = [root + a if a.startswith("/") and os.path.exists(root + a) else a for a in entrypoint[1:]]
    config_path = next(a for a in args if a.startswith(root))
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    [listener] = config["listen"]
    assert int(listener["address"].rsplit(":", 1)[1]) == exposed, (listener, exposed)

    # The image has no RUNTIME_DIRECTORY (the control socket goes to /tmp/clusterd-UID); here a
    # private one, owned by the image's user, keeps parallel runs apart.
    runtime = os.path.join(tmpdir_short, "run")
    os.mkdir(runtime, 0o700)
    os.chown(runtime, int(uid), int(gid))
    env = {"PATH": "%s/usr/local/bin:%s/usr/bin:%s" % (root, root, SYSTEM_PATH),
           "RUNTIME_DIRECTORY": runtime, "PYTHONDONTWRITEBYTECODE": "1"}
    as_user = ["setpriv", "--reuid", uid, "--regid", gid, "--clear-groups"]
    # On the test's loopback and ephemeral port, with 2 workers whatever the CPU count.
    clusterd = start_pid1(args + ["--listen", "%s=127.0.0.1:0" % listener["name"], "--workers", "2"],
                          wrapper=as_user, cwd=root + workdir, env=env, tmpdir=tmpdir_short)
    assert proc_status(clusterd.host_pid)["Uid"].split()[0] == uid
    address = clusterd.address(listener["name"])
    workers = clusterd.workers(2)

    # Docker's HEALTHCHECK and Kubernetes' readinessProbe run the same command, in the container.
    health = image.healthcheck()
    probes = []
    wait_until(lambda: probes.append(clusterd.in_namespace(as_user + health, env=env)) or probes[-1][0] == 0,
               10.0, "the HEALTHCHECK command to pass", describe=lambda: str(probes[-1:]))

    answered = set()

    def both_answered():
        text = http_get(address)
        match = re.match(r"hello from pid (\d+) \(worker (\d) of 2\)", text)
        assert match, text
        answered.add(int(match.group(1)))
        return answered == set(workers.values())

    wait_until(both_answered, 10.0, "answers from both workers", describe=lambda: str(answered))
    for host, inner in workers.items():
        assert environ_of(host)["LISTEN_PID"] == str(inner)
        assert proc_status(host)["Uid"].split()[0] == uid

    clusterd.signal(stop_signal)
    assert clusterd.wait_exit(30.0) == 0, clusterd.log_tail()
    for inner in workers.values():
        assert clusterd.count(r"worker stopped slot=\d gen=1 pid=%d status=exit:0 " % inner) == 1, \
            clusterd.log_tail()


def test_operations_doc_gives_the_tested_jq_check():
    with open(os.path.join(harness.SOURCE_DIR, "docs", "operations.md")) as f:
        assert JQ_READY in f.read()


def test_dockerignore_lets_through_every_file_the_dockerfile_copies():
    image = Image(os.path.join(CONTAINER_DIR, "Dockerfile"))
    with open(os.path.join(CONTAINER_DIR, "Dockerfile.dockerignore")) as f:
        rules = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", rules
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    assert {source for source, _ in image.copies} <= allowed, (image.copies, allowed)
    deb = re.search(r"^ARG DEB=(\S+)$", open(os.path.join(CONTAINER_DIR, "Dockerfile")).read(), re.M)
    assert deb and deb.group(1) in allowed, (deb, allowed)


def test_kubernetes_manifest_matches_the_image_and_the_config():
    yaml = pytest.importorskip("yaml")
    image = Image(os.path.join(CONTAINER_DIR, "Dockerfile"))
    with open(os.path.join(CONTAINER_DIR, "k8s.yaml")) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    with open(os.path.join(CONTAINER_DIR, "clusterd.toml"), "rb") as f:
        config = tomllib.load(f)

    # SIGKILL comes terminationGracePeriodSeconds after preStop starts: preStop plus clusterd's
    # own grace must fit inside it.
    grace = harness.parse_duration(config["stop"]["grace"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep", pre_stop
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + grace
    assert container["readinessProbe"]["exec"]["command"] == image.healthcheck()
    assert container["livenessProbe"]["exec"]["command"][:2] == ["clusterd", "status"]
    [port] = container["ports"]
    assert str(port["containerPort"]) == image.settings["EXPOSE"]
    uid, _, gid = image.settings["USER"].partition(":")
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == (uid, gid)
    assert config["workers"] == "auto" and "cpu" in container["resources"]["limits"]
