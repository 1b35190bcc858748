"""`clusterd check` finds what a start would fail on that only the running system can tell, each
with the fix, and changes nothing: a listening address another socket holds, a privileged port, a
unix socket directory that does not exist, a program that is not an executable format (no "#!",
another architecture, a "#!" interpreter that does not exist), and a `{fd:NAME}` naming no
listener. An address the running instance itself holds is a note, not an error: `check` is what
an operator runs before a reload.
"""
import os
import platform
import socket
import struct
import subprocess

import pytest

import harness
from harness import run_clusterd, write_file

EM_X86_64 = 62
EM_AARCH64 = 183


@pytest.fixture(autouse=True)
def not_under_systemd(monkeypatch):
    """As from a shell, also when the suite itself runs in a systemd service: under systemd a
    listener's problem is only a note (the start may be socket-activated)."""
    monkeypatch.delenv("INVOCATION_ID", raising=False)


def check(*args, **kwargs):
    """`clusterd check ARGS` with no control socket unless ARGS name one."""
    args = list(args)
    if "--control" not in args:
        args = ["--control", "none"] + args
    return run_clusterd(["check"] + args, **kwargs)


def listening_socket(host="127.0.0.1", reuseport=False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    sock.listen(16)
    return sock


def foreign_elf(path):
    """A 64-byte ELF header of an executable for another machine than this one's."""
    machine = EM_X86_64 if platform.machine() in ("aarch64", "arm64") else EM_AARCH64
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)            # 64-bit, little-endian, version 1
    header += struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    assert len(header) == 64
    with open(path, "wb") as f:
        f.write(header)
    os.chmod(path, 0o755)
    return machine


def test_an_address_another_process_listens_on_is_an_error_with_the_fix():
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        code, out, err = check("--listen", "127.0.0.1:%d" % port, "--", "/bin/true")
        assert (code, out) == (2, ""), err
        assert err == (
            "--listen 127.0.0.1:%d: listen[0].address: 127.0.0.1:%d is in use: another socket is bound to it, so a "
            "start would fail (bind: Address already in use); find its process with ss -ltnp 'sport = :%d', stop "
            "it or choose another port\n" % (port, port, port)), err
        # The holder still gets its connections: check's probe never listened.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = holder.accept()
            accepted.close()
    finally:
        holder.close()
    # Nothing of check's is left on the port.
    assert harness.can_listen("127.0.0.1", port)


def test_an_address_in_use_in_the_file_is_named_by_the_file_and_key(tmpdir_short):
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        config = write_file(tmpdir_short, "c.toml", 'command = ["/bin/true"]\n[[listen]]\naddress = "unix:%s/a.sock"'
                            '\n[[listen]]\naddress = "127.0.0.1:%d"\n' % (tmpdir_short, port))
        code, _, err = check("-c", config)
        assert code == 2, err
        assert err.startswith("%s: listen[1].address: 127.0.0.1:%d is in use:" % (config, port)), err
        assert err.count("\n") == 1, err
    finally:
        holder.close()


