"""`clusterd top`: a live view of the workers in a real terminal, a pane of a private tmux server
(harness.Terminal). It shows each worker's pid; its keys scale (+), reload (r) and restart a slot
(R, the slot, y), each seen both in clusterd (status, log) and on the screen; a resized window is
redrawn at its new size; q and Ctrl-C quit with the terminal as it was (its termios compared with
`stty -g`, the alternate screen left, the cursor shown); clusterd going away ends it with exit 1
and says so; without a terminal it refuses with exit 2.
"""
import contextlib
import os
import re
import subprocess

import harness
from harness import PYTHON, Terminal, wait_until, worker

# The footer top shows when no prompt is open (top_screen.h).
KEYS_HELP = "q quit  r reload  + one more  - one fewer  R restart a slot"

# Runs top, then says whether the terminal's settings are those it had before, and passes on
# top's exit status (Terminal shows it as exit=N).
CHECK_TTY = ('before=$(stty -g); "$@"; code=$?; '
             'if [ "$(stty -g)" = "$before" ]; then echo tty-restored; else echo tty-changed; fi; exit $code')


def start_http(start_clusterd, workers, tmpdir):
    clusterd = start_clusterd(["--workers", str(workers), "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")], tmpdir=tmpdir)
    clusterd.ready_pids(workers)
    return clusterd


@contextlib.contextmanager
def top_in_terminal(start_clusterd, workers, tmpdir):
    """clusterd with `workers` HTTP workers, and top in a 120x30 terminal once it shows them all."""
    clusterd = start_http(start_clusterd, workers, tmpdir)
    argv = ["/bin/sh", "-c", CHECK_TTY, "sh", harness.BIN, "top", "--interval", "200ms",
            "--control", clusterd.control_path()]
    terminal = Terminal(tmpdir, argv, 120, 30)
    try:
        shown = running(clusterd)
        terminal.wait_for_screen(lambda lines: shown_workers(lines) == shown, "every worker shown")
        yield clusterd, terminal
    finally:
        terminal.close()


def shown_workers(lines):
    """{(slot, pid)} of the status table's rows on the screen."""
    rows = (re.match(r"(\d+) +(\d+) +\d+ +\w+", line) for line in lines)
    return {(int(row.group(1)), int(row.group(2))) for row in rows if row}


def running(clusterd):
    """{(slot, pid)} of the workers clusterd's status lists."""
    return {(w["slot"], w["pid"]) for w in clusterd.status()["workers"] if w["pid"]}


def exit_of_top(terminal, expected):
    """Waits for top to exit with `expected`, then checks the terminal is as it was; returns the
    screen."""
    screens, code = terminal.watch_until_exit()
    screen = screens[-1]
    assert code == expected, screen
    assert "tty-restored" in screen, screen
    assert terminal.show("#{alternate_on}") == "0"
    assert terminal.show("#{cursor_flag}") == "1"
    # The shell's screen again, with nothing of top's on it.
    assert not any(line.startswith("SLOT") or KEYS_HELP in line for line in screen), screen
    return screen


