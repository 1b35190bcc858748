"""Broken invocations and config files: clusterd refuses them before anything starts (interface §1,
§2.2): exit 2, no worker, no socket, one diagnostic line per problem naming the file and line (or
the flag), the key, what was expected and what was found. `clusterd check` says the same.

Then `check` on good input: exit 0, prints TOML that `-c` reads back to the same output, flags
override the file, the repository's example config passes, and nothing is bound.

Tokens in the table, replaced in each case's own temp dir:
  @DIR@   the case's directory          @CFG@   @DIR@/clusterd.toml (the case's `toml` text)
  @PROG@  an executable that would create @DIR@/started if it ever ran as a worker
  @SOCK@  @DIR@/s.sock, a unix listener path that must not exist afterwards
"""
import os
import re
import signal
import socket
import subprocess
import tomllib

import pytest

import harness

SOCK_LISTEN = '\n[[listen]]\naddress = "unix:@SOCK@"\n'
LONG_UNIX_PATH = "/tmp/" + "a" * 110  # 115 bytes, over the 107 of sockaddr_un.sun_path


class Err:
    """One expected diagnostic line.

    origin: "file" (the config file, with `line`), "file-noline" (the file without a position: a
    missing key, an unreadable file), or the exact flag text the line starts with ("--set
    nosuch=1", "--workers", "command line"). key: the key the line names (None: none, e.g. a TOML
    syntax error). words: substrings the line must hold (what was expected, what was found).
    """

    def __init__(self, origin, line=None, key=None, words=()):
        self.origin, self.line, self.key, self.words = origin, line, key, list(words)

    def __repr__(self):
        return "Err(%r, line=%r, key=%r, words=%r)" % (self.origin, self.line, self.key, self.words)


class Case:
    def __init__(self, case_id, errors, toml, args, usage, bug, bug_in):
        self.id, self.errors, self.toml, self.args = case_id, errors, toml, args
        self.usage, self.bug, self.bug_in = usage, bug, bug_in


def case(case_id, errors, toml=None, args=None, usage=False, bug=None, bug_in=("run", "check")):
    """toml: the config file's text (None: no file). args: the command line after `clusterd`
    (default: -c @CFG@ when there is a file). usage: a command-line usage error, after whose
    line one hint line naming --help is allowed. bug: a known clusterd bug that makes the tests
    named in bug_in ("run", "check", "same") fail: they are strict xfails."""
    if args is None:
        args = ["-c", "@CFG@"] if toml is not None else []
    return Case(case_id, errors if isinstance(errors, list) else [errors], toml, args, usage, bug, bug_in)


def params(variant):
    """pytest params of BROKEN for one test variant, with the known bugs of that variant."""
    out = []
    for c in BROKEN:
        marks = ()
        if c.bug and variant in c.bug_in:
            marks = pytest.mark.xfail(strict=True, reason="clusterd bug: " + c.bug)
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


