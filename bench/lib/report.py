"""bench/run's results as markdown (one table, one row per setup, then the details behind it), the
req/s plot (gnuplot, SVG), and --publish: the table into docs/benchmarks.md between its markers,
the plot to docs/bench-reqs.svg.
"""
import re
import shutil
import statistics
import subprocess

from .reload_bench import reload
from .setups import REFERENCE

BEGIN = "<!-- bench/run results: begin (bench/run --publish rewrites this part) -->"
END = "<!-- bench/run results: end -->"
LOAD_NAMES = {"keep-alive": "keep-alive", "close": "one request per connection"}
RELOAD_CASE_SETUP = {"clusterd + C": "clusterd-c", "clusterd + JS": "clusterd-js", "node-cluster": "node-cluster",
                     "pm2 cluster": "pm2-cluster-js"}


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


def header(results):
    m, v, s = results["machine"], results["versions"], results["settings"]
    return "\n".join([
        f"Run {results['started']} – {results['ended']} (`bench/run{s['argv']}`), "
        f"{s['workers']} workers per setup unless said otherwise.",
        "",
        f"- Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, kernel {m['kernel']}, Debian {m['debian']}, "
        f"scheduler autogroup {m['autogroup']}; load average (1 min) {m['loadavg']} before, "
        f"{results['loadavg_after']} after.",
        f"- Versions: {v['clusterd']}; Node.js {v['node']}; PM2 {v['pm2']}; {v['wrk']}; {v['gcc']}; "
        f"Python {v['python']}.",
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
        out += ["", "Rolling reload (bench/reload's table; `served vs node-cluster` is the ratio to the "
                "node-cluster row of the same load):", "", "```", reload.table(results["reload"]), "```"]
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


def markdown(results, plot_name):
    parts = [header(results), "", main_table(results), ""]
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


def publish(text, svg_path, docs_md, docs_svg):
    """Rewrites the part of docs_md between BEGIN and END with text; copies the plot to docs_svg."""
    with open(docs_md) as f:
        doc = f.read()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise RuntimeError(f"{docs_md}: no results section between the markers {BEGIN!r} and {END!r}")
    doc = pattern.sub(lambda _: f"{BEGIN}\n{text.strip()}\n{END}", doc)
    with open(docs_md, "w") as f:
        f.write(doc)
    if svg_path:
        shutil.copyfile(svg_path, docs_svg)
