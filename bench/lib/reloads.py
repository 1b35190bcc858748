"""The rolling reload under load: bench/reload's runs, plus PM2's own graceful reload beside them.

bench/reload's run_one() measures clusterd + C, clusterd + JS (both `--ready notify`) and
node_cluster.js, each with 2 workers, SIGHUP at `hup_at` seconds into a `duration`-second load
(py-keepalive, py-newconn, wrk); see bench/reload's docstring for every column. pm2_run() does the
same for PM2 cluster mode with 2 workers of http_server.js, with `pm2 reload NAME` (one worker at a
time: start a new one, wait for it to listen, then SIGINT the old one, SIGKILL after PM2's
default kill_timeout of 1.6 s) in place of SIGHUP; its duration is how long `pm2 reload` took.
"""
import argparse
import os
import time

from .reload_bench import reload
from .setups import Pm2App

CASES = ["clusterd + C", "clusterd + JS", "node-cluster"]
LOADS = ["py-keepalive", "py-newconn", "wrk"]


def options(duration, hup_at):
    return argparse.Namespace(ready="notify", duration=duration, hup_at=hup_at, connections=32, timeout=3.0,
                              max_requests=2_000_000)


def pm2_run(pm2, c_worker, load, args):
    port = reload.free_port()
    setup = Pm2App(pm2, c_worker, "cluster")
    row = {"case": "pm2 cluster", "load": load, "problem": None, "hup": time.monotonic()}
    try:
        setup.start(port, 2)
        time.sleep(0.3)
        if load == "wrk":
            wrk = reload.run_wrk(port, args.duration, args.connections, args.timeout)
        else:
            py = reload.PyLoad(port, load == "py-keepalive", args.duration, args.connections, args.max_requests,
                               args.timeout)
        started = time.monotonic()
        time.sleep(max(0.0, started + args.hup_at - time.monotonic()))
        old = setup.worker_pids()
        row["hup"] = time.monotonic()
        setup.pm2.reload(setup.name)
        done = time.monotonic()
        new = setup.worker_pids()
        row.update(reload_ms=(done - row["hup"]) * 1000, old_pids=old, new_pids=new,
                   replaced=len(old) == 2 and len(new) == 2 and not set(old) & set(new))
        if load == "wrk":
            out, _ = wrk.communicate(timeout=args.duration + 30)
            row.update(reload.parse_wrk(out))
        else:
            row.update(py.result(args.duration))
        row["served"] = row["ok"]
        row["rps"] = row["ok"] / args.duration
    except Exception as error:  # reported in the table; the next run still happens
        row["problem"] = f"{type(error).__name__}: {error}"
        row.pop("served", None)
    finally:
        setup.stop()
    return row


def measure(pm2, clusterd, c_worker, duration, hup_at, logdir, cases):
    """Every case in `cases` (CASES and/or "pm2 cluster") under every load; returns bench/reload rows."""
    args = options(duration, hup_at)
    rows = []
    os.makedirs(logdir, exist_ok=True)
    for load in LOADS:
        for case in cases:
            if case == "pm2 cluster":
                rows.append(pm2_run(pm2, c_worker, load, args))
            else:
                rows.append(reload.run_one(len(rows) + 1, case, load, args, clusterd, c_worker, logdir))
            time.sleep(0.5)
    return rows