BROKEN = [
    # ---- TOML syntax
    case("syntax-error", Err("file", 2, None, []),
         toml='command = ["@PROG@"]\nworkers = = 2\n' + SOCK_LISTEN),
    case("syntax-unterminated-string", Err("file", 2, None, []),
         toml='command = ["@PROG@"]\nname = "shop\n' + SOCK_LISTEN),

    # ---- unknown keys
    case("unknown-top-level-key", Err("file", 2, "colour", ["unknown key", '"colour"']),
         toml='command = ["@PROG@"]\ncolour = "blue"\n' + SOCK_LISTEN),
    case("typo-key-suggestion", Err("file", 2, "worksers", ["unknown key", 'did you mean "workers"']),
         toml='command = ["@PROG@"]\nworksers = 2\n' + SOCK_LISTEN),
    case("typo-key-in-section", Err("file", 4, "restart.dealy", ["unknown key", '"restart.delay"']),
         toml='command = ["@PROG@"]\n\n[restart]\ndealy = "1s"\n' + SOCK_LISTEN),
    case("typo-section-restrat", Err("file", 3, "restrat", ["unknown key", 'did you mean "restart"']),
         toml='command = ["@PROG@"]\n\n[restrat]\ndelay = "1s"\n' + SOCK_LISTEN),
    case("unknown-listen-key", Err("file", 4, "listen[0].port", ["unknown key", '"port"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "unix:@SOCK@"\nport = 80\n'),

    # ---- wrong types
    case("workers-string-four", Err("file", 2, "workers", ['expected an integer 1-4096 or "auto"', '"four"']),
         toml='command = ["@PROG@"]\nworkers = "four"\n' + SOCK_LISTEN),
    case("command-string", Err("file", 1, "command", ["expected", "array", "found", "string", "@PROG@"]),
         toml='command = "@PROG@"\n' + SOCK_LISTEN),
    case("backlog-string", Err("file", 4, "listen[0].backlog", ["expected an integer", "found", '"x"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "unix:@SOCK@"\nbacklog = "x"\n'),
    case("env-value-integer", Err("file", 3, "env.PORT", ["expected a string", "found", "integer 8080"]),
         toml='command = ["@PROG@"]\n[env]\nPORT = 8080\n' + SOCK_LISTEN),
    case("multiplier-string", Err("file", 3, "restart.multiplier", ["expected a number", "found", '"2.0"']),
         toml='command = ["@PROG@"]\n[restart]\nmultiplier = "2.0"\n' + SOCK_LISTEN),

    # ---- worker counts
    case("workers-zero", Err("file", 2, "workers", ["expected an integer 1-4096", "found 0"]),
         toml='command = ["@PROG@"]\nworkers = 0\n' + SOCK_LISTEN),
    case("workers-negative", Err("file", 2, "workers", ["expected an integer 1-4096", "found -1"]),
         toml='command = ["@PROG@"]\nworkers = -1\n' + SOCK_LISTEN),
    case("workers-huge", Err("file", 2, "workers", ["expected an integer 1-4096", "found 5000"]),
         toml='command = ["@PROG@"]\nworkers = 5000\n' + SOCK_LISTEN),

    # ---- durations
    case("duration-word", Err("file", 3, "restart.delay", ["expected a duration", '"fast"']),
         toml='command = ["@PROG@"]\n[restart]\ndelay = "fast"\n' + SOCK_LISTEN),
    case("duration-string-without-unit", Err("file", 3, "restart.max_delay", ["expected a duration", '"10"']),
         toml='command = ["@PROG@"]\n[restart]\nmax_delay = "10"\n' + SOCK_LISTEN),
    case("duration-bare-integer", Err("file", 3, "restart.reset_after", ["expected a duration", "found", "5"]),
         toml='command = ["@PROG@"]\n[restart]\nreset_after = 5\n' + SOCK_LISTEN),
    case("duration-negative", Err("file", 3, "stop.grace", ["expected a duration", '"-1s"']),
         toml='command = ["@PROG@"]\n[stop]\ngrace = "-1s"\n' + SOCK_LISTEN),
    case("duration-unknown-unit", Err("file", 3, "restart.interval", ["expected a duration", '"1x"']),
         toml='command = ["@PROG@"]\n[restart]\ninterval = "1x"\n' + SOCK_LISTEN),
    case("max-delay-below-delay", Err("file", 4, "restart.max_delay", ["restart.delay", '"10s"', '"1s"']),
         toml='command = ["@PROG@"]\n[restart]\ndelay = "10s"\nmax_delay = "1s"\n' + SOCK_LISTEN),

    # ---- addresses
    case("address-port-out-of-range", Err("file", 3, "listen[0].address", ["expected a port 0-65535", '"99999"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "localhost:99999"\n'),
    case("address-host-name", Err("file", 3, "listen[0].address", ["expected", '"nohost"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "nohost:80"\n'),
    case("address-unclosed-bracket", Err("file", 3, "listen[0].address", ["expected [V6]:PORT", '"[::1"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "[::1"\n'),
    case("address-unix-empty", Err("file", 3, "listen[0].address", ["expected a path", "unix:"]),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "unix:"\n'),
    case("address-unix-path-too-long",
         Err("file", 3, "listen[0].address", ["%d bytes" % len(LONG_UNIX_PATH), "107"]),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "unix:%s"\n' % LONG_UNIX_PATH),
    case("address-flag-port-out-of-range",
         Err("--listen localhost:99999", None, "listen[0].address", ["expected a port 0-65535", "99999"]),
         args=["--listen", "localhost:99999", "@PROG@"]),

    # ---- listeners
    case("listener-duplicate-name",
         Err("file", 6, "listen[1].name", ["unique", '"web"']),
         toml='command = ["@PROG@"]\n[[listen]]\nname = "web"\naddress = "unix:@SOCK@"\n[[listen]]\n'
              'name = "web"\naddress = "127.0.0.1:0"\n'),
    case("listener-name-bad-characters",
         Err("file", 3, "listen[0].name", ["expected 1-64 characters of A-Za-z0-9._-", '"web server"']),
         toml='command = ["@PROG@"]\n[[listen]]\nname = "web server"\naddress = "unix:@SOCK@"\n'),
    case("listener-mode-on-tcp", Err("file", 4, "listen[0].mode", ["unix", '"127.0.0.1:0"']),
         toml='command = ["@PROG@"]\n[[listen]]\naddress = "127.0.0.1:0"\nmode = "0600"\n' + SOCK_LISTEN),

    # ---- placeholders
    case("placeholder-unknown", Err("file", 1, "command[2]", ["placeholder", "{port}"]),
         toml='command = ["@PROG@", "--port", "{port}"]\n' + SOCK_LISTEN),
    case("placeholder-unknown-listener", Err("file", 1, "command[1]", ["{fd:nope}"]),
         toml='command = ["@PROG@", "{fd:nope}"]\n' + SOCK_LISTEN),
    case("placeholder-unknown-in-program-args",
         Err("command line", None, "command[1]", ["placeholder", "{port}"]),
         args=["--listen", "unix:@SOCK@", "@PROG@", "{port}"]),

    # ---- environment
    case("env-reserved-listen-fds",
         Err("file", 3, "env.LISTEN_FDS", ["expected a variable that clusterd does not set", '"LISTEN_FDS"']),
         toml='command = ["@PROG@"]\n[env]\nLISTEN_FDS = "1"\n' + SOCK_LISTEN),
    case("env-reserved-clusterd-prefix",
         Err("file", 3, "env.CLUSTERD_X", ["expected a variable that clusterd does not set", '"CLUSTERD_X"']),
         toml='command = ["@PROG@"]\n[env]\nCLUSTERD_X = "1"\n' + SOCK_LISTEN),

    # ---- choices
    case("stop-signal-unknown", Err("file", 3, "stop.signal", ["expected a signal name", '"TERMINATE"']),
         toml='command = ["@PROG@"]\n[stop]\nsignal = "TERMINATE"\n' + SOCK_LISTEN),
    case("restart-policy-unknown",
         Err("file", 3, "restart.policy", ['"always"', '"on-failure"', '"never"', 'found "sometimes"']),
         toml='command = ["@PROG@"]\n[restart]\npolicy = "sometimes"\n' + SOCK_LISTEN),
    case("log-level-unknown", Err("file", 3, "log.level", ['"debug"', '"error"', 'found "verbose"']),
         toml='command = ["@PROG@"]\n[log]\nlevel = "verbose"\n' + SOCK_LISTEN),

    # ---- the program
    case("program-missing", Err("command line", None, "command", ["@DIR@/nope", "No such file"]),
         args=["--listen", "unix:@SOCK@", "@DIR@/nope"]),
    case("program-missing-in-path", Err("command line", None, "command", ["no-such-program-xyz", "PATH"]),
         args=["--listen", "unix:@SOCK@", "no-such-program-xyz"]),
    case("program-missing-in-file", Err("file", 1, "command", ["@DIR@/nope", "No such file"]),
         toml='command = ["@DIR@/nope"]\n' + SOCK_LISTEN),
    case("program-not-executable", Err("command line", None, "command", ["@DIR@/plain.txt", "Permission denied"]),
         args=["--listen", "unix:@SOCK@", "@DIR@/plain.txt"]),
    case("program-is-a-directory", Err("command line", None, "command", ["@DIR@/subdir"]),
         args=["--listen", "unix:@SOCK@", "@DIR@/subdir"]),
    case("command-missing-in-file", Err("file-noline", None, "command", ["expected", "found nothing"]),
         toml='workers = 2\n' + SOCK_LISTEN),
    case("command-missing-everywhere", Err("command line", None, "command", ["expected PROGRAM"]),
         args=["--listen", "unix:@SOCK@", "--workers", "2"]),
    case("command-empty-array", Err("file", 1, "command", ["expected a non-empty array", "found"]),
         toml='command = []\n' + SOCK_LISTEN),

    # ---- the config file itself
    case("config-file-missing", Err("@DIR@/missing.toml", None, None, ["No such file or directory"]),
         args=["-c", "@DIR@/missing.toml", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("config-file-is-a-directory", Err("@DIR@/subdir", None, None, ["Is a directory"]),
         args=["-c", "@DIR@/subdir", "--listen", "unix:@SOCK@", "@PROG@"]),

    # ---- flags
    case("flag-workers-abc", Err("--workers", None, "workers", ["expected an integer 1-4096", "abc"]),
         args=["--workers", "abc", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-workers-zero-short", Err("--workers", None, "workers", ["expected an integer 1-4096", "0"]),
         args=["-w", "0", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-bare-duration",
         Err("--set restart.delay=5", None, "restart.delay", ["expected a duration with a unit", "found 5"]),
         args=["--set", "restart.delay=5", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-unknown-key", Err("--set nosuch=1", None, "nosuch", ["unknown key", '"nosuch"']),
         args=["--set", "nosuch=1", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-listen", Err("--set listen.address=x", None, "listen.address", ["--listen"]),
         args=["--set", "listen.address=x", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-without-equals", Err("--set restart.delay", None, None, ["expected KEY=VALUE"]),
         args=["--set", "restart.delay", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-grace-bare-number", Err("--grace", None, "stop.grace", ["expected a duration", "5"]),
         args=["--grace", "5", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-stop-signal-unknown", Err("--stop-signal", None, "stop.signal", ["expected a signal name", "FOO"]),
         args=["--stop-signal", "FOO", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-log-level-unknown", Err("--log-level", None, "log.level", ['"info"', "loud"]),
         args=["--log-level", "loud", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-env-reserved",
         Err("--set env.CLUSTERD_WORKER_ID=7", None, "env.CLUSTERD_WORKER_ID",
             ["expected a variable that clusterd does not set or remove", '"CLUSTERD_WORKER_ID"']),
         args=["--set", "env.CLUSTERD_WORKER_ID=7", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-env-reserved-with-file",  # the flag is named, not the file
         Err("--set env.LISTEN_FDS=1", None, "env.LISTEN_FDS", ['"LISTEN_FDS"']),
         toml='command = ["@PROG@"]\n' + SOCK_LISTEN, args=["-c", "@CFG@", "--set", "env.LISTEN_FDS=1"]),
    case("flag-set-env-bad-name", Err("--set env.9x=1", None, "env.9x", ["expected a variable name", '"9x"']),
         args=["--set", "env.9x=1", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-empty-name", Err("--set name=", None, "name", ["expected 1-64 characters", 'found ""']),
         args=["--set", "name=", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-name-bad-characters", Err("--name", None, "name", ["A-Za-z0-9._-", "a b"]),
         args=["--name", "a b", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-missing-value", Err("--workers", None, None, ["expected a value"]), usage=True,
         args=["--listen", "unix:@SOCK@", "--workers"]),
    case("flag-config-missing-value", Err("--config", None, None, ["expected a value"]), usage=True,
         args=["--listen", "unix:@SOCK@", "-c"]),
    case("flag-unknown-option", Err("--frobnicate", None, None, ["unknown option"]), usage=True,
         args=["--frobnicate", "--listen", "unix:@SOCK@", "@PROG@"]),

    # ---- what a start needs beyond the file's syntax
    case("directory-missing", Err("file", 2, "directory", ["expected an existing directory", '"@DIR@/nowhere"']),
         toml='command = ["@PROG@"]\ndirectory = "@DIR@/nowhere"\n' + SOCK_LISTEN),
    case("user-unknown", Err("file", 2, "user", ["unknown user", '"no-such-user-xyz"']),
         toml='command = ["@PROG@"]\nuser = "no-such-user-xyz"\n' + SOCK_LISTEN),
    case("user-and-group-unknown", [
        Err("file", 2, "user", ["unknown user", '"no-such-user-xyz"']),
        Err("file", 3, "group", ["unknown group", '"no-such-group-xyz"']),
    ], toml='command = ["@PROG@"]\nuser = "no-such-user-xyz"\ngroup = "no-such-group-xyz"\n' + SOCK_LISTEN),
    case("log-file-cannot-be-opened",
         Err("--log-file", None, "log.file", ["@DIR@/plain.txt/clusterd.log", "Not a directory"]),
         args=["--log-file", "@DIR@/plain.txt/clusterd.log", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("log-file-in-missing-directory",
         Err("file", 3, "log.file", ["@DIR@/logs/clusterd.log", "No such file or directory"]),
         toml='command = ["@PROG@"]\n[log]\nfile = "@DIR@/logs/clusterd.log"\n' + SOCK_LISTEN),
    case("log-file-is-a-directory", Err("file", 3, "log.file", ["@DIR@/subdir", "Is a directory"]),
         toml='command = ["@PROG@"]\n[log]\nfile = "@DIR@/subdir"\n' + SOCK_LISTEN),
    case("program-is-a-directory-in-file", Err("file", 1, "command", ['"@DIR@/subdir"', "is a directory"]),
         toml='command = ["@DIR@/subdir"]\n' + SOCK_LISTEN),
    case("program-not-executable-in-file", Err("file", 1, "command", ["@DIR@/plain.txt", "Permission denied"]),
         toml='command = ["@DIR@/plain.txt"]\n' + SOCK_LISTEN),
    case("program-relative-to-missing-directory",  # only the directory: the program depends on it
         Err("file", 2, "directory", ["expected an existing directory", '"@DIR@/nowhere"']),
         toml='command = ["./marker.sh"]\ndirectory = "@DIR@/nowhere"\n' + SOCK_LISTEN),
    case("program-relative-to-directory-missing-there",
         Err("file", 1, "command", ['"./marker.sh"', "No such file"]),
         toml='command = ["./marker.sh"]\ndirectory = "@DIR@/subdir"\n' + SOCK_LISTEN),
    case("flag-set-directory-missing",
         Err("--set directory=@DIR@/nowhere", None, "directory", ["expected an existing directory"]),
         args=["--set", "directory=@DIR@/nowhere", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-group-unknown",
         Err("--set group=no-such-group-xyz", None, "group", ["unknown group", '"no-such-group-xyz"']),
         args=["--set", "group=no-such-group-xyz", "--listen", "unix:@SOCK@", "@PROG@"]),

    # ---- readiness, reload, recycle (interface §2.1, §2.4, §2.5)
    case("ready-mode-sometimes",
         Err("file", 3, "ready.mode", ['"exec"', '"notify"', "a duration with a unit", 'found "sometimes"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "sometimes"\n' + SOCK_LISTEN),
    case("ready-mode-integer",
         Err("file", 3, "ready.mode", ['"exec"', '"notify"', "a duration", "found integer 2"]),
         toml='command = ["@PROG@"]\n[ready]\nmode = 2\n' + SOCK_LISTEN),
    case("ready-mode-zero-duration", Err("file", 3, "ready.mode", ["a duration greater than 0", 'found "0s"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "0s"\n' + SOCK_LISTEN),
    case("ready-mode-negative-duration", Err("file", 3, "ready.mode", ["a duration with a unit", '"-2s"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "-2s"\n' + SOCK_LISTEN),
    case("ready-mode-not-shorter-than-timeout",
         Err("file", 3, "ready.mode", ['shorter than ready.timeout ("10s")', 'found "30s"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "30s"\ntimeout = "10s"\n' + SOCK_LISTEN),
    case("ready-timeout-zero", Err("file", 3, "ready.timeout", ["a duration greater than 0", 'found "0s"']),
         toml='command = ["@PROG@"]\n[ready]\ntimeout = "0s"\n' + SOCK_LISTEN),
    case("ready-timeout-negative", Err("file", 3, "ready.timeout", ["expected a duration", '"-5s"']),
         toml='command = ["@PROG@"]\n[ready]\ntimeout = "-5s"\n' + SOCK_LISTEN),
    case("ready-timeout-bare-integer", Err("file", 3, "ready.timeout", ["expected a duration", "integer 60"]),
         toml='command = ["@PROG@"]\n[ready]\ntimeout = 60\n' + SOCK_LISTEN),
    case("ready-watchdog-without-notify-default-mode",
         Err("file", 3, "ready.watchdog", ['only allowed with ready.mode = "notify"',
                                           'found ready.mode = "auto" (the default)']),
         toml='command = ["@PROG@"]\n[ready]\nwatchdog = "10s"\n' + SOCK_LISTEN),
    case("ready-watchdog-with-uptime-mode",
         Err("file", 4, "ready.watchdog", ['only allowed with ready.mode = "notify"', 'found ready.mode = "2s"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "2s"\nwatchdog = "10s"\n' + SOCK_LISTEN),
    case("ready-watchdog-zero", Err("file", 4, "ready.watchdog", ["a duration greater than 0", '"0s"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "notify"\nwatchdog = "0s"\n' + SOCK_LISTEN),
    case("ready-as-a-string", Err("file", 2, "ready", ["expected a table [ready]", 'string "notify"']),
         toml='command = ["@PROG@"]\nready = "notify"\n' + SOCK_LISTEN),
    case("reload-batch-zero", Err("file", 3, "reload.batch", ["expected an integer 1-4096", "found 0"]),
         toml='command = ["@PROG@"]\n[reload]\nbatch = 0\n' + SOCK_LISTEN),
    case("reload-batch-huge", Err("file", 3, "reload.batch", ["expected an integer 1-4096", "found 5000"]),
         toml='command = ["@PROG@"]\n[reload]\nbatch = 5000\n' + SOCK_LISTEN),
    case("reload-batch-string", Err("file", 3, "reload.batch", ["expected an integer 1-4096", 'string "2"']),
         toml='command = ["@PROG@"]\n[reload]\nbatch = "2"\n' + SOCK_LISTEN),
    case("recycle-max-rss-bare-number",
         Err("file", 3, "recycle.max_rss", ["expected a size with a unit KiB, MiB or GiB",
                                            "found integer 536870912"]),
         toml='command = ["@PROG@"]\n[recycle]\nmax_rss = 536870912\n' + SOCK_LISTEN),
    case("recycle-max-rss-string-without-unit",
         Err("file", 3, "recycle.max_rss", ["expected a size with a unit", 'found "512"']),
         toml='command = ["@PROG@"]\n[recycle]\nmax_rss = "512"\n' + SOCK_LISTEN),
    case("recycle-max-rss-decimal-unit", Err("file", 3, "recycle.max_rss", ["expected a size", 'found "512MB"']),
         toml='command = ["@PROG@"]\n[recycle]\nmax_rss = "512MB"\n' + SOCK_LISTEN),
    case("recycle-max-rss-zero", Err("file", 3, "recycle.max_rss", ["a size greater than 0", 'found "0MiB"']),
         toml='command = ["@PROG@"]\n[recycle]\nmax_rss = "0MiB"\n' + SOCK_LISTEN),
    case("recycle-max-lifetime-negative",
         Err("file", 3, "recycle.max_lifetime", ["expected a duration", '"-24h"']),
         toml='command = ["@PROG@"]\n[recycle]\nmax_lifetime = "-24h"\n' + SOCK_LISTEN),
    case("recycle-max-lifetime-zero",
         Err("file", 3, "recycle.max_lifetime", ["a duration greater than 0", '"0s"']),
         toml='command = ["@PROG@"]\n[recycle]\nmax_lifetime = "0s"\n' + SOCK_LISTEN),
    case("recycle-check-interval-zero",
         Err("file", 3, "recycle.check_interval", ["a duration greater than 0", '"0ms"']),
         toml='command = ["@PROG@"]\n[recycle]\ncheck_interval = "0ms"\n' + SOCK_LISTEN),
    case("recycle-key-misplaced", Err("file", 3, "recycle.batch", ["unknown key", 'did you mean "reload.batch"']),
         toml='command = ["@PROG@"]\n[recycle]\nbatch = 2\n' + SOCK_LISTEN),
    case("flag-ready-sometimes",
         Err("--ready", None, "ready.mode", ['"exec"', '"notify"', "a duration", "found sometimes"]),
         args=["--ready", "sometimes", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-ready-timeout-bare-number",
         Err("--ready-timeout", None, "ready.timeout", ["expected a duration with a unit", "found 60"]),
         args=["--ready-timeout", "60", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-ready-timeout-negative", Err("--ready-timeout", None, "ready.timeout", ["expected a duration", "-1s"]),
         args=["--ready-timeout", "-1s", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-ready-missing-value", Err("--ready", None, None, ["expected a value"]), usage=True,
         args=["--listen", "unix:@SOCK@", "--ready"]),
    case("flag-set-max-rss-bare-number",
         Err("--set recycle.max_rss=64", None, "recycle.max_rss", ["expected a size with a unit", "found 64"]),
         args=["--set", "recycle.max_rss=64", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-reload-batch-zero",
         Err("--set reload.batch=0", None, "reload.batch", ["expected an integer 1-4096", "found 0"]),
         args=["--set", "reload.batch=0", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-set-watchdog-without-notify",
         Err("--set ready.watchdog=5s", None, "ready.watchdog", ['only allowed with ready.mode = "notify"']),
         args=["--set", "ready.watchdog=5s", "--listen", "unix:@SOCK@", "@PROG@"]),
    case("flag-ready-exec-turns-the-files-watchdog-into-an-error",  # reported at the file's watchdog
         Err("file", 4, "ready.watchdog", ['only allowed with ready.mode = "notify"', 'found ready.mode = "exec"']),
         toml='command = ["@PROG@"]\n[ready]\nmode = "notify"\nwatchdog = "10s"\n' + SOCK_LISTEN,
         args=["-c", "@CFG@", "--ready", "exec"]),
    case("ready-reload-recycle-errors-in-file-order", [
        Err("file", 3, "ready.timeout", ['found "0s"']),
        Err("file", 4, "ready.watchdog", ['only allowed with ready.mode = "notify"']),
        Err("file", 6, "reload.batch", ["found 0"]),
        Err("file", 8, "recycle.max_lifetime", ['"-1h"']),
        Err("file", 9, "recycle.max_rss", ["found integer 64"]),
        Err("--set recycle.check_interval=10", None, "recycle.check_interval", ["found 10"]),
    ], toml=('command = ["@PROG@"]\n'   # 1
             '[ready]\n'                 # 2
             'timeout = "0s"\n'          # 3
             'watchdog = "1s"\n'         # 4
             '[reload]\n'                # 5
             'batch = 0\n'               # 6
             '[recycle]\n'               # 7
             'max_lifetime = "-1h"\n'    # 8
             'max_rss = 64\n'            # 9
             + SOCK_LISTEN),
        args=["-c", "@CFG@", "--set", "recycle.check_interval=10"]),

    # ---- several problems: every one reported, one line each, in file order
    case("several-errors-in-file-order", [
        Err("file", 2, "workers", ["expected an integer 1-4096", "found 0"]),
        Err("file", 3, "nmae", ["unknown key", 'did you mean "name"']),
        Err("file", 6, "listen[0].address", ["expected a port 0-65535", '"70000"']),
        Err("file", 7, "listen[0].backlog", ["expected an integer", "found 0"]),
        Err("file", 10, "restart.delay", ["expected a duration", '"fast"']),
        Err("file", 11, "restart.policy", ['found "sometimes"']),
        Err("file", 14, "stop.signal", ['"NOPE"']),
        Err("file", 17, "env.LISTEN_PID", ['"LISTEN_PID"']),
        Err("file", 20, "log.level", ['found "loud"']),
    ], toml=('command = ["@PROG@"]\n'          # 1
             'workers = 0\n'                   # 2
             'nmae = "shop"\n'                 # 3
             '\n'                              # 4
             '[[listen]]\n'                    # 5
             'address = "127.0.0.1:70000"\n'   # 6
             'backlog = 0\n'                   # 7
             '\n'                              # 8
             '[restart]\n'                     # 9
             'delay = "fast"\n'                # 10
             'policy = "sometimes"\n'          # 11
             '\n'                              # 12
             '[stop]\n'                        # 13
             'signal = "NOPE"\n'               # 14
             '\n'                              # 15
             '[env]\n'                         # 16
             'LISTEN_PID = "1"\n'              # 17
             '\n'                              # 18
             '[log]\n'                         # 19
             'level = "loud"\n'                # 20
             + SOCK_LISTEN)),
    case("file-error-and-missing-directory", [
        Err("file", 2, "workers", ["found 0"]),
        Err("file", 3, "directory", ['"@DIR@/nowhere"']),
    ], toml='command = ["@PROG@"]\nworkers = 0\ndirectory = "@DIR@/nowhere"\n' + SOCK_LISTEN),
    case("every-host-problem-with-the-others", [
        Err("file", 2, "name", ["A-Za-z0-9._-", '"a b"']),
        Err("file", 3, "user", ["unknown user", '"no-such-user-xyz"']),
        Err("file", 4, "group", ["unknown group", '"no-such-group-xyz"']),
        Err("file", 6, "restart.delay", ["expected a duration"]),
        Err("file", 8, "log.file", ["@DIR@/plain.txt/x.log", "Not a directory"]),
        Err("--workers", None, "workers", ["found 0"]),
        Err("command line", None, "command", ["@DIR@/nope", "No such file"]),
    ], toml=('command = ["@PROG@"]\n'                # 1
             'name = "a b"\n'                        # 2
             'user = "no-such-user-xyz"\n'           # 3
             'group = "no-such-group-xyz"\n'         # 4
             '[restart]\n'                           # 5
             'delay = 5\n'                           # 6
             '[log]\n'                               # 7
             'file = "@DIR@/plain.txt/x.log"\n'      # 8
             + SOCK_LISTEN),
        args=["-c", "@CFG@", "--workers", "0", "@DIR@/nope"]),
    case("file-and-flag-errors", [
        Err("file", 2, "workers", ["found 0"]),
        Err("--set restart.delay=5", None, "restart.delay", ["found 5"]),
    ], toml='command = ["@PROG@"]\nworkers = 0\n' + SOCK_LISTEN,
        args=["-c", "@CFG@", "--set", "restart.delay=5"]),
]

# Lines that say something started: a listener bound, a worker spawned.
STARTED = re.compile(r"listening name=|\bworker \w+ slot=|\bstarted name=")


def prepare(directory, toml, args):
    """Writes the case's files into `directory`; returns (argv, substitutions)."""
    subst = {
        "@DIR@": directory,
        "@CFG@": os.path.join(directory, "clusterd.toml"),
        "@PROG@": os.path.join(directory, "marker.sh"),
        "@SOCK@": os.path.join(directory, "s.sock"),
    }

    def fill(text):
        for token, value in subst.items():
            text = text.replace(token, value)
        return text

    with open(subst["@PROG@"], "w") as f:
        f.write('#!/bin/sh\n: > "%s/started"\nexec sleep 30\n' % directory)
    os.chmod(subst["@PROG@"], 0o755)
    with open(os.path.join(directory, "plain.txt"), "w") as f:
        f.write("#!/bin/sh\n: > '%s/started'\n" % directory)
    os.chmod(os.path.join(directory, "plain.txt"), 0o644)
    os.mkdir(os.path.join(directory, "subdir"))
    if toml is not None:
        with open(subst["@CFG@"], "w") as f:
            f.write(fill(toml))
    return [fill(a) for a in args], fill


def run(argv, cwd, timeout=10.0):
    """Runs clusterd in its own session; if it does not exit in time (it started something it
    should not have), kills its process group. Returns (code, stdout, stderr, timed_out)."""
    env = dict(os.environ)
    for name in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "XDG_RUNTIME_DIR", "INVOCATION_ID"):
        env.pop(name, None)
    # A run that got as far as its control socket opens it in the case's own directory, never
    # in /run/clusterd beside another instance's.
    env["RUNTIME_DIRECTORY"] = cwd
    process = subprocess.Popen([harness.BIN] + argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err, False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return process.returncode, out, err, True


def assert_diagnostics(stderr, errors, fill, cfg, usage):
    lines = stderr.splitlines()
    context = "stderr was:\n" + stderr
    assert "terminate called" not in stderr and "what():" not in stderr, context
    assert not [l for l in lines if STARTED.search(l)], context
    problem_lines = lines
    if usage and len(lines) == len(errors) + 1 and "--help" in lines[-1]:
        problem_lines = lines[:-1]  # the usual "run clusterd --help" hint after a usage error
    assert len(problem_lines) == len(errors), "expected %d diagnostic line(s) %r\n%s" % (
        len(errors), errors, context)
    for line, error in zip(problem_lines, errors):
        if error.origin == "file":
            prefix = r"%s:%d:\d+: " % (re.escape(cfg), error.line)
        elif error.origin == "file-noline":
            prefix = re.escape(cfg + ": ")
        elif usage:
            # A usage error found by the option parser: the line names the option somewhere.
            prefix = r".*(?<![\w-])%s(?![\w-])" % re.escape(fill(error.origin))
        else:
            prefix = re.escape(fill(error.origin) + ": ")
        if error.key is not None:
            prefix += re.escape(error.key + ": ")
        match = re.match(prefix, line)
        assert match, "line %r does not start with /%s/\n%s" % (line, prefix, context)
        assert line[match.end():].strip(), "line %r says nothing after its prefix\n%s" % (line, context)
        for word in error.words:
            assert fill(word) in line, "%r not in %r\n%s" % (fill(word), line, context)


def assert_refused_before_anything_starts(directory, c, subcommand):
    argv, fill = prepare(directory, c.toml, c.args)
    if subcommand == "check":
        argv = ["check"] + argv
    code, out, err, timed_out = run(argv, cwd=directory)
    context = "clusterd %s\nexit %r\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), code, out, err)
    assert not timed_out, "clusterd kept running\n" + context
    assert code == 2, context
    assert not os.path.exists(os.path.join(directory, "started")), "a worker ran\n" + context
    assert not os.path.exists(os.path.join(directory, "s.sock")), "a socket was bound\n" + context
    if subcommand == "check":
        assert out == "", "check printed a config for broken input\n" + context
    assert_diagnostics(err, c.errors, fill, os.path.join(directory, "clusterd.toml"), c.usage)


@pytest.mark.parametrize("c", params("run"))
def test_start_refuses_broken_input(tmpdir_short, c):
    assert_refused_before_anything_starts(tmpdir_short, c, "run")


@pytest.mark.parametrize("c", params("check"))
def test_check_refuses_broken_input(tmpdir_short, c):
    assert_refused_before_anything_starts(tmpdir_short, c, "check")


@pytest.mark.parametrize("c", params("same"))
def test_check_gives_the_same_diagnostics_as_a_start(tmpdir_short, c):
    argv, _ = prepare(tmpdir_short, c.toml, c.args)
    started = run(argv, cwd=tmpdir_short)
    checked = run(["check"] + argv, cwd=tmpdir_short)
    assert (checked[0], checked[2]) == (started[0], started[2])


def test_broken_input_table_is_big_enough():
    assert len(BROKEN) >= 35


def test_log_file_checks_create_nothing(tmpdir_short):
    # spdlog's file sink would create missing parent directories; the check before it must not,
    # and `check` must not create the log file either.
    argv, fill = prepare(tmpdir_short, None, ["--log-file", "@DIR@/logs/clusterd.log", "@PROG@"])
    for args in (argv, ["check"] + argv):
        code, out, err, timed_out = run(args, cwd=tmpdir_short)
        assert not timed_out and code == 2, err
        assert not os.path.exists(fill("@DIR@/logs")), err
    code, out, err = check(["--log-file", os.path.join(tmpdir_short, "new.log"), fill("@PROG@")], tmpdir_short)
    assert (code, err) == (0, ""), err
    assert not os.path.exists(os.path.join(tmpdir_short, "new.log"))


# ---------------------------------------------------------------------------------------------
# check on good input

GOOD = """\
name = "shop"
workers = 2
command = ["@PROG@", "--fd", "{fd:http}", "--slot", "{worker_id}", "{{literal}"]
directory = "@DIR@"

[[listen]]
name = "http"
address = "127.0.0.1:0"
backlog = 128

[[listen]]
name = "admin"
address = "unix:@SOCK@"
mode = "0600"

[[listen]]
address = "[::1]:0"
ipv6_only = false

[env]
APP_ENV = "production"
"WITH_SPACE" = "a b \\"quoted\\""

[restart]
policy = "on-failure"
delay = "250ms"
max_delay = "1m30s"
multiplier = 1.5
reset_after = "1h"
burst = 10
interval = "2m"

[ready]
mode = "notify"
timeout = "90s"
watchdog = "10s"

[stop]
signal = "INT"
grace = "0s"

[reload]
batch = 2

[recycle]
max_lifetime = "24h"
max_rss = "1024MiB"
check_interval = "30s"

[log]
level = "debug"
file = "@DIR@/clusterd.log"
"""


def check(args, cwd):
    code, out, err, timed_out = run(["check"] + args, cwd=cwd)
    assert not timed_out, err
    return code, out, err


def test_check_prints_toml_that_check_accepts_again_unchanged(tmpdir_short):
    argv, fill = prepare(tmpdir_short, GOOD, ["-c", "@CFG@"])
    code, printed, err = check(argv, tmpdir_short)
    assert (code, err) == (0, ""), err
    parsed = tomllib.loads(printed)
    assert parsed["name"] == "shop"
    assert parsed["workers"] == 2
    assert parsed["command"] == [fill("@PROG@"), "--fd", "{fd:http}", "--slot", "{worker_id}", "{{literal}"]
    assert parsed["directory"] == tmpdir_short
    assert [(l.get("name"), l["address"]) for l in parsed["listen"]] == [
        ("http", "127.0.0.1:0"), ("admin", "unix:" + fill("@SOCK@")), ("fd5", "[::1]:0")]
    assert parsed["listen"][0]["backlog"] == 128
    assert parsed["listen"][1]["mode"] == "0600"
    assert parsed["listen"][2]["ipv6_only"] is False
    assert parsed["env"] == {"APP_ENV": "production", "WITH_SPACE": 'a b "quoted"'}
    assert parsed["restart"]["policy"] == "on-failure"
    assert parsed["restart"]["multiplier"] == 1.5
    assert parsed["restart"]["burst"] == 10
    assert parsed["stop"]["signal"] == "INT"
    assert parsed["log"]["level"] == "debug"
    assert parsed["log"]["file"] == fill("@DIR@/clusterd.log")
    assert parsed["ready"] == {"mode": "notify", "timeout": "1m30s", "watchdog": "10s"}
    assert parsed["reload"] == {"batch": 2}
    assert parsed["recycle"] == {"max_lifetime": "24h", "max_rss": "1GiB", "check_interval": "30s"}

    again_path = os.path.join(tmpdir_short, "printed.toml")
    with open(again_path, "w") as f:
        f.write(printed)
    code, again, err = check(["-c", again_path], tmpdir_short)
    assert (code, err) == (0, ""), err
    assert again == printed
    assert not os.path.exists(os.path.join(tmpdir_short, "started"))
    assert not os.path.exists(fill("@SOCK@"))


def test_check_of_defaults_round_trips(tmpdir_short):
    argv, _ = prepare(tmpdir_short, None, ["@PROG@"])
    code, printed, err = check(argv, tmpdir_short)
    assert (code, err) == (0, ""), err
    parsed = tomllib.loads(printed)
    assert parsed["workers"] == "auto"
    assert parsed["name"] == "marker.sh"
    assert parsed.get("listen", []) == []
    assert parsed["restart"] == {"policy": "always", "delay": "100ms", "max_delay": "30s", "multiplier": 2.0,
                                 "reset_after": "30s", "interval": "1m"}
    assert parsed["stop"] == {"signal": "TERM", "grace": "30s"}
    assert parsed["log"] == {"level": "info"}
    # Unset keys (watchdog, max_lifetime, max_rss) are comments: the sections hold only the rest.
    assert parsed["ready"] == {"mode": "auto", "min_uptime": "1s", "timeout": "1m"}
    assert parsed["reload"] == {"batch": 1}
    assert parsed["recycle"] == {"check_interval": "10s"}
    assert "# watchdog: unset (off)" in printed and "# max_rss: unset (off)" in printed
    again_path = os.path.join(tmpdir_short, "printed.toml")
    with open(again_path, "w") as f:
        f.write(printed)
    code, again, err = check(["-c", again_path], tmpdir_short)
    assert (code, err, again) == (0, "", printed)


def test_repository_example_config_passes_check():
    example = os.path.join(harness.SOURCE_DIR, "config", "clusterd.toml")
    assert os.path.isfile(example), "the documented example config %s is missing" % example
    code, printed, err = check(["-c", example], harness.SOURCE_DIR)
    assert (code, err) == (0, ""), err
    tomllib.loads(printed)


def test_flags_override_the_file_in_the_effective_config(tmpdir_short):
    toml = ('workers = 2\ncommand = ["@PROG@"]\n'
            '[[listen]]\nname = "a"\naddress = "127.0.0.1:0"\n'
            '[[listen]]\nname = "b"\naddress = "unix:@SOCK@"\n'
            '[stop]\ngrace = "30s"\nsignal = "TERM"\n[restart]\ndelay = "1s"\n[log]\nlevel = "info"\n')
    argv, fill = prepare(tmpdir_short, toml, ["-c", "@CFG@"])
    code, printed, err = check(argv, tmpdir_short)
    assert (code, err) == (0, ""), err
    base = tomllib.loads(printed)
    assert base["workers"] == 2 and len(base["listen"]) == 2

    code, printed, err = check(argv + ["--workers", "3", "--listen", "web=127.0.0.1:0", "--grace", "5s",
                                       "--stop-signal", "QUIT", "--log-level", "warn", "--name", "other",
                                       "--set", "restart.delay=2s", "--set", "env.EXTRA=yes",
                                       "--ready", "notify", "--ready-timeout", "2s",
                                       "--set", "ready.watchdog=1s", "--set", "reload.batch=4",
                                       "--set", "recycle.max_rss=64MiB", "--set", "recycle.max_lifetime=1h",
                                       "--set", "recycle.check_interval=5s"], tmpdir_short)
    assert (code, err) == (0, ""), err
    parsed = tomllib.loads(printed)
    assert parsed["workers"] == 3
    # --listen replaces every [[listen]] of the file.
    assert [(l["name"], l["address"]) for l in parsed["listen"]] == [("web", "127.0.0.1:0")]
    assert parsed["stop"]["grace"] == "5s"
    assert parsed["stop"]["signal"] == "QUIT"
    assert parsed["log"]["level"] == "warn"
    assert parsed["name"] == "other"
    assert parsed["restart"]["delay"] == "2s"
    assert parsed["env"] == {"EXTRA": "yes"}
    assert parsed["ready"] == {"mode": "notify", "timeout": "2s", "watchdog": "1s"}
    assert parsed["reload"] == {"batch": 4}
    assert parsed["recycle"] == {"max_lifetime": "1h", "max_rss": "64MiB", "check_interval": "5s"}
    # --ready wins over the file and over --set of the same key, whatever the order.
    code, printed, err = check(argv + ["--ready", "3s", "--set", "ready.mode=notify"], tmpdir_short)
    assert (code, err) == (0, ""), err
    assert tomllib.loads(printed)["ready"]["mode"] == "3s"
    # A PROGRAM on the command line replaces `command`.
    code, printed, err = check(argv + ["--", "/bin/true", "x"], tmpdir_short)
    assert (code, err) == (0, ""), err
    assert tomllib.loads(printed)["command"] == ["/bin/true", "x"]


def test_options_after_program_belong_to_the_workers(tmpdir_short):
    # Option parsing stops at PROGRAM (interface §1): these are the workers' arguments.
    argv, fill = prepare(tmpdir_short, None, ["--workers", "2", "@PROG@", "--workers", "abc", "--frobnicate",
                                              "-c", "nowhere.toml"])
    code, printed, err = check(argv, tmpdir_short)
    assert (code, err) == (0, ""), err
    parsed = tomllib.loads(printed)
    assert parsed["workers"] == 2
    assert parsed["command"] == [fill("@PROG@"), "--workers", "abc", "--frobnicate", "-c", "nowhere.toml"]


def held_port():
    """A TCP port on 127.0.0.1 this test holds bound and listening."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder, holder.getsockname()[1]


def test_check_binds_nothing(tmpdir_short):
    holder, port = held_port()
    with holder:
        # The unix listener comes first: a start binds it before failing on the held port.
        argv, fill = prepare(tmpdir_short, None, ["--workers", "2", "--listen", "unix:@SOCK@",
                                                  "--listen", "web=127.0.0.1:%d" % port, "@PROG@"])
        # check names the held port (test_check_preflight.py) and leaves nothing bound behind.
        code, printed, err = check(argv, tmpdir_short)
        assert (code, printed) == (2, ""), err
        assert err.startswith("--listen web=127.0.0.1:%d: listen[1].address: 127.0.0.1:%d is in use"
                              % (port, port)), err
        assert not os.path.exists(fill("@SOCK@"))
        assert not os.path.exists(os.path.join(tmpdir_short, "started"))
        # A start with the same flags cannot bind the port we hold: exit 2, no worker, and the
        # unix socket it had bound is removed again.
        code, out, err, timed_out = run(argv, cwd=tmpdir_short)
        assert not timed_out and code == 2, err
        assert "Address already in use" in err, err
        assert not os.path.exists(os.path.join(tmpdir_short, "started")), err
        assert not os.path.exists(fill("@SOCK@")), err
        assert not STARTED.search(err), err


def test_start_on_a_held_port_says_so_in_one_line_naming_the_listener(tmpdir_short):
    holder, port = held_port()
    with holder:
        argv, _ = prepare(tmpdir_short, None, ["--listen", "web=127.0.0.1:%d" % port, "@PROG@"])
        code, out, err, timed_out = run(argv, cwd=tmpdir_short)
    assert not timed_out and code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "web" in lines[0] and "127.0.0.1:%d" % port in lines[0], err
    assert "Address already in use" in lines[0], err
