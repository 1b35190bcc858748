"""A private PM2: its own PM2_HOME in a temporary directory, so ~/.pm2 and any PM2 the user runs
are never touched, and its daemon ended when the benchmark ends.

Any pm2 command starts the PM2 daemon ("God") if none runs for that PM2_HOME, detached in its own
session; the daemon then starts the apps. kill() runs `pm2 kill`, waits for the daemon's pid (from
PM2_HOME/pm2.pid) to be gone, and SIGKILLs that pid only if it is still there after 10 s.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from . import say


class Pm2:
    def __init__(self, pm2_bin):
        self.bin = pm2_bin
        self.home = tempfile.mkdtemp(prefix="bench-pm2-")
        self.env = dict(os.environ, PM2_HOME=self.home)
        self.used = False

    def run(self, *args, timeout=60):
        self.used = True
        done = subprocess.run([self.bin, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"pm2 {' '.join(args)} exited {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
        return done.stdout

    def start(self, app):
        """Starts one app described as in an ecosystem file (name, script, args, instances, exec_mode...)."""
        path = os.path.join(self.home, app["name"] + ".json")
        with open(path, "w") as f:
            json.dump({"apps": [app]}, f)
        self.run("start", path)

    def pids(self, name):
        text = self.run("jlist")
        processes = json.loads(text[text.index("["):])  # pm2 may print notices before the JSON
        return sorted(p["pid"] for p in processes if p.get("name") == name and p.get("pid"))

    def reload(self, name):
        self.run("reload", name, timeout=120)

    def delete(self, name):
        self.run("delete", name)

    def daemon_pid(self):
        try:
            with open(os.path.join(self.home, "pm2.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, name, lines=20):
        """The last lines of the app's stdout and stderr logs (PM2 writes them under PM2_HOME/logs)."""
        out = []
        logs = os.path.join(self.home, "logs")
        for entry in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            if entry.startswith(name):
                with open(os.path.join(logs, entry), errors="replace") as f:
                    out += [f"{entry}: {line.rstrip()}" for line in f.readlines()[-lines:]]
        return "\n".join(out)

    def kill(self):
        pid = self.daemon_pid()
        if self.used and pid:
            try:
                self.run("kill", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                say(f"pm2 kill failed ({error}); ending the daemon by its pid {pid}")
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                say(f"PM2 daemon pid {pid} still running 10 s after `pm2 kill`: SIGKILL")
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
