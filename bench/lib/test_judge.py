"""Checks of bench/lib/judge.py that need no benchmark run: python3 -m unittest discover -s bench/lib

Targets and their verdicts, the results sections of docs/benchmarks.md (each script's --publish
replaces its own and nothing else), and the reasons --publish refuses a run.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib import judge  # noqa: E402
from lib.judge import Target  # noqa: E402
from lib import ready_targets  # noqa: E402

SCRIPTS = ["run", "reload", "scale", "soak", "reuseport", "ready", "status", "logs", "scaleup"]


class Targets(unittest.TestCase):
    def test_verdicts(self):
        self.assertTrue(Target("ratio", 0.99, ">=", 0.98, "×").met)
        self.assertFalse(Target("ratio", 0.97, ">=", 0.98, "×").met)
        self.assertTrue(Target("count", 0, "==", 0).met)
        self.assertFalse(Target("not measured", None, "==", 0).met)
        self.assertIsNone(Target("left out", None, "==", 0, skipped="not run").met)

    def test_exit_status_counts_only_missed(self):
        met, skipped = Target("a", 1, "<=", 2), Target("b", None, "==", 0, skipped="not run")
        self.assertEqual(judge.exit_status([met, skipped]), 0)
        self.assertEqual(judge.exit_status([met, Target("c", 3, "<=", 2)]), judge.EXIT_MISSED)
        self.assertEqual(judge.exit_status([Target("d", None, "<=", 2)]), judge.EXIT_MISSED)

    def test_table(self):
        text = judge.table([Target("ratio", 0.97, ">=", 0.98, "×"), Target("rss", 3.5, "<=", 4, "MiB")])
        self.assertIn("| ratio | 0.97× | >= 0.98× | **MISSED** |", text)
        self.assertIn("| rss | 3.50 MiB | <= 4 MiB | met |", text)

    def test_unknown_comparison(self):
        with self.assertRaises(ValueError):
            Target("x", 1, "=>", 1)


class Page(unittest.TestCase):
    def test_every_script_has_one_section(self):
        with open(judge.DOCS) as f:
            doc = f.read()
        for name in SCRIPTS:
            begin, end = judge.markers(name)
            self.assertEqual(doc.count(begin), 1, name)
            self.assertEqual(doc.count(end), 1, name)

    def test_publish_rewrites_only_its_own_section(self):
        with open(judge.DOCS) as f:
            doc = f.read()
        new = judge.section("scale", "NEW SCALE RESULTS")
        begin, end = judge.markers("scale")
        self.assertIn(f"{begin}\nNEW SCALE RESULTS\n{end}", new)
        before, after = doc.split(begin)[0], doc.split(end)[1]
        self.assertTrue(new.startswith(before))
        self.assertTrue(new.endswith(after))

    def test_missing_markers_refuse(self):
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
            f.write("# no sections\n")
        try:
            with self.assertRaises(RuntimeError):
                judge.publish("scale", "x", docs=f.name)
            with open(f.name) as g:
                self.assertEqual(g.read(), "# no sections\n")
        finally:
            os.unlink(f.name)


class Refusals(unittest.TestCase):
    """A fake clusterd whose --version names HEAD, in a build tree whose CMakeCache.txt says
    `build_type`: only the machine's state is left to refuse a run."""

    def fake(self, build_type):
        tree = tempfile.mkdtemp(prefix="judge-test-")
        self.addCleanup(shutil.rmtree, tree)
        os.makedirs(os.path.join(tree, "src"))
        with open(os.path.join(tree, "CMakeCache.txt"), "w") as f:
            f.write(f"CMAKE_BUILD_TYPE:STRING={build_type}\n")
        head = subprocess.run(["git", "-C", judge.REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
        binary = os.path.join(tree, "src", "clusterd")
        with open(binary, "w") as f:
            f.write(f"#!/bin/sh\necho 'clusterd 0.1.0 (commit {head})'\n")
        os.chmod(binary, os.stat(binary).st_mode | stat.S_IXUSR)
        run = judge.Run("test", binary, publish=True, quiet_wait=0, argv=[])
        run.clusterd["dirty"] = False  # the tree this test runs in may have work in progress
        return run

    def test_quiet_release_run_is_publishable(self):
        run = self.fake("Release")
        run.load_before, run.load_after, run.load_after_settled = 0.1, 2.5, 0.2
        run.cpu = {"others": 0.5, "share": 0.01}
        self.assertEqual(run.refusals(), [])

    def test_loaded_run_is_refused(self):
        run = self.fake("Release")
        run.load_before, run.load_after, run.load_after_settled = 1.39, 4.64, 3.0
        run.cpu = {"others": 40.0, "share": 0.3}
        reasons = " ".join(run.refusals())
        self.assertIn("1.39 before the run", reasons)
        self.assertIn("3.00 after the run's own load decayed", reasons)
        self.assertIn("other processes used 40.0 CPU seconds", reasons)

    def test_debug_build_is_refused(self):
        run = self.fake("Debug")
        run.load_before = run.load_after_settled = 0.0
        run.cpu = {"others": 0.0, "share": 0.0}
        self.assertTrue(any("not a Release build" in r for r in run.refusals()))


class ReadyTargets(unittest.TestCase):
    """bench/ready judges only the default mode; exec rows are shown, never judged."""

    def broken(self, mode, rc, failed, old_serving):
        return {"mode": mode, "load": "py-newconn", "workers": 4, "rc": rc, "message": "clusterd: reload abandoned",
                "errors": {"refused": failed, "reset": 0}, "old_serving": old_serving, "client_timeout_s": 10}

    def test_broken_reload(self):
        rows = [self.broken("auto", 1, 0, 4), self.broken("exec", None, 99, 0)]
        self.assertEqual([t.met for t in ready_targets.broken_targets(rows, ["py-newconn"])], [True, True, True])
        missed = ready_targets.broken_targets([self.broken("auto", 0, 3, 2)], ["py-newconn"])
        self.assertEqual([t.met for t in missed], [False, False, False])
        hung = ready_targets.broken_targets([self.broken("auto", None, 0, 4)], ["py-newconn"])
        self.assertFalse(hung[1].met)
        self.assertIn("no answer within 10 s", hung[1].measured_text())
        skipped = ready_targets.broken_targets([], ["py-keepalive"])
        self.assertEqual([t.met for t in skipped], [None, None, None])

    def test_healthy_ratio_and_errors(self):
        def row(mode, times, rc=0):
            return {"variant": "READY=1", "mode": mode,
                    "runs": [{"client_ms": t, "log_ms": t / 2, "rc": rc, "failed": 0, "problem": None} for t in times]}
        met = ready_targets.healthy_targets([row("auto", [90, 100, 300]), row("exec", [80, 70, 1000])], ["READY=1"])
        self.assertEqual([t.met for t in met], [True, True])
        self.assertIn("1.25× (100 / 80 ms", met[0].measured_text())
        slow = ready_targets.healthy_targets([row("auto", [121]), row("exec", [80])], ["READY=1"])
        self.assertFalse(slow[0].met)
        failing = ready_targets.healthy_targets([row("auto", [50], rc=1), row("exec", [80])], ["READY=1"])
        self.assertFalse(failing[1].met)

    def test_idle_and_servers(self):
        idle = ready_targets.idle_targets([{"variant": "READY=1", "wakeups": 0, "syscalls": None,
                                            "strace_note": "ptrace: Operation not permitted"}], ["READY=1"], 10)
        self.assertEqual([t.met for t in idle], [True, False])
        servers = ready_targets.server_targets(
            [{"server": "uvicorn", "runs": [{"sign": "epoll"}, {"sign": None, "problem": "no answer"}]},
             {"server": "Node", "skipped": "nodejs is not installed", "runs": []}], ["uvicorn", "Node"])
        self.assertEqual([t.met for t in servers], [False, None])


if __name__ == "__main__":
    unittest.main()