def test_top_shows_the_workers_and_its_keys_scale_reload_and_restart(start_clusterd, tmpdir_short):
    with top_in_terminal(start_clusterd, 2, tmpdir_short) as (clusterd, terminal):
        screen = terminal.screen()
        assert re.match(r"\S+: pid %d, generation 1, 2/2 workers ready" % clusterd.pid, screen[0]), screen
        assert re.match(r"workers 2/2 ready, CPU \S+, memory \S+, 2 processes; reload: none$", screen[1]), screen
        assert screen[-1] == KEYS_HELP
        assert terminal.show("#{alternate_on}") == "1"

        # + : a third worker, in clusterd and on the screen.
        terminal.keys("+")
        terminal.wait_for_screen(lambda lines: "workers wanted: 3" in lines, "the scale's answer")
        clusterd.ready_pids(3)
        workers = running(clusterd)
        assert {slot for slot, _ in workers} == {0, 1, 2}
        terminal.wait_for_screen(lambda lines: shown_workers(lines) == workers, "the new worker shown")

        # r : every worker replaced by one of generation 2, and only those shown.
        terminal.keys("r")
        terminal.wait_for_screen(lambda lines: "reload finished: generation 2" in lines, "the reload's answer")
        assert clusterd.status()["generation"] == 2
        reloaded = running(clusterd)
        assert {pid for _, pid in reloaded}.isdisjoint({pid for _, pid in workers})
        clusterd.seen_pids.update(pid for _, pid in reloaded)
        terminal.wait_for_screen(lambda lines: shown_workers(lines) == reloaded, "the reloaded workers shown")

        # R 1 y : slot 1's worker replaced; the prompt shows what is typed.
        terminal.keys("R", "1")
        terminal.wait_for_screen(lambda lines: lines[-1].startswith("restart slot: 1_"), "the restart prompt")
        terminal.keys("y")
        terminal.wait_for_screen(lambda lines: "restarting slot 1" in lines, "the restart's answer")
        old = dict(reloaded)[1]
        new = int(clusterd.wait_for_log(r"worker ready slot=1 gen=2 pid=(\d+)", count=2)[-1].group(1))
        clusterd.seen_pids.add(new)
        wait_until(lambda: (1, old) not in running(clusterd), message="slot 1's old worker gone")
        terminal.wait_for_screen(lambda lines: (1, new) in shown_workers(lines) and (1, old) not in shown_workers(lines),
                                 "slot 1's new worker shown")

        terminal.keys("q")
        exit_of_top(terminal, 0)


def test_a_resized_window_is_redrawn_to_fit_and_ctrl_c_restores_the_terminal(start_clusterd, tmpdir_short):
    with top_in_terminal(start_clusterd, 2, tmpdir_short) as (clusterd, terminal):
        # Narrower: every line cut to 50 columns, the footer still on the last row.
        terminal.resize(50, 12)
        # tmux itself cuts what was on the screen to the new size; only top's redraw puts the
        # table back at the top, so that is what is waited for.
        screen = terminal.wait_for_screen(lambda lines: len(lines) == 12 and lines[3].startswith("SLOT"),
                                          "the screen redrawn at 50x12")
        assert screen[-1] == KEYS_HELP[:50], screen
        assert all(len(line) <= 50 for line in screen), screen
        assert screen[3].startswith("SLOT  PID") and len(screen[3]) == 50, screen
        assert shown_workers(screen) == running(clusterd)

        # Shorter than the table: the rows that do not fit are counted instead.
        terminal.resize(50, 6)
        screen = terminal.wait_for_screen(lambda lines: len(lines) == 6 and lines[3].startswith("... "),
                                          "the screen redrawn at 50x6")
        assert screen[3] == "... 3 more lines (a taller window shows them)", screen
        assert screen[-1] == KEYS_HELP[:50], screen

        terminal.keys("C-c")
        exit_of_top(terminal, 0)


def test_top_says_when_clusterd_goes_away_and_exits_1(start_clusterd, tmpdir_short):
    with top_in_terminal(start_clusterd, 1, tmpdir_short) as (clusterd, terminal):
        assert clusterd.stop() == 0
        screen = exit_of_top(terminal, 1)
        assert any(line.startswith("clusterd: top: clusterd went away: ") for line in screen), screen


def test_without_a_terminal_top_refuses_with_exit_2(start_clusterd, tmpdir_short):
    clusterd = start_http(start_clusterd, 1, tmpdir_short)
    advice = (" is not a terminal, and top draws a live view on one; for a snapshot use 'clusterd status' "
              "(or 'watch clusterd status', or 'clusterd status --json' in scripts)\n")
    code, out, err = clusterd.control("top")   # stdin /dev/null, stdout a pipe
    assert (code, out, err) == (2, "", "clusterd: top: stdin" + advice)

    # A terminal on stdin, but the output piped away.
    main, terminal = os.openpty()
    try:
        result = subprocess.run([harness.BIN, "top", "--control", clusterd.control_path()], stdin=terminal,
                                capture_output=True, text=True, timeout=10)
    finally:
        os.close(main)
        os.close(terminal)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "clusterd: top: stdout" + advice)
