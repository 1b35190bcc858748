"""A program that cannot be executed: refused at start (exit 2, nothing bound); after start it is
reported once and its slot retried only every restart.max_delay while clusterd keeps serving.
"""
import os
import re
import shutil
import signal
import time

import pytest

import harness
from harness import PYTHON, http_get, run_clusterd, wait_until, worker

CANNOT_EXECUTE = r"worker program cannot be executed slot=(\d+) gen=\d+ pid=\d+ .*program=(\S+) " \
                 r"step=(\S+) error=\"([^\"]*)\" retry_every=(\S+)"


@pytest.mark.parametrize("kind", ["missing", "not-executable", "not-in-path"])
def test_program_that_cannot_be_executed_at_start_exits_2_binding_nothing(tmpdir_short, kind):
    if kind == "missing":
        program = os.path.join(tmpdir_short, "no-such-server")
    elif kind == "not-executable":
        program = harness.write_file(tmpdir_short, "server", "#!/bin/sh\nexit 0\n", mode=0o644)
    else:
        program = "clusterd-test-no-such-program"
    sock_path = os.path.join(tmpdir_short, "web.sock")
    code, _, stderr = run_clusterd(["--workers", "1", "--log-level", "debug",
                                    "--listen", "unix:" + sock_path, "--", program])
    assert code == 2, stderr
    assert program in stderr
    assert not os.path.exists(sock_path)                  # nothing was bound
    assert not re.search(r"listening name=|worker (spawned|ready)|started name=", stderr), stderr


def installed_worker(directory):
    """A copy of http_worker.py that runs as a program of its own (shebang, mode 0755)."""
    with open(worker("http_worker.py")) as f:
        source = f.read().split("\n", 1)[1]
    return harness.write_file(directory, "server", "#!%s\n%s" % (PYTHON, source), mode=0o755)


@pytest.mark.parametrize("breakage", ["chmod-x", "deleted"])
def test_program_broken_after_start_is_retried_every_max_delay(start_clusterd, tmpdir_short,
                                                               breakage):
    program = installed_worker(tmpdir_short)
    backup = program + ".orig"
    shutil.copy2(program, backup)
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--log-level", "debug",
                               "--set", "restart.max_delay=1s", "--", program])
    address = clusterd.address()
    pids = clusterd.ready_pids(2)
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(pids), 10.0,
               "answers from both workers")
    [victim_line] = clusterd.matches(r"worker ready slot=(\d+) gen=1 pid=%d" % pids[0])
    slot = victim_line.group(1)
    survivor = pids[1]

    if breakage == "chmod-x":
        os.chmod(program, 0o644)
        expected_error = "Permission denied"
    else:
        os.unlink(program)
        expected_error = "No such file or directory"
    os.kill(pids[0], signal.SIGKILL)

    [failure] = clusterd.wait_for_log(CANNOT_EXECUTE)
    assert failure.group(1) == slot
    assert failure.group(2) == program
    assert failure.group(3) == "exec"
    assert failure.group(4) == expected_error
    assert harness.parse_duration(failure.group(5)) == 1.0
    assert "configuration problem" in failure.string
    failed_at = time.monotonic()

    # A measurement window, not synchronisation: 3 s of retrying, while the other worker serves.
    replies = []
    wait_until(lambda: replies.append(http_get(address)["pid"]) or
               time.monotonic() - failed_at >= 3.0, 15.0, "3 s of retries")
    assert set(replies) == {survivor}
    assert not clusterd.exited()

    attempts = clusterd.matches(CANNOT_EXECUTE)
    observed = time.time() - harness.log_time(attempts[0].string)
    # Retried about once a second (4 attempts in ~3 s), not in a loop; reported at error level
    # once, the retries quieter.
    assert 2 <= len(attempts) <= observed / 0.9 + 1, (observed, [m.string for m in attempts])
    assert [harness.log_level(m.string) for m in attempts].count("error") == 1
    times = [harness.log_time(m.string) for m in attempts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert clusterd.count(r"worker spawned slot=%s " % slot) <= 1 + len(attempts) + 1

    # Fixed: the slot serves again, and the log says so.
    if breakage == "chmod-x":
        os.chmod(program, 0o755)
    else:
        shutil.copy2(backup, program)
    line = clusterd.wait_for_log(r"worker ready slot=%s gen=1 pid=(\d+)" % slot, count=2)[1]
    replacement = int(line.group(1))
    clusterd.seen_pids.add(replacement)
    assert "worker program can be executed again" in clusterd.log()
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == {survivor, replacement},
               10.0, "answers from both workers again", describe=lambda: str(answered))
