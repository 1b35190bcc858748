"""clusterd's own log (operations.md, "Logs"): SIGUSR1 reopens `log.file` after logrotate moved it,
and does nothing when clusterd logs to stderr; under journald (stderr is the stream JOURNAL_STREAM
names) each line carries its sd-daemon priority prefix `<N>` instead of a timestamp, and only then.
"""
import os
import re
import signal

import pytest

import harness
from harness import LOG_LINE, wait_until

SLEEPER = ["/bin/sleep", "1000"]   # a worker that writes nothing, so the log holds clusterd's lines only


def read_lines(path):
    """The whole lines of a file (a line being written is left out until it ends)."""
    with open(path, errors="replace") as f:
        text = f.read()
    return text[:text.rfind("\n") + 1].splitlines()


def matches_in(path, pattern):
    """The match objects of pattern over the whole lines of a file."""
    regex = re.compile(pattern)
    return [m for m in map(regex.search, read_lines(path)) if m]


def messages(lines):
    """The text after "LEVEL clusterd[PID]: " of each line; a line of another shape fails the test."""
    texts = []
    for line in lines:
        match = LOG_LINE.match(line)
        assert match, "not a whole clusterd log line: %r" % line
        texts.append(match.group(3))
    return texts


# ---- log.file and SIGUSR1


def test_sigusr1_reopens_the_log_file_that_logrotate_moved_away(start_clusterd):
    # close_stdio: clusterd's log goes to --log-file, the harness's log_path.
    clusterd = start_clusterd(["--workers", "2", "--"] + SLEEPER, close_stdio=True)
    path = clusterd.log_path
    clusterd.ready_pids(2)
    control = ["--control", clusterd.control_path()]    # read now: the file is about to move
    rotated = path + ".1"

    os.rename(path, rotated)                            # logrotate: move, then signal
    # Until the signal, clusterd goes on writing to the file it holds, now named .1.
    assert clusterd.control("scale", "3", *control) == (0, "workers wanted: 3\n", "")
    [third] = wait_until(lambda: matches_in(rotated, r"worker ready slot=2 gen=1 pid=(\d+)"), 10.0,
                         "slot 2 ready, logged in the moved file", describe=lambda: "\n".join(read_lines(rotated)))
    clusterd.seen_pids.add(int(third.group(1)))
    assert not os.path.exists(path)

    clusterd.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), 10.0, "a new file at %s" % path,
               describe=lambda: "\n".join(read_lines(rotated)[-10:]))
    clusterd.wait_for_log(r"log file reopened path=%s$" % re.escape(path))
    assert clusterd.control("scale", "1", *control) == (0, "workers wanted: 1\n", "")
    clusterd.wait_for_log(r"worker stopped slot=[12] gen=1 ", count=2)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()

    old, new = messages(read_lines(rotated)), messages(read_lines(path))
    # The new file starts with the reopening and has everything after it...
    assert new[0] == "log file reopened path=%s" % path
    assert harness.log_level(read_lines(path)[0]) == "info"
    assert [m for m in new if m.startswith("scaling workers=1 from=3 by=control ")] and new[-1] == "stopped code=0"
    assert not [m for m in new if m.startswith(("started name=", "scaling workers=3"))]
    # ...and the moved one kept everything before it, the lines between move and signal included.
    assert [m for m in old if m.startswith("started name=sleep pid=%d " % clusterd.pid)]
    assert [m for m in old if m.startswith("scaling workers=3 ")]
    assert not [m for m in old if "reopen" in m or m.startswith("scaling workers=1 ") or m == "stopped code=0"]


