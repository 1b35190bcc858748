"""What bench/run needs before it measures: tools, the clusterd binary, the C worker, PM2, and a
description of every version for the results header (bench/lib/judge.py describes the binary and
the machine).

Installs only what is missing: Debian packages with apt-get, PM2 with `npm install --prefix
bench/.node` (git-ignored). Nothing here starts a server; nothing runs `pm2` itself (any pm2
command starts a daemon, see pm2.py).
"""
import json
import os
import platform
import shutil
import subprocess

from . import say
from .reload_bench import reload

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
BUILD = os.path.join(BENCH, ".build")
NODE_PREFIX = os.path.join(BENCH, ".node")
PM2_BIN = os.path.join(NODE_PREFIX, "node_modules", ".bin", "pm2")

# The program each package provides: a package is installed only when its program is missing, so
# Node.js from another source (NodeSource ships its own npm) is kept as it is.
TOOLS = {"cc": "gcc", "wrk": "wrk", "gnuplot": "gnuplot-nox", "node": "nodejs", "npm": "npm",
         "systemd-notify": "systemd", "ss": "iproute2", "bash": "bash"}


def install_tools(build_clusterd):
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    reload.install_missing(missing + ["libc6-dev"] + (reload.BUILD_PACKAGES if build_clusterd else []))


def clusterd_binary(given, build_dir):
    """The binary to measure: `given` as is, else a Release build of this tree (target clusterd)."""
    if given:
        return os.path.abspath(given)
    say(f"building clusterd (Release) in {os.path.relpath(build_dir, REPO)}")
    return reload.build_clusterd(os.path.abspath(build_dir))


def c_worker():
    return reload.build_c_worker()


def pm2():
    """Installs PM2 into bench/.node unless it is there; returns the path of its `pm2` command."""
    if not os.path.exists(PM2_BIN):
        say("installing pm2 with npm into bench/.node")
        os.makedirs(NODE_PREFIX, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", NODE_PREFIX, "--no-audit", "--no-fund", "--loglevel=error",
                        "pm2"], check=True, stdout=subprocess.DEVNULL)
    return PM2_BIN


def node_version():
    text = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return tuple(int(part) for part in text.lstrip("v").split(".")[:2])


def node_has_reuse_port():
    """listen({reusePort}) exists from Node 22.12 and 23.1; older versions ignore the option."""
    return node_version() >= (22, 12)


def _first_line(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return "not found"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def versions(clusterd):
    try:
        with open(os.path.join(NODE_PREFIX, "node_modules", "pm2", "package.json")) as f:
            pm2_version = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pm2_version = "not installed"
    return {"clusterd": _first_line([clusterd, "--version"]),
            "node": _first_line(["node", "--version"]),
            "pm2": pm2_version,
            "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
            "gcc": _first_line(["cc", "--version"]),
            "python": platform.python_version(),
            "gnuplot": _first_line(["gnuplot", "--version"])}
