"""Real servers nobody here wrote serve the socket clusterd opened: gunicorn (which reads LISTEN_FDS
itself; sync and gthread workers), `uvicorn --fd N` and Node's `server.listen({fd})` (protocols
§1.4), and the C and Go examples.

Each runs in the default `ready.mode = "auto"`, and clusterd's `worker ready` line names the sign
that server gives, as measured in docs/servers.md#readiness: gunicorn's arbiter sends READY=1
before it forks its worker, which does not count while the worker has sockets: its child is seen
waiting in select (sync) or epoll (gthread); uvicorn, Node and Go register the socket with epoll;
the C example waits in ppoll (logged as poll). A reload of gunicorn to a release whose application
cannot load is abandoned while the old workers serve. The Python and Node servers run as 2 clusterd workers on
127.0.0.1:0; both workers must answer real HTTP requests, then SIGTERM stops everything: clusterd
exits 0 and every process of the tree is gone. The C and Go examples run as 1 worker that answers
once ready.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

import harness
from harness import PYTHON, Load, http_get, pid_alive, wait_until, worker
from test_examples import HELLO, RUN_ENV, build_c, build_go, example, require

NODE = "/usr/bin/node"


def python_module_missing(module):
    """Why `PYTHON -m module` cannot run, or None when it can."""
    if not os.access(PYTHON, os.X_OK):
        return "%s is not installed" % PYTHON
    probe = subprocess.run([PYTHON, "-c", "import %s" % module], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
    if probe.returncode != 0:
        return "the Python module %r is not installed for %s (Debian package needed): %s" % (
            module, PYTHON, probe.stderr.strip().splitlines()[-1:] or "")
    return None


def program_missing(path):
    return None if os.access(path, os.X_OK) else "%s is not installed" % path


def parent_of(pid):
    """The parent pid from /proc, or None when pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def descendants(pid):
    """Every live process below pid, from /proc/PID/task/*/children."""
    found = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % current)
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (current, task)) as f:
                    children = [int(p) for p in f.read().split()]
            except FileNotFoundError:
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


# The `worker ready` line of the default mode, with the sign it names.
READY = r'worker ready slot=(\d+) gen=1 pid=(\d+) sign=("[^"]*"|\S+)'


# id, why it cannot run (None: it can), --listen value, argv after `--`, whether the process that
# answers is a child of the clusterd worker (gunicorn forks its own workers) or the worker itself,
# and the sign clusterd logs for it in the default mode.
def cases():
    return [
        pytest.param(
            python_module_missing("gunicorn"),
            "127.0.0.1:0",
            # gunicorn finds LISTEN_FDS/LISTEN_PID itself: no --bind, no fd on the command line.
            [PYTHON, "-m", "gunicorn", "--workers", "1", "--graceful-timeout", "5",
             "--chdir", harness.WORKERS_DIR, "wsgi_app:app"],
            True,
            # The arbiter's READY=1 comes before its worker has loaded the app: the child's wait on
            # the socket is what counts.
            r'"select pid=\d+"',
            id="gunicorn",
        ),
        pytest.param(
            python_module_missing("gunicorn"),
            "127.0.0.1:0",
            [PYTHON, "-m", "gunicorn", "--workers", "1", "--graceful-timeout", "5",
             "--worker-class", "gthread", "--threads", "4", "--chdir", harness.WORKERS_DIR,
             "wsgi_app:app"],
            True,
            r'"epoll pid=\d+"',
            id="gunicorn-gthread",
        ),
        pytest.param(
            python_module_missing("uvicorn"),
            "http=127.0.0.1:0",
            # uvicorn needs the fd on its command line: the {fd:http} placeholder gives it.
            [PYTHON, "-m", "uvicorn", "--fd", "{fd:http}", "--no-access-log",
             "--app-dir", harness.WORKERS_DIR, "asgi_app:app"],
            False,
            "epoll",
            id="uvicorn",
        ),
        pytest.param(
            program_missing(NODE),
            "web=127.0.0.1:0",
            [NODE, worker("node_server.js"), "3"],
            False,
            "epoll",
            id="node",
        ),
    ]


