"""Issue 13, attack 4: the client subcommands believe only a control socket that no other user
could have put where they look, served by root or their own uid, and show nothing that a server
or a worker wrote as raw terminal controls. As root (the case defended), the attacker is nobody.

- A fake clusterd planted by nobody in /tmp/clusterd-0 (in a private mount namespace, so the
  machine's real one is never touched) is not asked by `stop --name shop` or `status`; the real
  pool, with its socket elsewhere, keeps serving.
- A server that runs as nobody in a trusted directory is refused, also with --control PATH and
  -c FILE; so is an explicit path in a directory others may write, or a link into one.
- A worker's STATUS= with escape sequences, C1 controls and a bidirectional override, and a
  server that puts them in every field, reach stdout and stderr escaped, in the table, the
  one-line answers, the errors and --json.
- Replies with fields of the wrong type never end the client other than with 0, 1 or 2.
"""
import json
import os
import selectors
import shutil
import subprocess
import time

import pytest

import harness
from harness import PYTHON, http_get, toml_string, worker

SETPRIV = shutil.which("setpriv")
NOBODY = 65534
AS_NOBODY = [SETPRIV or "setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV,
                                reason="needs root and setpriv to act as the user nobody")

HTTP_WORKER = [PYTHON, worker("http_worker.py"), "--graceful"]

# A fake clusterd: answers each request line with REPLIES[verb] (or REPLIES["*"], else
# {"ok":true}), then closes, one connection at a time. DROP_TO >= 0: bind as the caller, then
# listen() as that uid, which is then who SO_PEERCRED names. Says "listening" when it is.
FAKE_SERVER = r"""
import json, os, socket, sys
path, replies, drop_to = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o666)
if drop_to >= 0:
    os.setgroups([])
    os.setresgid(drop_to, drop_to, drop_to)
    os.setresuid(drop_to, drop_to, drop_to)
server.listen(16)
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    with connection:
        data = b""
        while b"\n" not in data:
            chunk = connection.recv(4096)
            if not chunk:
                break
            data += chunk
        words = data.split(b"\n")[0].decode(errors="replace").split()
        verb = words[0] if words else ""
        reply = replies.get(verb, replies.get("*", '{"ok":true}'))
        try:
            connection.sendall(reply.encode("utf-8", "surrogateescape") + b"\n")
        except OSError:
            pass
"""

# What must not reach a terminal raw: C0 (but the newline that ends a line), DEL, C1, and the
# bidirectional marks, overrides and isolates.
UNSAFE = ({chr(c) for c in range(0x20) if c != 0x0A} | {chr(c) for c in range(0x7F, 0xA0)}
          | {"\u061c", "\u200e", "\u200f", "\u2028", "\u2029"}
          | {chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)})

# Text a worker or a fake server puts everywhere: colours, a window title, a clear screen as C1
# CSI, and a right-to-left override that shows "file\u202etxt.exe" as "fileexe.txt".
EVIL = "ok \x1b[31mRED\x1b]0;pwned\x07 \u009b2J file\u202etxt.exe"
EVIL_SHOWN = "ok \\x1b[31mRED\\x1b]0;pwned\\x07 \\u009b2J file\\u202etxt.exe"


def raw_unsafe(data):
    """The unsafe characters in the bytes `data` (a byte that is not UTF-8 counts as one)."""
    text = data.decode("utf-8", "surrogateescape")
    return sorted({c for c in text if c in UNSAFE or "\udc80" <= c <= "\udcff"})


