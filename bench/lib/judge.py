"""What every bench script shares: its targets as data and their verdict, where its figures came from
(the run, the clusterd binary, the machine and how quiet it was), and --publish.

Targets: each script builds a list of Target(name, measured, op, threshold, unit) from what it
measured; table() prints them with met / MISSED, exit_status() is 1 when one was missed. A target
whose figure could not be taken counts as missed; one left out on purpose (a subset of setups or
sections) carries `skipped` and is neither.

Provenance: Run(...).begin() just before the measurements (after any build), .end() right after
them. Every report then says when it ran and with which command; which clusterd binary it measured
(`clusterd --version` names the commit, CMakeCache.txt the build type, plus the commit's date and
the binary's build time); the machine; the 1-minute load average before and after; and how much CPU
time other processes used while it measured: the machine's busy time (/proc/stat: user, nice,
system, irq, softirq, plus steal) minus the CPU time of this script and every process it started
(getrusage of itself and of its reaped children; the script is made a child subreaper, so daemons
its children start, PM2's, are reaped here and counted too) minus kernel threads' (they also carry
the loopback traffic the benchmark makes).

--publish writes a script's results into docs/benchmarks.md, between its own markers only:
    <!-- bench/NAME results: begin (bench/NAME --publish rewrites this part) -->
    <!-- bench/NAME results: end -->
and only from a quiet machine and a binary that says what it is. refusals() lists what stands in the
way; the scripts exit EXIT_REFUSED (3) with that list and publish nothing:
  - the binary is not a Release build (what the scripts build by default, and what is packaged);
  - its commit is not the repository's HEAD, or src/ or CMakeLists.txt have uncommitted changes
    (the commit would not name what was measured);
  - the 1-minute load average before the run, or after it, is above LOAD_LIMIT_PER_CPU x CPUs.
    Before: --publish waits (up to --quiet-wait seconds) for it to fall that low, since a build that
    just ran raises it too. After: the value right after a run includes the run's own load (wrk and
    the workers keep every CPU busy), so --publish waits for that to decay (the 1-minute average
    falls by e^-1 a minute once a load stops) and judges the value it reaches;
  - other processes used more than FOREIGN_CPU_LIMIT of the machine's CPU time while it measured:
    this catches load that came and went during the run, which neither load average sees.

Why these limits: every benchmark here puts its load client and its servers on the same CPUs and
keeps them all busy, so any other runnable task takes CPU time from the figures. A load average of
0.25 per CPU (0.5 on 2 CPUs) is an otherwise idle machine give or take a daemon; 5 % of the CPU time
is far below the differences the targets are about (2 % for the 0.98 ratios is within the
run-to-run spread), and far above what an idle machine's background uses.
"""
import ctypes
import datetime
import os
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
DOCS = os.path.join(REPO, "docs", "benchmarks.md")

LOAD_LIMIT_PER_CPU = 0.25
FOREIGN_CPU_LIMIT = 0.05
QUIET_WAIT_S = 240
EXIT_MISSED, EXIT_UNMEASURABLE, EXIT_REFUSED = 1, 2, 3
TICK = os.sysconf("SC_CLK_TCK")
PF_KTHREAD = 0x00200000
PR_SET_CHILD_SUBREAPER = 36


# ---------------------------------------------------------------- targets

OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
       ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def number(value):
    """A figure as the reports write it: thousands grouped by a thin space, 2 decimals below 10."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return f"{value:,.0f}".replace(",", " ")
    if abs(value) >= 10:
        return f"{value:,.1f}".replace(",", " ")
    return f"{value:.2f}"


def with_unit(text, unit):
    return f"{text}{unit}" if unit in ("×", "%", "") else f"{text} {unit}"


@dataclass
class Target:
    """One promise and its figure. `measured` None: the figure could not be taken (missed, with
    `shown` saying why); `skipped`: not measured on purpose (neither met nor missed)."""
    name: str
    measured: Optional[float]
    op: str
    threshold: float
    unit: str = ""
    shown: Optional[str] = None     # the measured cell, when a bare number says too little
    skipped: Optional[str] = None

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"target {self.name!r}: unknown comparison {self.op!r}")

    @property
    def met(self):
        if self.skipped:
            return None
        return self.measured is not None and OPS[self.op](self.measured, self.threshold)

    @property
    def verdict(self):
        return {None: "not run", True: "met", False: "**MISSED**"}[self.met]

    def measured_text(self):
        if self.skipped:
            return self.skipped
        if self.shown is not None:
            return self.shown
        return "not measured" if self.measured is None else with_unit(number(self.measured), self.unit)

    def threshold_text(self):
        value = self.threshold
        text = f"{value:.2f}" if self.unit == "×" or not float(value).is_integer() else number(int(value))
        return f"{self.op} {with_unit(text, self.unit)}"


def table(targets):
    lines = ["| target | measured | required | met |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.measured_text()} | {t.threshold_text()} | {t.verdict} |" for t in targets]
    return "\n".join(lines)


def missed(targets):
    return [t for t in targets if t.met is False]


def exit_status(targets):
    return EXIT_MISSED if missed(targets) else 0


def summary(targets):
    judged = [t for t in targets if t.met is not None]
    bad = missed(targets)
    text = f"{len(judged) - len(bad)} of {len(judged)} targets met"
    return text + (": missed " + "; ".join(t.name for t in bad) if bad else "")


# ---------------------------------------------------------------- the binary and the machine

def build_clusterd(build_dir):
    """clusterd built Release (target clusterd only) in build_dir. Configured every time, not only
    the first: the configure step writes the repository's HEAD into `clusterd --version`, which is
    how every report names the commit it measured."""
    build_dir = os.path.abspath(build_dir)
    subprocess.run(["cmake", "-S", REPO, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DBUILD_TESTING=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "--target", "clusterd"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "src", "clusterd")


def _git(*args):
    done = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _cmake_cache(binary):
    """CMakeCache.txt of the build tree the binary sits in (build/src/clusterd: build/), as a dict."""
    directory = os.path.dirname(binary)
    for _ in range(4):
        path = os.path.join(directory, "CMakeCache.txt")
        if os.path.exists(path):
            cache = {}
            with open(path, errors="replace") as f:
                for line in f:
                    m = re.match(r"^([A-Za-z_][\w-]*):\w+=(.*)$", line.rstrip("\n"))
                    if m:
                        cache[m.group(1)] = m.group(2)
            return path, cache
        directory = os.path.dirname(directory)
    return None, {}


def clusterd_info(binary):
    binary = os.path.abspath(binary)
    done = subprocess.run([binary, "--version"], capture_output=True, text=True)
    version = (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"
    m = re.search(r"commit ([0-9a-f]{7,40}|unknown)", version)
    commit = m.group(1) if m else None
    cache_path, cache = _cmake_cache(binary)
    build_type = cache.get("CMAKE_BUILD_TYPE") if cache_path else None
    head = _git("rev-parse", "--short=12", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src", "CMakeLists.txt")
    commit_date = None
    if commit and commit != "unknown":
        commit_date = _git("log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%d %H:%M UTC", commit)
    try:
        built = datetime.datetime.fromtimestamp(os.stat(binary).st_mtime, datetime.timezone.utc)
        built = built.strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        built = None
    return {"path": binary, "version": version, "commit": commit, "commit_date": commit_date,
            "build_type": build_type, "cache": cache_path, "small_runtime": cache.get("CLUSTERD_SMALL_RUNTIME"),
            "built": built, "head": head, "dirty": bool(dirty)}


def _read(path, default="?"):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def loadavg():
    return float(_read("/proc/loadavg", "0").split()[0])


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo", "").splitlines()
                if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count() or 1, "cpu": cpu, "kernel": platform.release(),
            "debian": _read("/etc/debian_version"),
            "autogroup": {"1": "on", "0": "off"}.get(_read("/proc/sys/kernel/sched_autogroup_enabled"), "n/a")}


def load_limit():
    return LOAD_LIMIT_PER_CPU * (os.cpu_count() or 1)


# ---------------------------------------------------------------- CPU time: ours, the kernel's, the others'

def machine_cpu():
    """(busy, steal) seconds of all CPUs since boot: user+nice+system+irq+softirq, and steal."""
    fields = [int(x) for x in _read("/proc/stat", "cpu 0").splitlines()[0].split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def our_cpu():
    """CPU seconds of this process and of every descendant it has reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def kernel_threads_cpu():
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[6]) & PF_KTHREAD:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def become_subreaper():
    """Orphans of our descendants (a daemon a child started: PM2's) become our children, so their
    CPU time reaches our rusage once reap_orphans() collected them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout=3.0):
    """Reaps every exited child (orphans handed to us included); waits up to `timeout` for ones
    still exiting. Called when everything this script started has been stopped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