@pytest.mark.parametrize("missing, listen, argv, answers_from_child, sign", cases())
def test_real_server_is_ready_by_its_sign_serves_from_two_workers_and_stops(
        start_clusterd, missing, listen, argv, answers_from_child, sign):
    if missing:
        pytest.skip(missing)
    clusterd = start_clusterd(["--workers", "2", "--grace", "10s", "--listen", listen, "--"] + argv)
    address = clusterd.address()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address) and not address.endswith(":0"), address
    ready = set(clusterd.ready_pids(2, timeout=15.0))
    assert len(ready) == 2, "expected 2 distinct ready pids, got %r\n%s" % (ready, clusterd.log_tail())
    signs = [m.group(3) for m in clusterd.matches(READY)]
    assert len(signs) == 2 and all(re.fullmatch(sign, seen) for seen in signs), \
        "expected sign=%s for both workers\n%s" % (sign, clusterd.log_tail())

    answered_by = {}  # ready pid -> the pids that answered on its behalf
    slots = set()

    def owner_of(reply):
        pid = reply["pid"]
        if pid in ready:
            assert not answers_from_child, "gunicorn's arbiter answered itself: %r" % reply
            return pid
        parent = parent_of(pid)
        assert answers_from_child, "pid %d answered but clusterd logged %r as ready\n%s" % (
            pid, sorted(ready), clusterd.log_tail())
        assert parent == reply["ppid"], (parent, reply)
        assert parent in ready, "pid %d (parent %r) answered; clusterd's workers are %r" % (
            pid, parent, sorted(ready))
        return parent

    def both_answered():
        reply = http_get(address, timeout=10.0)
        assert isinstance(reply, dict), "not JSON: %r" % (reply,)
        answered_by.setdefault(owner_of(reply), set()).add(reply["pid"])
        slots.add(reply["slot"])
        return set(answered_by) == ready

    # The kernel gives each connection to whichever worker accepts first: ask until both have.
    wait_until(both_answered, 30.0, "answers from both workers",
               describe=lambda: "answered: %r\n%s" % (answered_by, clusterd.log_tail()))
    assert slots == {"0", "1"}
    all_answering = set().union(*answered_by.values())
    assert len(all_answering) >= 2

    tree = descendants(clusterd.pid)
    assert ready <= set(tree), (ready, tree)
    assert all_answering <= set(tree), (all_answering, tree)
    clusterd.seen_pids.update(tree)
    # Nothing crashed or restarted while serving.
    assert len(clusterd.wait_for_log(r"worker ready slot=", 1)) == 2, clusterd.log_tail()

    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(timeout=20.0) == 0, clusterd.log_tail()
    wait_until(lambda: not [p for p in tree if pid_alive(p)], 10.0, "every worker process gone",
               describe=lambda: "still alive: %r" % [p for p in tree if pid_alive(p)])


@pytest.fixture(scope="module")
def examples_build_dir():
    path = tempfile.mkdtemp(prefix="cd-rs-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("name, needs, build, sign", [
    pytest.param("c", "cc", build_c, "poll", id="c"),
    pytest.param("go", "go", build_go, "epoll", id="go"),
])
def test_example_server_is_ready_by_its_sign_and_then_answers(start_clusterd, examples_build_dir, name,
                                                              needs, build, sign):
    require(needs)
    cwd = build(examples_build_dir)
    # The example's own file, which sets no ready.mode: the default.
    clusterd = start_clusterd(["-c", example(name, "clusterd.toml"), "--workers", "1",
                               "--listen", "http=127.0.0.1:0"], cwd=cwd, env=RUN_ENV)
    [ready] = clusterd.wait_for_log(READY, timeout=15.0)
    assert ready.group(3) == sign, clusterd.log_tail()
    pid = int(ready.group(2))
    clusterd.seen_pids.add(pid)
    answer = HELLO.match(http_get(clusterd.address("http"), timeout=10.0))
    assert answer and int(answer.group(1)) == pid, (answer, clusterd.log_tail())


def test_gunicorn_reload_to_a_release_that_cannot_load_is_abandoned_and_the_old_workers_serve(
        start_clusterd, tmpdir_short):
    missing = python_module_missing("gunicorn")
    if missing:
        pytest.skip(missing)
    from test_reload import write_config
    gunicorn = [PYTHON, "-m", "gunicorn", "--workers", "1", "--graceful-timeout", "5", "--chdir",
                harness.WORKERS_DIR]
    config = write_config(tmpdir_short, workers=2, command=gunicorn + ["wsgi_app:app"])
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    old = set(clusterd.ready_pids(2, timeout=15.0))
    address = clusterd.address("http")
    # Its arbiter still sends READY=1 at once; its worker then fails to import the application.
    write_config(tmpdir_short, workers=2, command=gunicorn + ["broken_wsgi_app:app"])
    load = Load(address, lambda a: parent_of(http_get(a, timeout=10.0)["pid"]), limit=2000)
    code, out, err = clusterd.control("reload", timeout=60)
    answered, failed = load.stop()
    assert code == 1, (code, out, err)
    assert "before it was ready" in err, err
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert failed == [], failed[:3]
    assert answered and set(load.answers) <= old
    status = clusterd.status()
    assert status["generation"] == 1 and status["workers_ready"] == 2
    assert {entry["pid"] for entry in status["workers"]} == old
