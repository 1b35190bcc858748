"""Runs a benchmark with every setup inside one CPU cgroup of its own, as a systemd service or a
container runs, where the scheduler's autogroups (one per session, so one per clusterd worker)
do not apply: they group only the tasks of the root cgroup. Needs root; cgroup v2, or v1's cpu
hierarchy.
"""
import os

V2_ROOT = "/sys/fs/cgroup"
V1_CPU = "/sys/fs/cgroup/cpu"


class OneCgroup:
    """Moves this process, and so every process it starts from then on, into a new cgroup;
    leave() moves it back and removes the cgroup (empty by then: every setup was stopped)."""

    def __init__(self):
        if os.path.exists(os.path.join(V2_ROOT, "cgroup.controllers")):
            parent = V2_ROOT
        elif os.path.isdir(V1_CPU):
            parent = V1_CPU
        else:
            raise RuntimeError("no cgroup v2 and no cgroup v1 cpu hierarchy at /sys/fs/cgroup")
        with open(f"/proc/{os.getpid()}/cgroup") as f:
            lines = f.read().splitlines()
        own = next((line.split(":", 2)[2] for line in lines
                    if line.split(":", 2)[1] in (("",) if parent == V2_ROOT else ("cpu", "cpu,cpuacct"))), "/")
        self.previous = os.path.join(parent, own.lstrip("/"))
        self.path = os.path.join(self.previous, f"clusterd-bench-{os.getpid()}")
        os.mkdir(self.path)
        self._move_to(self.path)
        self.name = self.path[len(parent):] or "/"
        self.hierarchy = "v2" if parent == V2_ROOT else "v1 cpu"

    def _move_to(self, path):
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def leave(self):
        self._move_to(self.previous)
        os.rmdir(self.path)

    def note(self):
        return (f"Every setup ran inside one cgroup ({self.hierarchy} {self.name}), as under systemd or in a "
                "container: the scheduler's autogroups (one per session) do not apply there.")
