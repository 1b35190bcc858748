"""bench/run's results as markdown (its targets, one table with one row per setup, then the details
behind it), the req/s plot (gnuplot, SVG), and --publish: all of it into bench/run's results section
of docs/benchmarks.md, the plot to docs/bench-reqs.svg.

The targets bench/run judges (targets()), as docs/benchmarks.md states them:
  - clusterd + C serves at least C_RATIO of the req/s of the same C workers by hand (SO_REUSEPORT),
    with keep-alive and with one request per connection;
  - clusterd + JS serves at least JS_RATIO times the req/s of Node's cluster module with one request
    per connection (the same JS worker under both);
  - no connection is refused while the only worker is SIGKILLed and replaced, under clusterd + C and
    clusterd + JS, and a new worker answers;
  - a rolling reload under load fails no request with the C worker, and refuses and times out none
    with the JS worker (bench/reload's reload_targets()).
"""
import shutil
import statistics
import subprocess

from . import judge
from .judge import Target
from .reload_bench import reload
from .setups import REFERENCE

LOAD_NAMES = {"keep-alive": "keep-alive", "close": "one request per connection"}
RELOAD_CASE_SETUP = {"clusterd + C": "clusterd-c", "clusterd + JS": "clusterd-js", "node-cluster": "node-cluster",
                     "pm2 cluster": "pm2-cluster-js"}
C_RATIO = 0.98
JS_RATIO = 2.0


def grouped(number):
    return f"{number:,.0f}".replace(",", " ")


def median_of(runs, field):
    values = [r[field] for r in runs if r.get(field) is not None and not r.get("problem")]
    return statistics.median(values) if values else None


def throughput_cell(results, setup, load, field):
    """`value (ratio×)` against the reference of the setup's language, median over the rounds."""
    runs = results["throughput"].get(setup["key"], {}).get(load)
    if not runs:
        return "–"
    value = median_of(runs, field)
    if value is None:
        return "failed"
    ref_runs = results["throughput"].get(REFERENCE[setup["lang"]], {}).get(load)
    ref = median_of(ref_runs, field) if ref_runs else None
    text = grouped(value) if field == "rps" else f"{value:.1f}"
    return f"{text} ({value / ref:.2f}×)" if ref else text


def errors_text(errors):
    failed = {k: v for k, v in errors.items() if v}
    return ", ".join(f"{v} {k}" for k, v in failed.items()) if failed else "0 failed"


def sigkill_cell(row):
    if row is None:
        return "–"
    if row.get("problem"):
        return "failed: see below"
    after = (f"new pid after {row['new_pid_after_ms']:.0f} ms" if row["new_pid_after_ms"] is not None
             else f"no new pid within {row['window_s']:g} s")
    return f"{errors_text(row['errors'])}; {after}"


def reload_cell(rows):
    if not rows:
        return "–"
    if any(r.get("served") is None for r in rows):
        return "failed: see below"
    failed = "/".join(str(sum(r["errors"].values())) for r in rows)
    times = [r["reload_ms"] for r in rows if r.get("reload_ms") is not None]
    span = f"{min(times):.0f}–{max(times):.0f} ms" if times else "?"
    replaced = "" if all(r.get("replaced") for r in rows) else ", NOT all pids replaced"
    return f"{failed} failed; {span}{replaced}"


