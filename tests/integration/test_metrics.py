"""`clusterd metrics`: the Prometheus text format, read by the Python Prometheus client's own parser
(python3-prometheus-client) as a scraper would: the instance's gauges, restarts and exits by
reason after a worker is killed, reloads and the last reload's duration after a reload, and one
series per worker process with its process tree's CPU and memory.
"""
import os
import signal

from harness import PYTHON, wait_until, worker
from prometheus_text import samples_of, value


def scrape(clusterd):
    code, out, err = clusterd.control("metrics")
    assert (code, err) == (0, ""), err
    return samples_of(out)


def test_metrics_are_scraped_by_a_prometheus_parser_and_follow_what_happens(start_clusterd):
    clusterd = start_clusterd(["--name", "shop", "--workers", "2", "--listen", "http=127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--graceful"])
    first = set(clusterd.ready_pids(2))

    samples = scrape(clusterd)
    assert value(samples, "clusterd_info", name="shop") == 1
    assert value(samples, "clusterd_workers_wanted") == 2 and value(samples, "clusterd_workers_ready") == 2
    assert value(samples, "clusterd_generation") == 1
    assert value(samples, "clusterd_worker_restarts_total") == 0
    assert value(samples, "clusterd_worker_exits_total", reason="signal") == 0
    assert value(samples, "clusterd_reloads_total", result="finished") == 0
    assert "clusterd_last_reload_duration_seconds" not in samples
    status = {w["pid"]: w for w in clusterd.status()["workers"]}
    for pid in first:
        labels = dict(slot=status[pid]["slot"], pid=pid, generation=1)
        assert value(samples, "clusterd_worker_state", state="ready", **labels) == 1
        assert value(samples, "clusterd_worker_processes", **labels) == 1
        assert value(samples, "clusterd_worker_resident_memory_bytes", **labels) > 1 << 20
        assert value(samples, "clusterd_worker_proportional_memory_bytes", **labels) > 0
        assert value(samples, "clusterd_worker_cpu_seconds_total", **labels) >= 0
        assert abs(value(samples, "clusterd_worker_start_time_seconds", **labels) - status[pid]["started_at"]) < 1

    # A worker killed by a signal clusterd did not send: an exit by signal, then a restart.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    clusterd.wait_for_log(r"worker exited slot=\d+ gen=1 pid=%d status=signal:KILL" % victim)
    clusterd.ready_pids(3)
    samples = scrape(clusterd)
    assert value(samples, "clusterd_worker_exits_total", reason="signal") == 1
    assert value(samples, "clusterd_worker_exits_total", reason="exit_code") == 0
    assert value(samples, "clusterd_worker_restarts_total") == 1
    assert all(l["pid"] != str(victim) for l, _ in samples["clusterd_worker_processes"])

    # A reload: counted as finished, with its duration; the old workers' stops are not exits.
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    samples = scrape(clusterd)
    assert value(samples, "clusterd_generation") == 2
    assert value(samples, "clusterd_reloads_total", result="finished") == 1
    assert value(samples, "clusterd_reloads_total", result="abandoned") == 0
    assert 0 < value(samples, "clusterd_last_reload_duration_seconds") < 120
    assert value(samples, "clusterd_worker_exits_total", reason="signal") == 1
    assert value(samples, "clusterd_worker_exits_total", reason="exit_code") == 0
    assert {l["generation"] for l, _ in samples["clusterd_worker_processes"]} == {"2"}
    clusterd.seen_pids.update(int(l["pid"]) for l, _ in samples["clusterd_worker_processes"])