class FakeServer:
    """A fake clusterd started by the test (by pid), optionally through `prefix` (nsenter,
    setpriv), listening once started."""

    def __init__(self, path, replies=None, drop_to=-1, prefix=()):
        self.process = subprocess.Popen(
            list(prefix) + [PYTHON, "-c", FAKE_SERVER, path, json.dumps(replies or {}), str(drop_to)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd="/")
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                self.stop()
                raise AssertionError("fake server did not listen: %s" % self.process.stderr.read().decode())
            chunk = os.read(self.process.stdout.fileno(), 1)
            if not chunk:
                self.stop()
                raise AssertionError("fake server exited: %s" % self.process.stderr.read().decode())
            line += chunk
        selector.close()
        assert line == b"listening\n"
        self.pid = self.process.pid

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def fake_servers():
    started = []

    def start(*args, **kwargs):
        server = FakeServer(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def client(*args, timeout=30):
    """The client `clusterd ARGS` (which name their socket): (exit status, stdout, stderr) as bytes."""
    assert "--control" in args or "-c" in args
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    result = subprocess.run([harness.BIN] + list(args), capture_output=True, timeout=timeout, env=env,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


def start_pool(start_clusterd, tmpdir, **kwargs):
    """The real pool, named shop, with its control socket in TMPDIR/pool/, where no search looks."""
    os.mkdir(os.path.join(tmpdir, "pool"), 0o700)
    clusterd = start_clusterd(["--name", "shop", "--workers", "1", "--listen", "127.0.0.1:0",
                               "--control", os.path.join(tmpdir, "pool", "ctl.sock"), "--"] + HTTP_WORKER,
                              tmpdir=tmpdir, **kwargs)
    clusterd.ready_pids(1)
    return clusterd


def assert_pool_serves(clusterd, pids):
    status = clusterd.status()
    assert status["pid"] == clusterd.pid and not status["stopping"]
    assert {w["pid"] for w in status["workers"]} == set(pids)
    assert http_get(clusterd.address())["pid"] in pids
    assert not clusterd.exited()


# ---- (a) a directory anyone can create: /tmp/clusterd-0, planted by nobody


@harness.needs_private_runtime
@pytest.mark.parametrize("owner,mode,why", [
    (NOBODY, 0o777, "/tmp/clusterd-0 is owned by uid 65534, who could swap a file in it for a link to another; "
                    "only root may own it (chown root /tmp/clusterd-0)"),
    (0, 0o1777, "/tmp/clusterd-0 (mode 1777) may be written by its group and by others, who could create the "
                "file's name there first; use a directory that only root can write"),
], ids=["owned-by-nobody", "sticky-1777"])
def test_a_fake_clusterd_planted_in_tmp_clusterd_0_is_not_asked(start_clusterd, tmpdir_short, fake_servers,
                                                                owner, mode, why):
    os.chmod(tmpdir_short, 0o755)
    # The real pool: socket in its own directory, so a search by name does not find it.
    clusterd = start_pool(start_clusterd, tmpdir_short, private_runtime=True, env={"XDG_RUNTIME_DIR": ""})
    pids = clusterd.ready_pids(1)
    inside = clusterd.enter_namespaces()
    # In the pool's namespace, /tmp/clusterd-0 is an empty tmpfs: the attacker's, as if nobody had
    # created it before root's first start.
    subprocess.run(inside + ["chown", "%d:%d" % (owner, owner), "/tmp/clusterd-0"], check=True)
    subprocess.run(inside + ["chmod", "%o" % mode, "/tmp/clusterd-0"], check=True)
    fake_servers("/tmp/clusterd-0/shop.sock", {"status": json.dumps({"ok": True, "name": EVIL})},
                 prefix=inside + AS_NOBODY)

    not_searched = ("not searched, since another user could have put a socket there: control socket "
                    "directory /tmp/clusterd-0: " + why)
    code, out, err = clusterd.control("stop", "--name", "shop", discover=True)
    assert (code, out) == (2, ""), "the client believed the planted socket: %r %r" % (out, err)
    assert err == ("clusterd: no clusterd named shop found (tried {0}/shop.sock, /run/clusterd/shop.sock); {1}\n"
                   .format(tmpdir_short, not_searched))
    code, out, err = clusterd.control("status", discover=True)
    assert (code, out) == (2, "")
    assert err == ("clusterd: no clusterd found (tried {0}/*.sock, /run/clusterd/*.sock); {1}\n"
                   .format(tmpdir_short, not_searched))
    assert not raw_unsafe(err.encode())
    assert_pool_serves(clusterd, pids)

    # An instance found in a trusted directory is asked, and the planted one is named as a warning.
    runtime = os.path.join(tmpdir_short, "rt")
    os.mkdir(runtime, 0o700)
    os.symlink(clusterd.control_path(), os.path.join(runtime, "shop.sock"))
    code, out, err = clusterd.control("status", "--json", "--name", "shop", discover=True,
                                      env={"RUNTIME_DIRECTORY": runtime})
    assert code == 2 and "no clusterd named shop found" in err   # a link is not a socket to a search
    os.unlink(os.path.join(runtime, "shop.sock"))
    os.link(clusterd.control_path(), os.path.join(runtime, "shop.sock"))
    code, out, err = clusterd.control("status", "--json", "--name", "shop", discover=True,
                                      env={"RUNTIME_DIRECTORY": runtime})
    assert code == 0 and json.loads(out)["pid"] == clusterd.pid
    assert err == "clusterd: warning: %s\n" % not_searched
    assert_pool_serves(clusterd, pids)


# ---- (b) a server of another uid, and explicit paths that others could have planted


def test_a_server_running_as_nobody_is_refused_even_when_named(start_clusterd, tmpdir_short, fake_servers):
    os.chmod(tmpdir_short, 0o755)
    clusterd = start_pool(start_clusterd, tmpdir_short)
    pids = clusterd.ready_pids(1)
    # Root's own directory: only SO_PEERCRED can tell that nobody serves this socket.
    path = os.path.join(tmpdir_short, "shop.sock")
    server = fake_servers(path, {"status": json.dumps({"ok": True, "name": "shop", "pid": clusterd.pid})},
                          drop_to=NOBODY)
    refused = ("clusterd: refusing control socket %s: its server (pid %d) runs as uid 65534, and only a server "
               "running as root is believed, since another user's program could answer anything (to ask it, run "
               "the client as uid 65534)\n" % (path, server.pid)).encode()
    for request in (["stop"], ["status"], ["status", "--json"], ["scale", "3"], ["reload"]):
        code, out, err = client(*request, "--control", path)
        assert (code, out, err) == (2, b"", refused), request
    # The same through a config file that names it.
    config = harness.write_file(tmpdir_short, "shop.toml", 'name = "shop"\ncommand = ["true"]\n'
                                '[control]\nsocket = %s\n' % toml_string(path))
    code, out, err = client("stop", "-c", config)
    assert (code, out, err) == (2, b"", refused)
    assert_pool_serves(clusterd, pids)


def test_an_explicit_path_others_could_have_planted_is_refused(start_clusterd, tmpdir_short, fake_servers):
    os.chmod(tmpdir_short, 0o755)
    clusterd = start_pool(start_clusterd, tmpdir_short)
    pids = clusterd.ready_pids(1)
    # A server of root itself, but in a directory nobody may write: nobody could have put a
    # socket of its own there instead (or a link to one that root's clusterd bound for a worker).
    shared = os.path.join(tmpdir_short, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    path = os.path.join(shared, "shop.sock")
    fake_servers(path)
    code, out, err = client("stop", "--control", path)
    assert (code, out) == (2, b"")
    assert err == ("clusterd: refusing control socket {0}, since another user could have put it there: control "
                   "socket directory {1}: {1} (mode 1777) may be written by its group and by others, who could "
                   "create the file's name there first; use a directory that only root can write\n"
                   .format(path, shared)).encode()
    # A link in a trusted directory is followed only to a socket that is trusted in turn.
    link = os.path.join(tmpdir_short, "link.sock")
    os.symlink(path, link)
    code, out, err = client("stop", "--control", link)
    assert (code, out) == (2, b"") and err.startswith(
        ("clusterd: refusing control socket %s, since another user could have put it there: control socket "
         "directory %s: " % (link, shared)).encode())
    good = os.path.join(tmpdir_short, "good.sock")
    os.symlink(clusterd.control_path(), good)
    code, out, err = client("status", "--json", "--control", good)
    assert code == 0 and json.loads(out)["pid"] == clusterd.pid
    assert_pool_serves(clusterd, pids)


# ---- (c) nothing raw from a worker's STATUS= or from a server


def test_a_workers_status_text_is_shown_escaped(start_clusterd, tmpdir_short):
    os.chmod(tmpdir_short, 0o755)
    config = harness.write_file(tmpdir_short, "c.toml", """
workers = 1
user = "nobody"
command = %s
[[listen]]
address = "127.0.0.1:0"
[ready]
mode = "notify"
""" % toml_string([PYTHON, worker("notify_worker.py"), "--status", EVIL]))
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short, cwd="/")
    clusterd.ready_pids(1)
    path = clusterd.control_path()
    harness.wait_until(lambda: clusterd.status()["workers"][0]["notify_status"] == EVIL, message="STATUS= seen")

    code, out, err = client("status", "--control", path)
    assert code == 0, err
    assert not raw_unsafe(out + err), out
    row = out.decode().splitlines()[-1]
    assert row.endswith("  " + EVIL_SHOWN), row

    code, out, err = client("status", "--json", "--control", path)
    assert code == 0, err
    assert not raw_unsafe(out + err), out
    assert json.loads(out)["workers"][0]["notify_status"] == EVIL
    assert b'"notify_status":"ok \\u001b[31mRED\\u001b]0;pwned\\u0007 \\u009b2J file\\u202etxt.exe"' in out


def test_a_server_putting_controls_in_every_field_is_shown_escaped(tmpdir_short, fake_servers):
    path = os.path.join(tmpdir_short, "shop.sock")
    status = {"ok": True, "name": EVIL, "pid": EVIL, "version": EVIL, "generation": [EVIL], "config": EVIL,
              "workers_wanted": EVIL, "workers_ready": EVIL, "reloading_to": EVIL, "stopping": True,
              "listeners": [{"name": EVIL, "address": EVIL, "fd": EVIL, "reuseport": "per-slot", "sockets": EVIL}],
              "workers": [{"slot": EVIL, "pid": EVIL, "generation": EVIL, "state": EVIL, "uptime_s": EVIL,
                           "restarts": EVIL, "last_exit": {"exec_error": EVIL}, "next_restart_in_s": EVIL,
                           "notify_status": EVIL},
                          {"slot": 1, "last_exit": {"signal": EVIL}}, {"last_exit": {EVIL: EVIL}}]}
    replies = {"status": json.dumps(status, ensure_ascii=False),
               "reload": json.dumps({"ok": True, "generation": EVIL, "restart_needed": [EVIL, EVIL]},
                                    ensure_ascii=False),
               "scale": json.dumps({"ok": True, "workers_wanted": EVIL}, ensure_ascii=False),
               "stop": json.dumps({"ok": True, EVIL: EVIL}, ensure_ascii=False)}
    fake_servers(path, replies)
    for request in (["status"], ["status", "--json"], ["reload"], ["reload", "--json"], ["scale", "2"],
                    ["scale", "2", "--json"], ["stop"], ["stop", "--json"]):
        code, out, err = client(*request, "--control", path)
        assert code == 0, (request, err)
        assert not raw_unsafe(out + err), (request, out, err)
        if "--json" in request:
            assert json.loads(out) == json.loads(replies[request[0]])
    code, out, err = client("status", "--control", path)
    assert EVIL_SHOWN.encode() in out


@pytest.mark.parametrize("reply", [
    json.dumps({"ok": False, "error": EVIL}, ensure_ascii=False),
    "not json \x1b[2J \u202e",
    '{"ok":true,"name":"\x1b[2J"}',                    # a raw ESC inside a string is not JSON
    "[1,2] \x9b",
], ids=["error", "not-json", "raw-esc-in-string", "c1-after-json"])
def test_errors_and_replies_that_are_not_replies_are_shown_escaped(tmpdir_short, fake_servers, reply):
    path = os.path.join(tmpdir_short, "shop.sock")
    fake_servers(path, {"*": reply})
    for request in (["status"], ["status", "--json"], ["stop"]):
        code, out, err = client(*request, "--control", path)
        assert code == 1, (request, out, err)
        assert not raw_unsafe(out + err), (request, out, err)


# ---- (d) malformed replies never crash the client

MALFORMED = [
    '{"ok":true,"stopping":"yes","workers_ready":"2","workers_wanted":[1]}',
    '{"ok":true,"stopping":0}',   # found by tests/fuzz's control target: once an abort (exit 134)
    '{"ok":true,"workers":[1,"x",null,[],{"last_exit":"code"},{"last_exit":{"code":{"a":1}}}]}',
    '{"ok":true,"workers":{"slot":0},"listeners":"http"}',
    '{"ok":true,"listeners":[1,null,{"fd":"3","reuseport":"per-slot","sockets":{}}]}',
    '{"ok":true,"workers":[{"uptime_s":1e308,"next_restart_in_s":-1e308,"notify_status":{"x":1}}]}',
    '{"ok":true,"generation":18446744073709551615,"restart_needed":"log.file"}',
    '{"ok":true,"restart_needed":[null,{"k":[]},1.5]}',
    '{"ok":true,"generation":1e999}',
    '{"ok":false,"error":["x"]}',
    '{"ok":"true"}',
    '{"ok":null}',
    '[]',
    '"ok"',
    '',
    '{"ok":true,"name":"\\ud800"}',
    '{"ok":true' + ',"a":[' * 1000 + ']' * 1000 + '}',
    '{"ok":true,"error":7}',
    '{"ok":false,"error":"a\\u0000b"}',
]


@pytest.mark.parametrize("reply", MALFORMED, ids=["case%d" % i for i in range(len(MALFORMED))])
def test_a_malformed_reply_ends_the_client_with_0_1_or_2(tmpdir_short, fake_servers, reply):
    path = os.path.join(tmpdir_short, "shop.sock")
    fake_servers(path, {"*": reply})
    for request in (["status"], ["status", "--json"], ["reload"], ["scale", "2"], ["scale", "+1"],
                    ["restart", "all"], ["stop"]):
        code, out, err = client(*request, "--control", path)
        assert code in (0, 1, 2), (request, code, err)
        assert not raw_unsafe(out + err), (request, out, err)