# ---------------------------------------------------------------- one run

def add_arguments(parser):
    """--publish and --quiet-wait, the same in every script."""
    parser.add_argument("--publish", action="store_true",
                        help="also write the results into docs/benchmarks.md, into this script's section only; "
                             f"refused (exit {EXIT_REFUSED}) unless the machine was quiet and the binary a "
                             "Release build of the committed HEAD")
    parser.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S, metavar="SECONDS",
                        help=f"with --publish: how long to wait for the 1-minute load average to fall to "
                             f"{LOAD_LIMIT_PER_CPU:g} per CPU, before the run and after it (default {QUIET_WAIT_S})")


class Run:
    """The provenance of one run of a bench script, and whether it may be published."""

    def __init__(self, script, clusterd, publish=False, quiet_wait=QUIET_WAIT_S, argv=None):
        self.script, self.publish, self.quiet_wait = script, publish, quiet_wait
        self.command = "bench/" + script + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))
        self.clusterd = clusterd_info(clusterd)
        self.machine = machine()
        self.limit = load_limit()
        self.subreaper = become_subreaper()
        self.started = self.ended = None
        self.load_before = self.load_after = self.load_after_settled = None
        self.waited_before = self.waited_after = 0.0
        self.cpu = None

    def say(self, text):
        print(f"bench/{self.script}: {text}", file=sys.stderr, flush=True)

    def _wait_quiet(self, what):
        """With --publish: waits (up to --quiet-wait) for the 1-minute load average to fall to the
        limit. Returns (load, seconds waited)."""
        started = time.monotonic()
        load = loadavg()
        if self.publish and load > self.limit and self.quiet_wait > 0:
            self.say(f"load average {load:.2f} {what}, above {self.limit:.2f}: waiting up to "
                     f"{self.quiet_wait:.0f} s for it to fall")
            while load > self.limit and time.monotonic() - started < self.quiet_wait:
                time.sleep(min(5.0, max(0.0, self.quiet_wait - (time.monotonic() - started))))
                load = loadavg()
        return load, time.monotonic() - started

    def static_refusals(self):
        """What refuses --publish whatever the machine does: the binary."""
        c, reasons = self.clusterd, []
        if c["build_type"] != "Release":
            what = ("no CMakeCache.txt beside it" if c["cache"] is None
                    else f"CMAKE_BUILD_TYPE={c['build_type'] or '(empty)'} in {c['cache']}")
            reasons.append(f"{c['path']} is not a Release build ({what}); published figures come from the "
                           "Release build the scripts make in bench/.build/clusterd (run without --clusterd "
                           "and CLUSTERD_BIN)")
        if not c["commit"] or c["commit"] == "unknown":
            reasons.append(f"`{c['version']}` names no commit")
        elif c["head"] and not c["head"].startswith(c["commit"]) and not c["commit"].startswith(c["head"]):
            reasons.append(f"the binary was built from commit {c['commit']}, not from HEAD {c['head']}")
        if c["dirty"]:
            reasons.append("src/ or CMakeLists.txt have uncommitted changes: the binary's commit would not "
                           "name what was measured")
        return reasons

    def begin(self):
        """Just before the measurements. With --publish: the binary's refusals and the load before
        (after waiting for it); returns the reasons, and nothing was measured yet."""
        reasons = self.static_refusals() if self.publish else []
        if reasons:  # refused whatever the load does: no point waiting for it
            self.load_before, self.waited_before = loadavg(), 0.0
        else:
            self.load_before, self.waited_before = self._wait_quiet("before the run")
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self._t0 = time.monotonic()
        self._machine0, self._ours0, self._kernel0 = machine_cpu(), our_cpu(), kernel_threads_cpu()
        if self.publish and self.load_before > self.limit:
            reasons.append(self._load_reason("before the run", self.load_before, self.waited_before))
        return reasons

    def end(self):
        """Right after the measurements, once everything the script started was stopped."""
        reap_orphans()
        elapsed = time.monotonic() - self._t0
        (busy1, steal1), ours1, kernel1 = machine_cpu(), our_cpu(), kernel_threads_cpu()
        busy0, steal0 = self._machine0
        ours, kernel, steal = ours1 - self._ours0, kernel1 - self._kernel0, steal1 - steal0
        others = max(0.0, (busy1 - busy0) - ours - kernel) + steal
        self.cpu = {"elapsed": elapsed, "capacity": elapsed * self.machine["nproc"], "busy": busy1 - busy0,
                    "ours": ours, "kernel": kernel, "steal": steal, "others": others,
                    "share": others / (elapsed * self.machine["nproc"]) if elapsed > 0 else 0.0}
        self.ended = datetime.datetime.now(datetime.timezone.utc)
        self.load_after = loadavg()
        if self.publish:
            self.load_after_settled, self.waited_after = self._wait_quiet("after the run (partly its own load)")

    def _load_reason(self, when, load, waited):
        return (f"the 1-minute load average was {load:.2f} {when}, above the limit {self.limit:.2f} "
                f"({LOAD_LIMIT_PER_CPU:g} x {self.machine['nproc']} CPUs)"
                + (f" after waiting {waited:.0f} s" if waited >= 1 else ""))

    def refusals(self):
        """Every reason this run may not be published (after end())."""
        reasons = self.static_refusals()
        if self.load_before is not None and self.load_before > self.limit:
            reasons.append(self._load_reason("before the run", self.load_before, self.waited_before))
        # Right after a run the load average still holds the run's own load: only the value it falls
        # to (what --publish waits for) says whether the machine was quiet.
        if self.load_after_settled is not None and self.load_after_settled > self.limit:
            reasons.append(self._load_reason("after the run's own load decayed", self.load_after_settled,
                                             self.waited_after))
        if self.cpu and self.cpu["share"] > FOREIGN_CPU_LIMIT:
            reasons.append(f"other processes used {self.cpu['others']:.1f} CPU seconds while it measured, "
                           f"{100 * self.cpu['share']:.1f} % of the machine's CPU time (limit "
                           f"{100 * FOREIGN_CPU_LIMIT:g} %)")
        return reasons

    def refuse(self, reasons, results_path=None):
        """Prints why --publish is refused; returns the exit status for it."""
        self.say("--publish refused: nothing was written to docs/benchmarks.md, because")
        for reason in reasons:
            print(f"  - {reason}", file=sys.stderr)
        print("  Run it again on a quiet machine, with the Release build the script makes itself"
              + (f"; this run's report: {os.path.relpath(results_path)}" if results_path else "") + ".",
              file=sys.stderr, flush=True)
        return EXIT_REFUSED

    # ------------------------------------------------------------ the report's header

    def provenance(self):
        """Markdown lines: when, what binary, which machine, how quiet. In every report."""
        c, m = self.clusterd, self.machine
        when = f"{self.started:%Y-%m-%d %H:%M}" if self.started else "?"
        if self.ended:
            when += f" – {self.ended:%H:%M}" if self.ended.date() == self.started.date() else f" – {self.ended:%Y-%m-%d %H:%M}"
        when += " UTC"
        binary = f"`{c['version']}`"
        if c["commit_date"]:
            binary += f", committed {c['commit_date']}"
        elif c["commit"] and c["commit"] != "unknown":
            binary += ", a commit this repository does not have"
        build = ("build type unknown (no CMakeCache.txt beside it)" if c["cache"] is None
                 else f"build type {c['build_type'] or 'none (CMAKE_BUILD_TYPE empty)'}"
                 + (f", CLUSTERD_SMALL_RUNTIME={c['small_runtime']}" if c["small_runtime"] else ""))
        binary += f"; {build}; built {c['built']}"
        if c["head"] and c["commit"] and not c["head"].startswith(c["commit"]):
            binary += f"; the repository's HEAD is {c['head']}"
        if c["dirty"]:
            binary += "; src/ or CMakeLists.txt have uncommitted changes"
        lines = [f"- Run: {when}, `{self.command}`.",
                 f"- clusterd: {binary}.",
                 f"- Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, kernel {m['kernel']}, Debian {m['debian']}, "
                 f"scheduler autogroup {m['autogroup']}."]
        load = f"- Load: 1-minute load average {self.load_before:.2f} before" if self.load_before is not None else ""
        if load:
            if self.waited_before >= 1:
                load += f" (after waiting {self.waited_before:.0f} s for it)"
            if self.load_after is not None:
                load += f", {self.load_after:.2f} right after (this run's own load included)"
            if self.load_after_settled is not None:
                load += f", {self.load_after_settled:.2f} after a {self.waited_after:.0f} s cool-down"
            if self.cpu:
                load += (f"; other processes used {self.cpu['others']:.1f} CPU s of the "
                         f"{self.cpu['capacity']:.0f} the {m['nproc']} CPUs had while it measured "
                         f"({100 * self.cpu['share']:.1f} %; this run {self.cpu['ours']:.1f} s, kernel "
                         f"threads {self.cpu['kernel']:.1f} s)")
            lines.append(load + ".")
        if self.ended:
            reasons = self.refusals()
            verdict = "yes" if not reasons else "**no**: " + "; ".join(reasons)
            if not reasons and self.load_after_settled is None:
                verdict += " (the load after the run is judged only with --publish, which waits for the run's own load to decay)"
            lines.append("- Publishable (a Release build of HEAD; a quiet machine: load average at most "
                         f"{self.limit:.2f} before and after, other processes at most {100 * FOREIGN_CPU_LIMIT:g} % "
                         f"of the CPU time): {verdict}.")
        return lines


# ---------------------------------------------------------------- the page

def markers(name):
    return (f"<!-- bench/{name} results: begin (bench/{name} --publish rewrites this part) -->",
            f"<!-- bench/{name} results: end -->")


def placeholder(name):
    return f"Not yet published from a quiet machine: run `bench/{name} --publish`."


def section(name, text, docs=DOCS):
    """The page with bench/NAME's results section replaced by text (nothing else changes)."""
    begin, end = markers(name)
    with open(docs) as f:
        doc = f.read()
    if doc.count(begin) != 1 or doc.count(end) != 1 or doc.index(begin) > doc.index(end):
        raise RuntimeError(f"{docs}: expected one results section between {begin!r} and {end!r}")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{text.strip()}\n{end}{tail}"


def publish(name, text, docs=DOCS):
    """Rewrites bench/NAME's results section of docs/benchmarks.md (atomically)."""
    new = section(name, text, docs)
    temporary = docs + ".tmp"
    with open(temporary, "w") as f:
        f.write(new)
    os.replace(temporary, docs)