def test_sigusr1_without_a_log_file_changes_nothing(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--"] + SLEEPER)
    [pid] = clusterd.ready_pids(1)
    clusterd.signal(signal.SIGUSR1)
    # The signalfd hands out pending signals lowest number first, so once SIGTTIN (21) has been
    # acted on, SIGUSR1 (10), sent before it, has been too.
    clusterd.signal(signal.SIGTTIN)
    clusterd.wait_for_log(r"scaling workers=2 from=1 by=SIGTTIN$")
    clusterd.ready_pids(2)
    # Not forwarded: sleep would have died of it (its default action).
    assert harness.pid_alive(pid)
    assert clusterd.count(r"worker exited") == 0
    assert [m for m in messages(clusterd.log().splitlines()) if "reopen" in m or "USR1" in m] == []
    assert clusterd.status()["workers_ready"] == 2


# ---- journald priority prefixes

# Execs clusterd with JOURNAL_STREAM set to the shell expression's value, as systemd sets it for a
# unit whose stderr is the journal: the "DEVICE:INODE" of that stream.
def journal_stream_wrapper(value):
    return ["/bin/sh", "-c", 'JOURNAL_STREAM=%s; export JOURNAL_STREAM; exec "$@"' % value, "sh"]


STDERR_STREAM = '"$(stat -L -c %d:%i /proc/self/fd/2)"'
# stderr's device with another inode: both numbers must match.
STDERR_DEVICE_OTHER_INODE = \
    '"$(stat -L -c %d /proc/self/fd/2):$(( $(stat -L -c %i /proc/self/fd/2) + 1 ))"'


def test_under_journald_lines_carry_priority_prefixes_and_no_timestamp(start_clusterd, tmpdir_short):
    command = 'command = ["/bin/sleep", "1000"]\n'
    config = harness.write_file(tmpdir_short, "c.toml", "workers = 1\n" + command)
    clusterd = start_clusterd(["-c", config, "--log-level", "debug"],
                              wrapper=journal_stream_wrapper(STDERR_STREAM))
    [pid] = clusterd.ready_pids(1)
    os.kill(pid, signal.SIGKILL)                        # a warning: a SIGKILL clusterd did not send
    clusterd.wait_for_log(r"worker exited slot=0 gen=1 pid=%d " % pid)
    clusterd.ready_pids(2)
    harness.write_file(tmpdir_short, "c.toml", 'workers = "many"\n' + command)
    code, out, err = clusterd.control("reload")         # errors: the reload is refused
    assert (code, out) == (1, ""), err
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()

    lines = clusterd.log().splitlines()
    # debug <7>, info <6>, warning <4>, error <3> (sd-daemon(3)); the journal adds the time itself.
    assert "<7>worker spawned slot=0 gen=1 pid=%d" % pid in lines
    assert "<6>started name=sleep pid=%d workers=1 command=/bin/sleep" % clusterd.pid in lines
    assert "<6>worker ready slot=0 gen=1 pid=%d sign=min_uptime" % pid in lines
    [killed] = [line for line in lines if line.startswith("<4>worker exited slot=0 gen=1 pid=%d " % pid)]
    assert killed.endswith(" (killed by SIGKILL that clusterd did not send: possibly out of memory)")
    assert '<3>reload refused: %s:1:11: workers: expected an integer 1-4096 or "auto", found "many"' \
        % config in lines
    assert "<3>reload refused: the configuration has 1 problem(s); the running workers keep serving" in lines
    assert lines[-1] == "<6>stopped code=0"
    # Every line, not just those: a prefix, then the message.
    assert [line for line in lines if not re.match(r"<[2-7]>\S", line)] == []


@pytest.mark.parametrize("stream", ["unset", "another-file", "same-device-other-inode", "not-a-stream"])
def test_without_journald_on_stderr_lines_are_timestamped_without_prefixes(start_clusterd, stream):
    if stream == "unset":
        wrapper = ["env", "-u", "JOURNAL_STREAM"]
    elif stream == "another-file":
        other = os.stat("/dev/null")
        wrapper = journal_stream_wrapper("%d:%d" % (other.st_dev, other.st_ino))
    elif stream == "same-device-other-inode":
        wrapper = journal_stream_wrapper(STDERR_DEVICE_OTHER_INODE)
    else:
        wrapper = journal_stream_wrapper("journal")
    clusterd = start_clusterd(["--workers", "1", "--"] + SLEEPER, wrapper=wrapper)
    clusterd.ready_pids(1)
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    lines = clusterd.log().splitlines()
    assert messages(lines)[-1] == "stopped code=0"      # each line: time, level, clusterd[PID]
    assert [line for line in lines if line.startswith("<")] == []