def main_table(results):
    head = ["setup", "workers' autogroups", "keep-alive req/s", "p99 ms", "1 req/conn req/s", "p99 ms",
            "SIGKILL of the only worker", "rolling reload (py-ka/py-new/wrk)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 4 + ["---"] * 2) + "|"]
    for setup in results["setups"]:
        if setup.get("skipped"):
            lines.append(f"| {setup['label']} | skipped: {setup['skipped']} |" + " |" * (len(head) - 2))
            continue
        reload_rows = [r for r in results.get("reload", []) if RELOAD_CASE_SETUP.get(r["case"]) == setup["key"]]
        cells = [setup["label"], setup.get("sessions", "?"),
                 throughput_cell(results, setup, "keep-alive", "rps"),
                 throughput_cell(results, setup, "keep-alive", "p99_ms"),
                 throughput_cell(results, setup, "close", "rps"),
                 throughput_cell(results, setup, "close", "p99_ms"),
                 sigkill_cell(results.get("sigkill", {}).get(setup["key"])),
                 reload_cell(reload_rows)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(results, run):
    v, s = results["versions"], results["settings"]
    return "\n".join(run.provenance() + [
        f"- Other versions: Node.js {v['node']}; PM2 {v['pm2']}; {v['wrk']}; {v['gcc']}; Python {v['python']}.",
        f"- Setups: {s['workers']} workers each unless said otherwise.",
    ] + [line for phase, line in [
        ("throughput", f"- Throughput: `wrk -t2 -c{s['connections']} -d{s['duration']}s --latency --timeout 5s`, "
                       f"keep-alive, and with `-H \"Connection: close\"` (1 req/conn), after a 1 s warm-up; "
                       f"{s['rounds']} round(s), median shown; (×) is the ratio to by hand (C rows) or to Node "
                       f"cluster (JS rows)."),
        ("sigkill", f"- SIGKILL: 1 worker, {s.get('kill_duration')} s of requests on new connections (4 at a "
                    f"time), the worker SIGKILLed at {s.get('kill_at')} s."),
        ("reload", f"- Rolling reload: 2 workers, bench/reload's loads py-keepalive, py-newconn, wrk (32 "
                   f"connections), {s.get('reload_duration')} s each, reload at {s.get('reload_hup_at')} s; "
                   f"failed requests per load, and the reload's duration.")] if phase in s["phases"]])


def _ratio_target(results, name, key, ref, load, threshold):
    chosen = {x["key"] for x in results["setups"] if not x.get("skipped")}
    if "throughput" not in results["settings"]["phases"]:
        return Target(name, None, ">=", threshold, "×", skipped="not run (--phases)")
    if key not in chosen or ref not in chosen:
        return Target(name, None, ">=", threshold, "×", skipped="not run (--setups)")
    value = median_of(results["throughput"][key][load], "rps")
    base = median_of(results["throughput"][ref][load], "rps")
    if value is None or base is None or not base:
        return Target(name, None, ">=", threshold, "×", shown="a run failed: see the details")
    return Target(name, value / base, ">=", threshold, "×",
                  shown=f"{value / base:.2f}× ({grouped(value)} / {grouped(base)} req/s)")


def _sigkill_target(results, key, label):
    name = f"{label}: connections refused while its only worker is SIGKILLed and replaced"
    if "sigkill" not in results["settings"]["phases"]:
        return Target(name, None, "==", 0, skipped="not run (--phases)")
    row = results.get("sigkill", {}).get(key)
    if row is None:
        return Target(name, None, "==", 0, skipped="not run (--setups)")
    if row.get("problem"):
        return Target(name, None, "==", 0, shown=f"failed: {row['problem'][:120]}")
    if row["new_pid_after_ms"] is None:
        return Target(name, None, "==", 0, shown=f"{row['errors']['refused']} refused, and no new worker answered "
                                                 f"within {row['window_s']:g} s")
    return Target(name, row["errors"]["refused"], "==", 0,
                  shown=f"{row['errors']['refused']} (new worker after {row['new_pid_after_ms']:.0f} ms; "
                        f"{errors_text(row['errors'])} in all)")


def targets(results):
    """The targets docs/benchmarks.md states for bench/run, judged on these results."""
    out = [_ratio_target(results, f"clusterd + C / by hand, C, SO_REUSEPORT: req/s, {LOAD_NAMES[load]}",
                         "clusterd-c", REFERENCE["C"], load, C_RATIO) for load in LOAD_NAMES]
    out.append(_ratio_target(results, "clusterd + JS / Node cluster + JS: req/s, one request per connection",
                             "clusterd-js", REFERENCE["JS"], "close", JS_RATIO))
    out += [_sigkill_target(results, "clusterd-c", "clusterd + C"), _sigkill_target(results, "clusterd-js", "clusterd + JS")]
    if "reload" in results["settings"]["phases"]:
        out += reload.reload_targets(results.get("reload", []))
    else:
        out += [Target(name, None, "==", 0, skipped="not run (--phases)") for name in reload.RELOAD_TARGET_NAMES]
    return out


def details(results):
    out = []
    problems = []
    for key, loads in results["throughput"].items():
        for load, runs in loads.items():
            for i, run in enumerate(runs):
                if run.get("problem"):
                    problems.append(f"- {key} / {load} round {i + 1}: {run['problem']}")
                elif run.get("errors"):
                    problems.append(f"- {key} / {load} round {i + 1}: wrk errors {run['error_detail']}"
                                    + (f", {run['non200']} non-2xx" if run.get("non200") else ""))
    if results["settings"]["rounds"] > 1:
        out += ["", "Req/s of every round (keep-alive | one request per connection):", ""]
        for key, loads in results["throughput"].items():
            out.append(f"- {key}: " + " | ".join(", ".join(grouped(r["rps"]) if r.get("rps") else "failed"
                                                            for r in runs) for runs in loads.values()))
    cpu = cpu_lines(results)
    if cpu:
        out += ["", "CPU seconds used during each measured run (median over the rounds): the load client "
                "(wrk), the workers together, the supervisor process; requests served per CPU second of the "
                "workers (less dependent on how the scheduler shared the CPUs than req/s); and, with "
                "keep-alive, how wrk's connections were spread over the workers half-way through each round:",
                ""] + cpu
    if problems:
        out += ["", "Errors and problems during the throughput runs:", ""] + problems
    kills = results.get("sigkill", {})
    if kills:
        out += ["", "SIGKILL of the only worker, in detail:", ""]
        for key, row in kills.items():
            if row.get("problem"):
                out.append(f"- {key}: {row['problem']}")
                continue
            detail = ", ".join(f"{v} × {k}" for k, v in sorted(row["details"].items()) if v)
            out.append(f"- {key}: {row['answered']} answered, slowest {row['max_ms']:.0f} ms"
                       + (f"; failures: {detail}" if detail else ""))
    if results.get("reload"):
        out += ["", "Rolling reload (bench/reload's table; " + reload.RATIO_LEGEND + "):", "", "```",
                reload.table(results["reload"]), "```"]
        notes = [f"- {r['case']} / {r['load']}: {r['problem']}" for r in results["reload"] if r.get("problem")]
        if notes:
            out += [""] + notes
    if results.get("notes"):
        out += ["", "Notes:", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(out).lstrip("\n")


def cpu_lines(results):
    lines = []
    duration = results["settings"]["duration"]
    for setup in results["setups"]:
        cells = []
        for load, runs in results["throughput"].get(setup["key"], {}).items():
            runs = [r for r in runs if r.get("cpu", {}).get("workers") and not r.get("problem")]
            if not runs:
                continue
            client = statistics.median(r["cpu"]["client"] for r in runs)
            workers = statistics.median(r["cpu"]["workers"] for r in runs)
            per_cpu = statistics.median(r["rps"] * duration / r["cpu"]["workers"] for r in runs)
            supervisor = [r["cpu"]["supervisor"] for r in runs if r["cpu"].get("supervisor") is not None]
            spread = "; ".join("/".join(map(str, r["spread"])) for r in runs if r.get("spread"))
            cells.append(f"{LOAD_NAMES[load]}: wrk {client:.1f} s, workers {workers:.1f} s, supervisor "
                         + (f"{statistics.median(supervisor):.2f} s" if supervisor else "none")
                         + f", {grouped(per_cpu)} req per worker CPU s"
                         + (f", connections per worker {spread}" if spread else ""))
        if cells:
            lines.append(f"- {setup['label']}: " + "; ".join(cells))
    return lines


def markdown(results, plot_name, run, verdicts):
    parts = [header(results, run), "", "Targets (bench/run exits 1 when one is missed):", "", judge.table(verdicts),
             "", main_table(results), ""]
    if plot_name:
        parts += [f"![requests/s per setup]({plot_name})", ""]
    parts += [details(results), ""]
    return "\n".join(parts)


def plot(results, svg_path):
    """A clustered bar chart of req/s per setup, keep-alive beside one request per connection."""
    rows = [s for s in results["setups"] if not s.get("skipped") and s["key"] in results["throughput"]]
    if not rows or shutil.which("gnuplot") is None:
        return None
    data_path = svg_path[:-4] + ".dat"
    with open(data_path, "w") as f:
        for s in rows:
            values = [median_of(results["throughput"][s["key"]].get(load, []), "rps") or 0 for load in LOAD_NAMES]
            f.write(f"\"{s['label']}\" {values[0]:.0f} {values[1]:.0f}\n")
    settings = results["settings"]
    title = f"requests/s, {settings['workers']} workers, wrk -c{settings['connections']} on 127.0.0.1 ({results['started']})"
    script = f"""
set terminal svg size 1100,500 dynamic font "sans,12" background rgb "white"
set output "{svg_path}"
set title "{title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "requests/s"
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set grid ytics
set xtics rotate by 20 right noenhanced nomirror
set key top right
# clustered histogram of 2 columns with gap 1: the bars stand at x = row -1/6 and row +1/6
plot "{data_path}" using 2:xtic(1) title "keep-alive", "" using 3 title "one request per connection", \
     "" using ($0-1.0/6):2:(sprintf("%.0fk", $2/1000)) with labels offset 0,0.7 notitle, \
     "" using ($0+1.0/6):3:(sprintf("%.0fk", $3/1000)) with labels offset 0,0.7 notitle
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return svg_path


def publish(text, svg_path, docs_svg):
    """bench/run's results section of docs/benchmarks.md rewritten with text; the plot to docs_svg."""
    judge.publish("run", text)
    if svg_path:
        shutil.copyfile(svg_path, docs_svg)
