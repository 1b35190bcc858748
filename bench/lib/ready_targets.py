"""bench/ready's targets (issue #14's Goals), judged on its results: pure functions of the measured
rows, so bench/lib/test_judge.py checks the verdicts without a benchmark run.

Rows, as bench/ready makes them:
  broken   {"mode", "load", "workers", "errors": {kind: n}, "rc", "message", "old_serving", "problem"}
           rc None: the client did not return within its timeout (killed); old_serving: how many of
           the old pids `clusterd status --json` still lists as ready and that alone answered the
           load's last second
  healthy  {"variant", "mode", "sign", "runs": [{"client_ms", "log_ms", "rc", "failed", "problem"}]}
  idle     {"variant", "wakeups", "syscalls", "strace_note"} (bench/scale's section_idle, plus variant)
  servers  {"server", "skipped", "runs": [{"sign", "delay_ms", "problem"}]}
Only the default mode ("auto") is judged; the "exec" rows are the reference that shows the old
behaviour.
"""
import statistics

from .judge import Target

HEALTHY_RATIO = 1.5


def errors_text(errors):
    failed = {k: v for k, v in errors.items() if v}
    return ", ".join(f"{v} {k}" for k, v in failed.items()) if failed else "0 failed"


def client_text(row):
    if row.get("rc") is None:
        return f"no answer within {row.get('client_timeout_s', '?')} s (killed)"
    message = (row.get("message") or "").strip().splitlines()
    return f"exit {row['rc']}" + (f": `{message[-1][:110]}`" if message else "")


def broken_targets(rows, loads):
    out = []
    for load in loads:
        row = next((r for r in rows if r["mode"] == "auto" and r["load"] == load), None)
        names = [f"reload to a program that exits 1, auto, {load}: failed requests",
                 f"reload to a program that exits 1, auto, {load}: `clusterd reload` exit status",
                 f"reload to a program that exits 1, auto, {load}: old pids still serving"]
        if row is None:
            out += [Target(n, None, "==", 0, skipped="not run (--loads, --sections)") for n in names]
            continue
        if row.get("problem"):
            out += [Target(n, None, "==", 0, shown=f"failed: {row['problem'][:140]}") for n in names]
            continue
        out.append(Target(names[0], sum(row["errors"].values()), "==", 0, shown=errors_text(row["errors"])))
        out.append(Target(names[1], row["rc"], ">", 0, shown=client_text(row)))
        out.append(Target(names[2], row["old_serving"], "==", row["workers"],
                          shown=f"{row['old_serving']} of {row['workers']}"))
    return out


def median_ms(runs, field):
    values = [r[field] for r in runs if r.get(field) is not None and not r.get("problem")]
    return statistics.median(values) if values else None


def healthy_targets(rows, variants):
    """Per variant (the C worker as it is, sending READY=1; the same without NOTIFY_SOCKET, seen in
    epoll): auto's median client time over exec's, and auto's errors."""
    out = []
    for variant in variants:
        auto = next((r for r in rows if r["variant"] == variant and r["mode"] == "auto"), None)
        exec_ = next((r for r in rows if r["variant"] == variant and r["mode"] == "exec"), None)
        ratio_name = f"reload of 2 healthy C workers ({variant}): median duration, auto / exec"
        errors_name = f"reload of 2 healthy C workers ({variant}), auto: errors"
        if auto is None or exec_ is None:
            out += [Target(ratio_name, None, "<=", HEALTHY_RATIO, "×", skipped="not run (--sections)"),
                    Target(errors_name, None, "==", 0, skipped="not run (--sections)")]
            continue
        a, e = median_ms(auto["runs"], "client_ms"), median_ms(exec_["runs"], "client_ms")
        if a is None or e is None or e <= 0:
            out.append(Target(ratio_name, None, "<=", HEALTHY_RATIO, "×", shown="no successful reload: see below"))
        else:
            la, le = median_ms(auto["runs"], "log_ms"), median_ms(exec_["runs"], "log_ms")
            log = f"; the log's {la:.0f} / {le:.0f} ms" if la is not None and le else ""
            out.append(Target(ratio_name, a / e, "<=", HEALTHY_RATIO, "×",
                              shown=f"{a / e:.2f}× ({a:.0f} / {e:.0f} ms{log})"))
        errors = sum(1 for r in auto["runs"] if r.get("problem") or r.get("rc") != 0) + \
            sum(r.get("failed") or 0 for r in auto["runs"])
        out.append(Target(errors_name, errors, "==", 0,
                          shown=f"{errors} (reloads not exiting 0 plus failed requests, {len(auto['runs'])} reloads)"))
    return out


def idle_targets(rows, variants, seconds):
    out = []
    for variant in variants:
        row = next((r for r in rows if r["variant"] == variant), None)
        names = [f"idle after start, auto ({variant}): clusterd's wake-ups in {seconds:g} s",
                 f"idle after start, auto ({variant}): clusterd's system calls in {seconds:g} s (strace -c -f)"]
        if row is None:
            out += [Target(n, None, "==", 0, skipped="not run (--sections)") for n in names]
            continue
        if row.get("problem"):
            out += [Target(n, None, "==", 0, shown=f"failed: {row['problem'][:140]}") for n in names]
            continue
        out.append(Target(names[0], row["wakeups"], "==", 0))
        out.append(Target(names[1], row["syscalls"], "==", 0,
                          shown=None if row["syscalls"] is not None
                          else f"not counted: strace did not attach ({row['strace_note']})"))
    return out


def server_targets(rows, servers):
    out = []
    for server in servers:
        row = next((r for r in rows if r["server"] == server), None)
        name = f"{server}, auto: ready detected (a `worker ready` line and an answer), runs"
        if row is None:
            out.append(Target(name, None, "==", 0, skipped="not run (--servers, --sections)"))
            continue
        if row.get("skipped"):
            out.append(Target(name, None, "==", 0, skipped=f"not run: {row['skipped']}"))
            continue
        runs = row["runs"]
        detected = sum(1 for r in runs if not r.get("problem") and r.get("sign"))
        out.append(Target(name, detected, "==", len(runs), shown=f"{detected} of {len(runs)}"))
    return out
