"""Progress of `reload` and `stop` on a terminal: the client redraws one line in place on stderr
(slots replaced; workers left and the time before SIGKILL) and clears it before the final result.
With --json, or with output that is not a terminal, the output is only the final result, as
before.

The terminal is a pane of a private tmux server (its own socket in the test's directory; only that
server is ever killed). What a person sees is read with capture-pane; every byte the client wrote
to the terminal is kept with pipe-pane, so "drawn and then cleared" is checked exactly.
"""
import re

import harness
from harness import PYTHON, Terminal, http_get, wait_until, worker

# 3 s: long enough to watch the countdown, short enough for the suite.
GRACE = "3s"


def start_http(start_clusterd, tmpdir, *extra, worker_args=()):
    """Two HTTP workers, answering (so their signal handlers are in place)."""
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--grace", GRACE] + list(extra)
                              + ["--", PYTHON, worker("http_worker.py")] + list(worker_args), tmpdir=tmpdir)
    address = clusterd.address()
    pids = clusterd.ready_pids(2)
    answered = set()
    wait_until(lambda: answered.add(http_get(address)["pid"]) or answered == set(pids), 10.0,
               "answers from every worker", describe=lambda: str(answered))
    return clusterd


def run_in_terminal(clusterd, tmpdir, *args, columns=120):
    """Runs `clusterd ARGS --control PATH` in a terminal; returns (screens, exit code, bytes)."""
    terminal = Terminal(tmpdir, [harness.BIN] + list(args) + ["--control", clusterd.control_path()], columns)
    try:
        screens, code = terminal.watch_until_exit()
        return screens, code, terminal.written()
    finally:
        terminal.close()


def progress_lines(written, pattern):
    """The progress lines drawn in place ("\\r" LINE, then clear to the end of the line)."""
    return re.findall(rb"\r(" + pattern + rb")\x1b\[K", written)


def test_stop_on_a_terminal_counts_down_to_sigkill_then_says_stopped(start_clusterd, tmpdir_short):
    clusterd = start_http(start_clusterd, tmpdir_short, worker_args=["--ignore-term"])
    screens, code, written = run_in_terminal(clusterd, tmpdir_short, "stop")
    assert code == 0, clusterd.log_tail()
    shown = [line for screen in screens for line in screen
             if re.fullmatch(r"stopping: 2 workers left, SIGKILL in [0-3]\.\ds", line)]
    assert shown, "no countdown on the screen; screens: %r" % screens
    # The line was cleared before the result: nothing of it is left on the final screen.
    assert screens[-1] == ["stopped", "exit=0"]
    drawn = progress_lines(written, rb"stopping: [^\r\x1b]*")
    # Once SIGKILLed and until reaped, the workers are still left, with no SIGKILL to come: a
    # loaded machine lets a redraw fall in between.
    assert drawn and all(re.fullmatch(rb"stopping: 2 workers left(, SIGKILL in [0-3]\.\ds)?", line) for line in drawn), drawn
    assert written.endswith(b"\r\x1b[Kstopped\r\nexit=0\r\n"), written[-200:]
    assert clusterd.wait_exit() == 0
    assert clusterd.count(r"worker did not stop within grace; killing") == 2


def test_on_a_narrow_terminal_the_line_is_cut_so_it_never_wraps(start_clusterd, tmpdir_short):
    clusterd = start_http(start_clusterd, tmpdir_short, worker_args=["--ignore-term"])
    screens, code, written = run_in_terminal(clusterd, tmpdir_short, "stop", columns=30)
    assert code == 0, clusterd.log_tail()
    drawn = progress_lines(written, rb"stopping: [^\r\x1b]*")
    # 29 columns: some terminals wrap once the last column is written.
    assert drawn and all(line == b"stopping: 2 workers left, SIG" for line in drawn), drawn
    assert screens[-1] == ["stopped", "exit=0"]


def test_reload_on_a_terminal_counts_the_slots_replaced_then_says_finished(start_clusterd, tmpdir_short):
    # Each new worker is ready 1 s after it started: the reload takes a while to watch.
    clusterd = start_http(start_clusterd, tmpdir_short, "--ready", "1s")
    screens, code, written = run_in_terminal(clusterd, tmpdir_short, "reload")
    assert code == 0, clusterd.log_tail()
    shown = [line for screen in screens for line in screen
             if re.match(r"reloading to generation 2: [012]/2 slots replaced", line)]
    assert shown, "no progress on the screen; screens: %r" % screens
    assert screens[-1] == ["reload finished: generation 2", "exit=0"]
    drawn = progress_lines(written, rb"reloading [^\r\x1b]*")
    assert b"reloading to generation 2: 0/2 slots replaced" in drawn, drawn
    assert written.endswith(b"\r\x1b[Kreload finished: generation 2\r\nexit=0\r\n"), written[-200:]


def test_json_on_a_terminal_is_the_final_object_only(start_clusterd, tmpdir_short):
    clusterd = start_http(start_clusterd, tmpdir_short, "--ready", "1s")
    _, code, written = run_in_terminal(clusterd, tmpdir_short, "reload", "--json")
    assert code == 0, clusterd.log_tail()
    assert written == b'{"ok":true,"generation":2}\r\nexit=0\r\n'


def test_output_that_is_not_a_terminal_is_the_final_result_only(start_clusterd, tmpdir_short):
    clusterd = start_http(start_clusterd, tmpdir_short, "--ready", "1s", worker_args=["--ignore-term"])
    assert clusterd.control("reload") == (0, "reload finished: generation 2\n", "")
    assert clusterd.control("stop") == (0, "stopped\n", "")
    assert clusterd.wait_exit() == 0