def test_a_privileged_port_for_a_user_who_may_not_bind_it_is_an_error():
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start == 0:
        # No port is privileged in this network namespace: then none may be refused for that.
        code, _, err = run_as_nobody(["check", "--control", "none", "--listen", "127.0.0.1:1", "--", "/bin/true"])
        assert "CAP_NET_BIND_SERVICE" not in err, err
        return
    port = start - 1
    code, out, err = run_as_nobody(["check", "--control", "none", "--listen", "127.0.0.1:%d" % port, "--",
                                    "/bin/true"])
    assert (code, out) == (2, ""), err
    assert err == (
        "--listen 127.0.0.1:%d: listen[0].address: 127.0.0.1:%d: ports below %d need root or CAP_NET_BIND_SERVICE "
        "(net.ipv4.ip_unprivileged_port_start), so a start would fail (bind: Permission denied); run clusterd as "
        "root or with that capability (AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit), or choose a "
        "port of %d or above\n" % (port, port, start, start)), err


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def run_as_nobody(args):
    assert os.geteuid() == 0, "the test suite runs as root (tests drop to nobody where needed)"
    result = subprocess.run([harness.BIN] + args, capture_output=True, text=True, timeout=15, cwd="/",
                            stdin=subprocess.DEVNULL, preexec_fn=as_nobody,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return result.returncode, result.stdout, result.stderr


def test_a_unix_socket_directory_that_does_not_exist_is_an_error_and_is_not_created(tmpdir_short):
    directory = os.path.join(tmpdir_short, "missing")
    path = os.path.join(directory, "s.sock")
    code, out, err = check("--listen", "unix:" + path, "--", "/bin/true")
    assert (code, out) == (2, ""), err
    assert err == (
        "--listen unix:%s: listen[0].address: unix:%s: the directory %s does not exist, and clusterd creates no "
        "directory for a listener; create it (mkdir -p %s, or RuntimeDirectory= in a systemd unit) or choose "
        "another path\n" % (path, path, directory, directory)), err
    assert not os.path.exists(directory)


def test_a_unix_socket_directory_others_may_write_is_refused_as_a_start_refuses_it(tmpdir_short):
    directory = os.path.join(tmpdir_short, "open")
    os.mkdir(directory)
    os.chmod(directory, 0o777)
    path = os.path.join(directory, "s.sock")
    code, _, err = check("--listen", "unix:" + path, "--", "/bin/true")
    assert code == 2, err
    assert err == ("--listen unix:%s: listen[0].address: unix:%s: unix socket directory %s: %s (mode 0777) is "
                   "writable by its group and by others, who could swap a file in it for a link to another (chmod "
                   "go-w %s)\n" % (path, path, directory, directory, directory)), err
    assert not os.path.exists(path)


def test_a_unix_socket_another_process_serves_is_an_error(tmpdir_short):
    path = os.path.join(tmpdir_short, "s.sock")
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(path)
        holder.listen(16)
        code, _, err = check("--listen", "unix:" + path, "--", "/bin/true")
        assert code == 2, err
        assert err == ("--listen unix:%s: listen[0].address: unix:%s is in use: another process serves that socket "
                       "file, so a start would fail; find it with ss -xlp src %s, stop it or choose another path\n"
                       % (path, path, path)), err
    finally:
        holder.close()


def test_a_free_unix_address_passes_and_check_leaves_no_socket_file(tmpdir_short):
    path = os.path.join(tmpdir_short, "s.sock")
    code, out, err = check("--listen", "unix:" + path, "--", "/bin/true")
    assert (code, err) == (0, ""), err
    assert 'address = "unix:%s"' % path in out
    assert not os.path.exists(path)


def test_a_program_without_a_shebang_is_not_an_executable_format(tmpdir_short):
    program = write_file(tmpdir_short, "serve", "echo hello\n", mode=0o755)
    code, out, err = check("--", program)
    assert (code, out) == (2, ""), err
    assert err == (
        'command line: command: cannot execute "%s": it starts with neither "#!" nor an ELF header, so execve '
        'fails with "Exec format error"; make its first line "#!" and the interpreter\'s absolute path (such as '
        '#!/bin/sh), or give the interpreter as PROGRAM and the file as its argument\n' % program), err


def test_a_shebang_to_an_interpreter_that_does_not_exist_is_an_error(tmpdir_short):
    program = write_file(tmpdir_short, "serve", "#!/nonexistent/python9 -u\nprint(1)\n", mode=0o755)
    config = write_file(tmpdir_short, "c.toml", 'command = ["%s"]\n' % program)
    code, out, err = check("-c", config)
    assert (code, out) == (2, ""), err
    assert err == ('%s: command: cannot execute "%s": its interpreter "/nonexistent/python9" (the "#!" line) cannot '
                   'be executed: No such file or directory; install it or correct the "#!" line\n'
                   % (config, program)), err


def test_a_shebang_through_env_to_a_program_not_in_path_is_an_error(tmpdir_short):
    program = write_file(tmpdir_short, "serve", "#!/usr/bin/env no-such-interpreter\n", mode=0o755)
    code, _, err = check("--set", 'env.PATH="/usr/bin:/bin"', "--", program)
    assert code == 2, err
    assert err == ('command line: command: cannot execute "%s": its "#!" line runs "no-such-interpreter" through '
                   '/usr/bin/env, which finds no executable "no-such-interpreter" in the workers\' PATH '
                   '(/usr/bin:/bin): No such file or directory; install it, or set PATH in [env], or name the '
                   'interpreter\'s absolute path after "#!"\n' % program), err


def test_a_script_whose_interpreter_exists_passes(tmpdir_short):
    program = write_file(tmpdir_short, "serve", "#!/bin/sh\nexec sleep 1\n", mode=0o755)
    code, _, err = check("--", program)
    assert (code, err) == (0, ""), err


def test_an_elf_for_another_architecture_is_an_error(tmpdir_short):
    program = os.path.join(tmpdir_short, "serve")
    machine = foreign_elf(program)
    names = {EM_X86_64: "x86-64 (64-bit)", EM_AARCH64: "AArch64 (64-bit)"}
    own = names[EM_AARCH64 if machine == EM_X86_64 else EM_X86_64]
    if os.path.exists("/proc/sys/fs/binfmt_misc/status"):
        handlers = set(os.listdir("/proc/sys/fs/binfmt_misc")) - {"status", "register"}
        assert not any(machine == EM_AARCH64 and "aarch64" in h or machine == EM_X86_64 and "x86_64" in h
                       for h in handlers), "a binfmt_misc handler runs %s programs here: %s" % (machine, handlers)
    code, out, err = check("--", program)
    assert (code, out) == (2, ""), err
    assert err == ('command line: command: cannot execute "%s": it is an ELF program for %s, and this system runs %s '
                   'programs; install the build for %s\n' % (program, names[machine], own, own)), err


def test_an_fd_placeholder_naming_no_listener_is_an_error_with_the_names_there_are(tmpdir_short):
    code, out, err = check("--listen", "http=127.0.0.1:0", "--", "/bin/true", "--fd={fd:nope}")
    assert (code, out) == (2, ""), err
    assert err == ('command line: command[1]: unknown placeholder "{fd:nope}": no listener is named "nope" '
                   '(listeners: "http"); use one of those names, or set name = "nope" in its [[listen]]\n'), err


def test_an_address_the_running_instance_holds_is_a_note_and_another_holder_still_an_error(start_clusterd,
                                                                                           tmpdir_short):
    instance = start_clusterd(["--workers", "1", "--listen", "http=127.0.0.1:0", "--", harness.PYTHON,
                               harness.worker("http_worker.py")])
    address = instance.address("http")
    control = instance.control_path()
    status = instance.status()
    code, out, err = check("--control", control, "--listen", "http=" + address, "--", "/bin/true")
    assert code == 0, err
    assert err == ('clusterd: note: listen[0].address: %s is held by the running instance "%s" (pid %d), whose '
                   'reload keeps or replaces it; another instance could not bind it\n'
                   % (address, status["name"], instance.pid)), err

    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        code, _, err = check("--control", control, "--listen", "http=" + address, "--listen",
                             "other=127.0.0.1:%d" % port, "--", "/bin/true")
        assert code == 2, err
        assert "listen[1].address: 127.0.0.1:%d is in use" % port in err, err
        assert "listen[0]" not in err, err
    finally:
        holder.close()


def test_under_systemd_an_address_in_use_is_a_note_since_the_start_may_be_socket_activated():
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        # ExecStartPre= runs without the socket unit's sockets, and the socket unit holds the port.
        code, out, err = check("--listen", "127.0.0.1:%d" % port, "--", "/bin/true",
                               env={"INVOCATION_ID": "0123456789abcdef0123456789abcdef"})
        assert code == 0, err
        assert 'address = "127.0.0.1:%d"' % port in out
        assert err == (
            "clusterd: note: listen[0].address: 127.0.0.1:%d is in use: another socket is bound to it, so a start "
            "would fail (bind: Address already in use); find its process with ss -ltnp 'sport = :%d', stop it or "
            "choose another port (not an error here: under systemd, INVOCATION_ID being set, the start may be "
            "socket-activated and then binds nothing)\n" % (port, port)), err
    finally:
        holder.close()


def test_under_systemd_a_program_that_cannot_run_is_still_an_error(tmpdir_short):
    program = write_file(tmpdir_short, "serve", "echo hello\n", mode=0o755)
    code, _, err = check("--", program, env={"INVOCATION_ID": "0123456789abcdef0123456789abcdef"})
    assert code == 2, err
    assert "it starts with neither" in err, err
