"""Rolling reload (SIGHUP) and scaling (SIGTTIN/SIGTTOU), checked the way an operator checks them:
requests keep being answered, pids change, the new generation serves, a broken or never-ready
configuration changes nothing, listeners and the worker count follow the file.

Failed requests are counted by two bounded client threads (LoadClient): one with keep-alive
connections, one with a new connection per request. What counts as failed: a connection refused or
reset, a request without a complete answer, an answer that is not 200. One case is not a failure,
because it is what real HTTP clients (browsers, urllib3, Go's net/http) handle themselves: a
keep-alive connection that a stopping worker closes while it is idle between two requests, so the
next request sent on it gets no answer at all (no status line). Such a request is retried once on a
fresh connection; if that retry fails too, it counts as failed.
"""
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

import harness
from harness import PYTHON, http_get, toml_string, wait_until, worker

READY = r"worker ready slot=(\d+) gen=%d pid=(\d+)"
STOPPED = r"worker stopped slot=(\d+) gen=%d pid=(\d+)"

# The errors of a request sent on a connection the server has already closed: nothing came
# back (http.client.RemoteDisconnected is a ConnectionResetError), or the send itself failed.
CLOSED_BEFORE_ANSWER = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class LoadClient(threading.Thread):
    """Sends GET / in a loop until told to stop or its limits (request count and time) are reached.

    keep_alive=True: HTTP/1.1 keep-alive, one connection reused until the server closes it
    (`Connection: close` or closing it), then a new one. keep_alive=False: a new connection per
    request. Each answer is recorded as (started, pid, generation, served_address), started
    being time.monotonic() when the request began.
    """

    def __init__(self, address, keep_alive, max_requests=20000, max_seconds=45.0):
        super().__init__(daemon=True)
        self.address = address
        self.keep_alive = keep_alive
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.answers = []
        self.errors = []
        self.retried = []      # requests retried once after an idle keep-alive connection closed
        self.stop_now = threading.Event()
        self.connection = None

    def new_connection(self):
        if self.address.startswith("unix:"):
            return harness.UnixHTTPConnection(self.address[len("unix:"):], timeout=10.0)
        host, port = harness.split_host_port(self.address)
        return http.client.HTTPConnection(host, port, timeout=10.0)

    def exchange(self, connection):
        """One request on connection; raises _NoAnswer when nothing at all came back."""
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
        except CLOSED_BEFORE_ANSWER as error:
            raise _NoAnswer(error)
        body = response.read()               # an error from here on is a failed request
        if response.status != 200:
            raise AssertionError("HTTP %d: %r" % (response.status, body[:200]))
        if response.will_close:
            connection.close()
            self.connection = None
        return json.loads(body)

    def get(self):
        if not self.keep_alive:
            connection = self.new_connection()
            try:
                return self.exchange(connection)
            except _NoAnswer as no_answer:
                raise no_answer.error
            finally:
                connection.close()
        reused = self.connection is not None
        if not reused:
            self.connection = self.new_connection()
        try:
            return self.exchange(self.connection)
        except _NoAnswer as no_answer:
            self.connection.close()
            self.connection = None
            if not reused:
                raise no_answer.error         # a fresh connection that got nothing: failed
            self.retried.append(repr(no_answer.error))
            self.connection = self.new_connection()
            try:
                return self.exchange(self.connection)
            except _NoAnswer as again:
                raise again.error

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        try:
            for _ in range(self.max_requests):
                if self.stop_now.is_set() or time.monotonic() > deadline:
                    return
                started = time.monotonic()
                try:
                    answer = self.get()
                    self.answers.append((started, answer["pid"], answer["generation"],
                                         answer.get("served_address")))
                except Exception as error:   # every failure counts, whatever its kind
                    self.errors.append("%.3f %r" % (started, error))
                    if self.connection is not None:
                        self.connection.close()
                        self.connection = None
        finally:
            if self.connection is not None:
                self.connection.close()

    def answers_since(self, since):
        return [answer for answer in self.answers if answer[0] >= since]

    def finish(self):
        self.stop_now.set()
        self.join(30.0)
        assert not self.is_alive(), "load client did not stop"


class _NoAnswer(Exception):
    def __init__(self, error):
        super().__init__(repr(error))
        self.error = error


def start_load(address):
    """Both clients, once each has been answered a few times."""
    clients = [LoadClient(address, keep_alive=True), LoadClient(address, keep_alive=False)]
    for client in clients:
        client.start()
    wait_until(lambda: all(len(client.answers) >= 10 for client in clients), 10.0,
               "answers to both load clients", describe=lambda: str([c.errors for c in clients]))
    return clients


def write_config(directory, workers=2, command=None, listen=(("http", "127.0.0.1:0"),), env=None,
                 extra="", name="clusterd.toml"):
    """A config file for clusterd; returns its path. listen: (name, address) pairs."""
    command = command or [PYTHON, worker("http_worker.py"), "--graceful"]
    lines = ["workers = %d" % workers,
             "command = [%s]" % ", ".join(toml_string(part) for part in command)]
    for listener_name, address in listen:
        lines += ["", "[[listen]]", "name = %s" % toml_string(listener_name),
                  "address = %s" % toml_string(address)]
    if env:
        lines += ["", "[env]"] + ["%s = %s" % (key, toml_string(value)) for key, value in env.items()]
    text = "\n".join(lines) + "\n" + extra
    return harness.write_file(directory, name, text)


def generation_pids(clusterd, generation, count, timeout=10.0):
    """{slot: pid} of the `count` workers logged ready for generation."""
    matches = clusterd.wait_for_log(READY % generation, count, timeout)
    pids = {int(m.group(1)): int(m.group(2)) for m in matches}
    clusterd.seen_pids.update(pids.values())
    return pids


def answering_pids(address, expected, timeout=10.0):
    """Requests (a new connection each) until every pid in `expected` has answered; returns the
    answers by pid. Any other pid answering fails."""
    seen = {}

    def all_answered():
        answer = http_get(address)
        seen[answer["pid"]] = answer
        return set(seen) >= set(expected)

    wait_until(all_answered, timeout, "answers from pids %s" % sorted(expected),
               describe=lambda: "answered: %s" % sorted(seen))
    assert set(seen) == set(expected), "unexpected pids answered: %s" % sorted(set(seen) - set(expected))
    return seen


def live_children(clusterd):
    return sorted(pid for pid in clusterd.children() if harness.pid_alive(pid))


def line_index(clusterd, pattern):
    """Index of the first log line matching pattern (the log is in event order)."""
    regex = re.compile(pattern)
    for index, line in enumerate(clusterd.log().splitlines()):
        if regex.search(line):
            return index
    raise AssertionError("no log line /%s/\n%s" % (pattern, clusterd.log_tail()))


def log_time_of(clusterd, pattern):
    [match] = clusterd.matches(pattern)
    return harness.log_time(match.string)


def assert_no_failed_requests(clients):
    for client in clients:
        assert client.errors == [], "%s client: %d failed requests: %s" % (
            "keep-alive" if client.keep_alive else "new-connection", len(client.errors),
            client.errors[:5])


def read_notify_reports(directory):
    """notify_worker.py's reports in directory, by pid; `term_at` is when it got SIGTERM."""
    reports = harness.read_reports(directory, prefix="notify-")
    for pid, report in reports.items():
        try:
            with open(os.path.join(directory, "notify-%d.term" % pid)) as f:
                report["term_at"] = float(f.read())
        except FileNotFoundError:
            pass
    return reports


# ---- reload under load


def test_sighup_under_load_replaces_every_worker_without_a_failed_request(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    clients = start_load(address)
    try:
        clusterd.signal(signal.SIGHUP)
        clusterd.wait_for_log(r"reload finished generation=2 workers=2")
        finished = time.monotonic()
        new = generation_pids(clusterd, 2, 2)
        # Keep the load on until both clients were answered well after the reload.
        wait_until(lambda: all(len(c.answers_since(finished)) >= 30 for c in clients), 15.0,
                   "answers after the reload", describe=clusterd.log_tail)
    finally:
        for client in clients:
            client.finish()

    assert_no_failed_requests(clients)
    assert "reload started generation=2 workers=2 batch=1" in clusterd.log()
    assert set(new) == {0, 1} and set(old) == {0, 1}
    assert not set(new.values()) & set(old.values()), "every pid is replaced"
    assert live_children(clusterd) == sorted(new.values())
    assert not [pid for pid in old.values() if harness.pid_alive(pid)]
    for client in clients:
        before = [answer for answer in client.answers if answer[2] == "1"]
        assert before and {answer[1] for answer in before} <= set(old.values())
        after = client.answers_since(finished)
        # By "reload finished" every old worker has exited: only generation 2 answers.
        assert {answer[2] for answer in after} == {"2"}
        assert {answer[1] for answer in after} <= set(new.values())
    # Each slot's new worker was ready before its old worker was stopped.
    for slot in (0, 1):
        assert line_index(clusterd, r"worker ready slot=%d gen=2 " % slot) < \
            line_index(clusterd, r"worker stopped slot=%d gen=1 pid=%d " % (slot, old[slot]))


def test_reload_waits_for_ready_notify_before_stopping_the_old_worker(start_clusterd, tmpdir_short):
    reports = os.path.join(tmpdir_short, "reports")
    os.mkdir(reports)
    command = [PYTHON, worker("notify_worker.py"), "--ready-after", "1.5", "--report", reports]
    config = write_config(tmpdir_short, workers=2, command=command,
                          extra='\n[ready]\nmode = "notify"\ntimeout = "10s"\n')
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    clients = start_load(address)
    try:
        clusterd.signal(signal.SIGHUP)
        clusterd.wait_for_log(r"reload finished generation=2 workers=2", timeout=15.0)
        finished = time.monotonic()
        new = generation_pids(clusterd, 2, 2)
        wait_until(lambda: all(len(c.answers_since(finished)) >= 20 for c in clients), 15.0,
                   "answers after the reload", describe=clusterd.log_tail)
    finally:
        for client in clients:
            client.finish()

    assert_no_failed_requests(clients)
    started_at = log_time_of(clusterd, r"reload started generation=2 ")
    by_pid = read_notify_reports(reports)
    for slot in (0, 1):
        ready_line = r"worker ready slot=%d gen=2 pid=%d" % (slot, new[slot])
        stopped_line = r"worker stopped slot=%d gen=1 pid=%d " % (slot, old[slot])
        assert line_index(clusterd, ready_line) < line_index(clusterd, stopped_line)
        ready_at = log_time_of(clusterd, ready_line)
        # clusterd logged ready only once the worker had sent READY=1 (the log has ms precision)
        assert ready_at >= by_pid[new[slot]]["ready_sent_at"] - 0.002
        # ...and the old worker got its stop signal only after that, 1.5 s into the reload
        term_at = by_pid[old[slot]]["term_at"]
        assert term_at >= ready_at, (slot, term_at, ready_at)
        assert term_at - started_at >= 1.4, (slot, term_at - started_at)
    # batch = 1: slot 1's new worker started only once slot 0's was ready, so the reload took
    # two start-ups.
    finished_at = log_time_of(clusterd, r"reload finished generation=2 ")
    assert finished_at - started_at >= 2.9
    for client in clients:
        after = client.answers_since(finished)
        assert {answer[1] for answer in after} <= set(new.values())


def test_reload_whose_workers_never_become_ready_is_abandoned_and_old_workers_keep_serving(
        start_clusterd, tmpdir_short):
    command = [PYTHON, worker("notify_worker.py")]
    ready = '\n[ready]\nmode = "notify"\ntimeout = "2s"\n'
    config = write_config(tmpdir_short, workers=2, command=command, extra=ready)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    clients = start_load(address)
    try:
        # The new configuration's workers never send READY=1.
        write_config(tmpdir_short, workers=2, command=command + ["--never-ready"], extra=ready)
        clusterd.signal(signal.SIGHUP)
        [abandoned] = clusterd.wait_for_log(
            r"reload abandoned: slot=0 gen=2 not ready within 2s; the running workers keep "
            r"serving generation=1")
        abandoned_seen = time.monotonic()
        [stopped] = clusterd.wait_for_log(STOPPED % 2)
        unready = int(stopped.group(2))
        clusterd.seen_pids.add(unready)
        wait_until(lambda: all(len(c.answers_since(abandoned_seen)) >= 20 for c in clients), 15.0,
                   "answers after the abandoned reload", describe=clusterd.log_tail)
    finally:
        for client in clients:
            client.finish()

    assert_no_failed_requests(clients)
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert clusterd.count(r"worker stopped slot=\d+ gen=1 ") == 0
    assert clusterd.count(r"reload finished") == 0
    assert int(stopped.group(1)) == 0                # batch 1: slot 1 was never tried
    assert unready not in old.values()
    assert live_children(clusterd) == sorted(old.values())
    for client in clients:
        assert {answer[1] for answer in client.answers} <= set(old.values())
    answering_pids(address, old.values())

    # The next reload gets a new generation number: 2 is not reused.
    write_config(tmpdir_short, workers=2, command=command, extra=ready)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=2")
    new = generation_pids(clusterd, 3, 2)
    answering_pids(address, new.values())


def test_broken_config_on_sighup_changes_nothing_and_the_fixed_file_applies(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, env={"GREETING": "one"})
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    assert {a["env"]["GREETING"] for a in answering_pids(address, old.values()).values()} == {"one"}

    # Two mistakes: line 1 (workers) and the [restart] table's delay at the end of the file.
    broken = write_config(tmpdir_short, workers=2, env={"GREETING": "two"},
                          extra="\n[restart]\ndelay = 5\n")
    text = open(broken).read().replace("workers = 2", 'workers = "many"', 1)
    harness.write_file(tmpdir_short, "clusterd.toml", text)
    delay_line = text.splitlines().index("delay = 5") + 1
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload refused: the configuration has 2 problem\(s\)\W.*the running "
                          r"workers keep serving")
    log = clusterd.log()
    assert clusterd.count(r"reload refused: %s:1:\d+: workers: " % re.escape(config)) == 1, log
    assert clusterd.count(r"reload refused: %s:%d:\d+: restart\.delay: "
                          % (re.escape(config), delay_line)) == 1, log
    assert "reload started" not in log
    assert live_children(clusterd) == sorted(old.values())
    answers = answering_pids(address, old.values())
    assert {a["env"]["GREETING"] for a in answers.values()} == {"one"}
    assert {a["generation"] for a in answers.values()} == {"1"}

    # Fixed: the next SIGHUP applies it.
    write_config(tmpdir_short, workers=2, env={"GREETING": "two"})
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    new = generation_pids(clusterd, 2, 2)
    answers = answering_pids(address, new.values())
    assert {a["env"]["GREETING"] for a in answers.values()} == {"two"}
    assert {a["generation"] for a in answers.values()} == {"2"}
    assert not [pid for pid in old.values() if harness.pid_alive(pid)]


def test_sighup_without_a_config_file_restarts_every_worker_unchanged(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--graceful"])
    address = clusterd.address()
    old = generation_pids(clusterd, 1, 2)
    before = answering_pids(address, old.values())
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    new = generation_pids(clusterd, 2, 2)
    assert not set(new.values()) & set(old.values())
    after = answering_pids(address, new.values())
    assert {a["generation"] for a in after.values()} == {"2"}
    assert {tuple(a["argv"]) for a in after.values()} == {tuple(a["argv"]) for a in before.values()}
    assert live_children(clusterd) == sorted(new.values())


# ---- what a reload changes: worker count, listeners


def test_reload_changes_the_worker_count_up_and_down(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    generation_pids(clusterd, 1, 2)

    write_config(tmpdir_short, workers=3)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=3")
    three = generation_pids(clusterd, 2, 3)
    assert set(three) == {0, 1, 2}
    assert live_children(clusterd) == sorted(three.values())
    answers = answering_pids(address, three.values())
    assert {(a["slot"], a["workers"]) for a in answers.values()} == {("0", "3"), ("1", "3"), ("2", "3")}

    write_config(tmpdir_short, workers=1)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=1")
    one = generation_pids(clusterd, 3, 1)
    assert set(one) == {0}
    for slot in (0, 1, 2):
        clusterd.wait_for_log(r"worker stopped slot=%d gen=2 pid=%d " % (slot, three[slot]))
    assert live_children(clusterd) == [one[0]]
    answers = answering_pids(address, [one[0]])
    assert answers[one[0]]["workers"] == "1"


def test_reload_adds_a_listener_and_closes_a_removed_one_after_the_old_generation(
        start_clusterd, tmpdir_short):
    # ready.mode = "1s": each new worker takes a second to count as ready, so a reload of two
    # slots lasts about two seconds, long enough to look at it while it runs.
    command = [PYTHON, worker("http_worker.py"), "--graceful", "--all-listeners"]
    ready = '\n[ready]\nmode = "1s"\n'
    admin_path = os.path.join(tmpdir_short, "admin.sock")
    config = write_config(tmpdir_short, workers=2, command=command, extra=ready)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    http = clusterd.address("http")
    generation_pids(clusterd, 1, 2)
    assert not harness.can_connect("unix:" + admin_path)

    # Added: bound by the reload, served by the new generation.
    write_config(tmpdir_short, workers=2, command=command, extra=ready,
                 listen=(("http", "127.0.0.1:0"), ("admin", "unix:" + admin_path)))
    clusterd.signal(signal.SIGHUP)
    admin = clusterd.address("admin")
    assert admin == "unix:" + admin_path
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    second = generation_pids(clusterd, 2, 2)
    answers = answering_pids(admin, second.values())
    assert {a["served_address"] for a in answers.values()} == {admin_path}
    answers = answering_pids(http, second.values())
    assert {tuple(a["served_address"]) for a in answers.values()} == {tuple(harness.split_host_port(http))}
    assert clusterd.count(r"listening name=http ") == 1     # kept, not bound again

    # Removed: still open while generation 2 serves during the reload, closed once it is gone.
    write_config(tmpdir_short, workers=2, command=command, extra=ready,
                 listen=(("admin", "unix:" + admin_path),))
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload started generation=3 ")
    during = http_get(http)
    assert during["pid"] in second.values()
    clusterd.wait_for_log(r"reload finished generation=3 workers=2")
    third = generation_pids(clusterd, 3, 2)
    wait_until(lambda: not harness.can_connect(http), 10.0, "the removed listener closed")
    with pytest.raises(ConnectionRefusedError):
        harness.connect(http)
    answers = answering_pids(admin, third.values())
    assert {a["listen"]["LISTEN_FDNAMES"] for a in answers.values()} == {"admin"}


def test_listeners_on_port_0_stay_distinct_across_reloads(start_clusterd, tmpdir_short):
    command = [PYTHON, worker("http_worker.py"), "--graceful", "--all-listeners"]
    two = (("a", "127.0.0.1:0"), ("b", "127.0.0.1:0"))
    config = write_config(tmpdir_short, workers=1, command=command, listen=two)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    a, b = clusterd.address("a"), clusterd.address("b")
    assert a != b
    generation_pids(clusterd, 1, 1)

    # The same file again: both listeners stay what they are.
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=1")
    [pid] = generation_pids(clusterd, 2, 1).values()
    for address in (a, b):
        answer = http_get(address, timeout=2.0)
        assert answer["pid"] == pid
        assert tuple(answer["served_address"]) == harness.split_host_port(address)

    # One more port-0 listener: bound by the reload, on a port of its own.
    write_config(tmpdir_short, workers=1, command=command, listen=two + (("c", "127.0.0.1:0"),))
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=1")
    c = clusterd.address("c", timeout=1.0)
    assert c not in (a, b)
    [pid] = generation_pids(clusterd, 3, 1).values()
    assert tuple(http_get(c, timeout=2.0)["served_address"]) == harness.split_host_port(c)


# ---- scaling


def test_sigttin_and_sigttou_change_the_number_of_serving_workers(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py"), "--graceful"])
    address = clusterd.address()
    two = generation_pids(clusterd, 1, 2)
    answering_pids(address, two.values())

    clusterd.signal(signal.SIGTTIN)
    clusterd.wait_for_log(r"scaling workers=3")
    three = generation_pids(clusterd, 1, 3)
    assert set(three) == {0, 1, 2} and three[0] == two[0] and three[1] == two[1]
    assert live_children(clusterd) == sorted(three.values())
    answering_pids(address, three.values())

    # One signal at a time: two identical pending signals would merge into one.
    clusterd.signal(signal.SIGTTOU)
    clusterd.wait_for_log(r"scaling workers=2")
    clusterd.wait_for_log(r"worker stopped slot=2 gen=1 pid=%d " % three[2])
    clusterd.signal(signal.SIGTTOU)
    clusterd.wait_for_log(r"scaling workers=1")
    clusterd.wait_for_log(r"worker stopped slot=1 gen=1 pid=%d " % three[1])   # highest slots first
    assert live_children(clusterd) == [three[0]]
    answering_pids(address, [three[0]])

    # Never below one worker.
    clusterd.signal(signal.SIGTTOU)
    assert len(clusterd.wait_for_log(r"scaling workers=1", count=2)) == 2
    assert live_children(clusterd) == [three[0]]
    assert harness.can_connect(address)
    assert http_get(address)["pid"] == three[0]
    assert clusterd.count(r"worker stopped slot=0 ") == 0


# ---- reloads that meet other events


def notify_command(*extra):
    return [PYTHON, worker("notify_worker.py")] + list(extra)


NOTIFY_READY = '\n[ready]\nmode = "notify"\ntimeout = "10s"\n'
# For workers held at a gate: the test, not a timeout, decides when they get ready.
GATED_READY = '\n[ready]\nmode = "notify"\ntimeout = "5m"\n'


def gated_reload(clusterd, directory, workers=2, **options):
    """Rewrites the config so that the next generation's workers are ready only once the test
    creates the gate file (its path is returned; it does not exist yet), and starts that reload.
    Generation 1 (started from notify_command()) stays as it was: a restart of one of its
    workers runs its own command, without the gate."""
    gate = os.path.join(directory, "gate")
    write_config(directory, workers=workers, command=notify_command("--ready-when", gate),
                 extra=GATED_READY, **options)
    clusterd.signal(signal.SIGHUP)
    return gate


def open_gate(gate):
    harness.write_file(os.path.dirname(gate), os.path.basename(gate), "")


def test_reload_is_abandoned_when_a_new_worker_exits_before_it_is_ready(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=NOTIFY_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    # The new command never sends READY=1 and exits 1 after 0.2 s.
    write_config(tmpdir_short, workers=2, extra=NOTIFY_READY,
                 command=[PYTHON, worker("http_worker.py"), "--exit-after", "0.2"])
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload abandoned: slot=0 gen=2 exited status=exit:1 before it was ready; "
                          r"the running workers keep serving generation=1")
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert live_children(clusterd) == sorted(old.values())
    answering_pids(address, old.values())


def test_a_reload_asked_for_during_a_reload_is_queued_once(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=GATED_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 2)
    gate = gated_reload(clusterd, tmpdir_short)
    clusterd.wait_for_log(r"reload started generation=2 ")
    # Two more requests while generation 2 is held at its gate: they join into one.
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload queued behind generation=2 as generation=3")
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload queued behind generation=2 as generation=4")
    # The gate is closed, so no worker of generation 2 can be ready: the reload is still under way.
    assert not os.path.exists(gate)
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert "reload finished" not in clusterd.log()
    open_gate(gate)
    # Each accepted request gets its number; the newest file wins, so generation 3 never runs.
    clusterd.wait_for_log(r"reload finished generation=4 workers=2", timeout=15.0)
    log = clusterd.log()
    assert log.index("reload finished generation=2 ") < log.index("reload started generation=4 ")
    assert "reload started generation=3" not in log
    assert "generation=5" not in log     # a queued reload starts the moment the previous finishes
    answering_pids(clusterd.address("http"), generation_pids(clusterd, 4, 2).values())


def test_scaling_during_a_reload_sets_the_new_generations_worker_count(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=GATED_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 2)
    gate = gated_reload(clusterd, tmpdir_short)
    clusterd.wait_for_log(r"reload started generation=2 workers=2 ")
    clusterd.signal(signal.SIGTTIN)
    clusterd.wait_for_log(r"scaling workers=3")
    # Scaled while generation 2 is held at its gate: the reload had not finished.
    assert not os.path.exists(gate)
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert "reload finished" not in clusterd.log()
    open_gate(gate)
    clusterd.wait_for_log(r"reload finished generation=2 workers=3", timeout=15.0)
    new = generation_pids(clusterd, 2, 3)
    assert set(new) == {0, 1, 2}
    assert live_children(clusterd) == sorted(new.values())
    answering_pids(clusterd.address("http"), new.values())


def test_an_old_worker_that_dies_during_a_reload_restarts_from_the_old_generation(start_clusterd,
                                                                                   tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=GATED_READY)
    clusterd = start_clusterd(["-c", config, "--log-level", "debug"], tmpdir=tmpdir_short)
    old = generation_pids(clusterd, 1, 2)
    gate = gated_reload(clusterd, tmpdir_short)
    clusterd.wait_for_log(r"reload started generation=2 ")
    # Slot 1 waits for slot 0's new worker (batch 1), which is held at its gate.
    os.kill(old[1], signal.SIGKILL)
    clusterd.wait_for_log(r"worker exited slot=1 gen=1 pid=%d status=signal:KILL " % old[1])
    [restarted] = clusterd.wait_for_log(r"worker spawned slot=1 gen=1 pid=(\d+)", count=2)[1:]
    restarted = int(restarted.group(1))
    clusterd.seen_pids.add(restarted)
    # It runs generation 1's command (without the gate), so it gets ready while the reload waits.
    clusterd.wait_for_log(r"worker ready slot=1 gen=1 pid=%d" % restarted)
    with open("/proc/%d/cmdline" % restarted, "rb") as f:
        assert f.read().split(b"\0")[:-1] == [part.encode() for part in notify_command()]
    assert not os.path.exists(gate)
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0
    assert "reload finished" not in clusterd.log()
    open_gate(gate)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2", timeout=15.0)
    new = generation_pids(clusterd, 2, 2)
    assert restarted not in new.values()
    assert live_children(clusterd) == sorted(new.values())


def test_stop_during_a_reload_abandons_it_and_exits_0(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=GATED_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    old = generation_pids(clusterd, 1, 2)
    gate = gated_reload(clusterd, tmpdir_short)
    clusterd.wait_for_log(r"reload started generation=2 ")
    # Generation 2 is held at its gate, never opened: the stop comes during the reload.
    clusterd.signal(signal.SIGTERM)
    assert clusterd.wait_exit(15.0) == 0, clusterd.log_tail()
    log = clusterd.log()
    assert "reload abandoned: clusterd is stopping; the running workers keep serving generation=1" in log
    assert "reload finished" not in log and "stopped code=0" in log
    assert clusterd.count(r"worker ready slot=\d+ gen=2 ") == 0 and not os.path.exists(gate)
    assert not [pid for pid in old.values() if harness.pid_alive(pid)]


def test_flags_and_set_keep_overriding_the_file_on_every_reload(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=1, env={"A": "file-a", "B": "file-b"})
    clusterd = start_clusterd(["-c", config, "--set", "env.A=flag-a"], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    [pid] = generation_pids(clusterd, 1, 1).values()
    env = answering_pids(address, [pid])[pid]["env"]
    assert (env["A"], env["B"]) == ("flag-a", "file-b")
    write_config(tmpdir_short, workers=1, env={"A": "file-a2", "B": "file-b2"})
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=1")
    [pid] = generation_pids(clusterd, 2, 1).values()
    env = answering_pids(address, [pid])[pid]["env"]
    assert (env["A"], env["B"]) == ("flag-a", "file-b2")


def test_a_reload_applies_the_files_workers_only_when_it_changed(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 2)
    clusterd.signal(signal.SIGTTIN)
    generation_pids(clusterd, 1, 3)
    # The file still says 2, as when it was loaded: the scaled count stays.
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=3")
    assert len(generation_pids(clusterd, 2, 3)) == 3
    # Now the file's value changed: it applies.
    write_config(tmpdir_short, workers=1)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=1")
    [pid] = generation_pids(clusterd, 3, 1).values()
    wait_until(lambda: live_children(clusterd) == [pid], 10.0, "only the one new worker",
               describe=clusterd.log_tail)


def test_a_reload_that_renames_the_instance_is_refused(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=1, extra="")
    text = 'name = "one"\n' + open(config).read()
    harness.write_file(tmpdir_short, "clusterd.toml", text)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    [pid] = generation_pids(clusterd, 1, 1).values()
    harness.write_file(tmpdir_short, "clusterd.toml", text.replace('"one"', '"two"'))
    clusterd.signal(signal.SIGHUP)
    [refused] = clusterd.wait_for_log(r"reload refused: .*; the running workers keep serving")
    assert "name" in refused.string and "one" in refused.string and "two" in refused.string
    assert "reload started" not in clusterd.log()
    assert live_children(clusterd) == [pid]


def test_a_reload_whose_new_listener_cannot_be_bound_is_refused(start_clusterd, tmpdir_short):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        config = write_config(tmpdir_short, workers=1)
        clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
        address = clusterd.address("http")
        [pid] = generation_pids(clusterd, 1, 1).values()
        write_config(tmpdir_short, workers=1, listen=(("http", "127.0.0.1:0"), ("extra", busy)))
        clusterd.signal(signal.SIGHUP)
        [refused] = clusterd.wait_for_log(r"reload refused: .*; the running workers keep serving")
        assert busy in refused.string, refused.string
        assert "reload started" not in clusterd.log()
        assert live_children(clusterd) == [pid]
        assert http_get(address)["pid"] == pid
    finally:
        taken.close()


def test_an_abandoned_reload_keeps_finished_slots_and_the_next_reload_replaces_every_worker(
        start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=NOTIFY_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    old = generation_pids(clusterd, 1, 2)
    # Generation 2: only the first of its workers (slot 0) ever sends READY=1.
    once = os.path.join(tmpdir_short, "once")
    write_config(tmpdir_short, workers=2, command=notify_command("--ready-once", once),
                 extra='\n[ready]\nmode = "notify"\ntimeout = "1s"\n')
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload abandoned: slot=1 gen=2 not ready within 1s; the running workers "
                          r"keep serving generation=1")
    [(slot, mixed)] = generation_pids(clusterd, 2, 1).items()
    assert slot == 0
    clusterd.wait_for_log(r"worker stopped slot=0 gen=1 pid=%d " % old[0])
    wait_until(lambda: live_children(clusterd) == sorted([mixed, old[1]]), 10.0,
               "slot 0 on generation 2, slot 1 on generation 1", describe=clusterd.log_tail)
    answers = answering_pids(address, [mixed, old[1]])
    assert {a["slot"]: a["generation"] for a in answers.values()} == {"0": "2", "1": "1"}

    write_config(tmpdir_short, workers=2, command=notify_command(), extra=NOTIFY_READY)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=2")
    new = generation_pids(clusterd, 3, 2)
    assert set(new) == {0, 1}
    assert live_children(clusterd) == sorted(new.values())
    assert not harness.pid_alive(mixed)


def test_a_reload_fixes_a_crash_looping_deployment(start_clusterd, tmpdir_short):
    # Generation 1 crashes 0.2 s after every start; the reload brings a working command.
    config = write_config(tmpdir_short, workers=2, extra='\n[restart]\ndelay = "500ms"\n',
                          command=[PYTHON, worker("http_worker.py"), "--exit-after", "0.2"])
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    address = clusterd.address("http")
    clusterd.wait_for_log(r"worker exited slot=\d gen=1 .*next_restart_in=", count=4)
    write_config(tmpdir_short, workers=2, extra='\n[restart]\ndelay = "500ms"\n')
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=2")
    new = generation_pids(clusterd, 2, 2)
    crashed = clusterd.matches(r"worker ready slot=\d gen=1 pid=(\d+)")
    clusterd.seen_pids.update(int(m.group(1)) for m in crashed)
    wait_until(lambda: live_children(clusterd) == sorted(new.values()), 10.0, "only generation 2",
               describe=clusterd.log_tail)
    answers = answering_pids(address, new.values())
    assert {a["generation"] for a in answers.values()} == {"2"}


def test_a_removed_unix_listener_is_closed_and_its_file_removed(start_clusterd, tmpdir_short):
    admin_path = os.path.join(tmpdir_short, "admin.sock")
    both = (("http", "127.0.0.1:0"), ("admin", "unix:" + admin_path))
    command = [PYTHON, worker("http_worker.py"), "--graceful", "--all-listeners"]
    config = write_config(tmpdir_short, workers=1, command=command, listen=both)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    [pid] = generation_pids(clusterd, 1, 1).values()
    assert http_get("unix:" + admin_path)["pid"] == pid
    write_config(tmpdir_short, workers=1, command=command, listen=both[:1])
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=1")
    wait_until(lambda: not harness.can_connect("unix:" + admin_path), 10.0, "the admin listener closed")
    assert not os.path.exists(admin_path)


def test_reload_batch_replaces_that_many_slots_at_a_time(start_clusterd, tmpdir_short):
    # Four workers that each take 1 s to get ready, replaced two at a time: two rounds.
    config = write_config(tmpdir_short, workers=4, command=notify_command("--ready-after", "1"),
                          extra=NOTIFY_READY + "\n[reload]\nbatch = 2\n")
    clusterd = start_clusterd(["-c", config, "--log-level", "debug"], tmpdir=tmpdir_short)
    old = generation_pids(clusterd, 1, 4)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=2 workers=4", timeout=15.0)
    new = generation_pids(clusterd, 2, 4)
    assert "reload started generation=2 workers=4 batch=2" in clusterd.log()
    lines = clusterd.log().splitlines()

    def index(pattern):
        return next(i for i, line in enumerate(lines) if re.search(pattern, line))

    spawned = {slot: index(r"worker spawned slot=%d gen=2 " % slot) for slot in range(4)}
    ready = {slot: index(r"worker ready slot=%d gen=2 " % slot) for slot in range(4)}
    stopped = {slot: index(r"worker stopped slot=%d gen=1 pid=%d " % (slot, old[slot])) for slot in range(4)}
    # Slots 0 and 1 start together; 2 and 3 only once both of those are ready.
    assert max(spawned[0], spawned[1]) < min(ready[0], ready[1])
    assert max(ready[0], ready[1]) < min(spawned[2], spawned[3])
    assert max(spawned[2], spawned[3]) < min(ready[2], ready[3])
    for slot in range(4):
        assert ready[slot] < stopped[slot]
    started = harness.log_time(lines[index(r"reload started generation=2 ")])
    finished = harness.log_time(lines[index(r"reload finished generation=2 ")])
    assert 1.9 <= finished - started, finished - started     # two rounds of a 1 s start-up
    assert live_children(clusterd) == sorted(new.values())


def test_a_scale_during_a_reload_that_is_abandoned_still_holds(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=GATED_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 2)
    # The new command never becomes ready, and exits 1 once the test opens the gate: the reload
    # will be abandoned then, not before.
    gate = os.path.join(tmpdir_short, "gate")
    write_config(tmpdir_short, workers=2, extra=GATED_READY, command=notify_command("--exit-when", gate))
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload started generation=2 ")
    code, out, err = clusterd.control("scale", "3")
    assert code == 0, out + err
    clusterd.wait_for_log(r"scaling workers=3")
    assert "reload abandoned" not in clusterd.log() and not os.path.exists(gate)
    open_gate(gate)
    clusterd.wait_for_log(r"reload abandoned: slot=0 gen=2 exited status=exit:1 before it was ready; "
                          r"the running workers keep serving generation=1", timeout=15.0)
    generation_pids(clusterd, 1, 3)   # the scale's third worker, from the generation that serves
    assert clusterd.status()["workers_wanted"] == 3


def test_the_files_worker_count_applies_after_an_abandoned_reload(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=2, command=notify_command(), extra=NOTIFY_READY)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 2)
    # workers 2 → 3 with a command that fails: abandoned, so the new count never took effect...
    write_config(tmpdir_short, workers=3, extra=NOTIFY_READY,
                 command=[PYTHON, worker("http_worker.py"), "--exit-after", "0.2"])
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload abandoned: ", timeout=15.0)
    # ...and the fixed file, still saying 3, brings it in.
    write_config(tmpdir_short, workers=3, command=notify_command(), extra=NOTIFY_READY)
    clusterd.signal(signal.SIGHUP)
    clusterd.wait_for_log(r"reload finished generation=3 workers=3", timeout=20.0)
    assert clusterd.status()["workers_wanted"] == 3


def test_a_reload_applies_log_level_and_names_the_keys_that_need_a_restart(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, workers=1)
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    generation_pids(clusterd, 1, 1)
    assert " debug " not in clusterd.log()
    write_config(tmpdir_short, workers=1,
                 extra="\n[log]\nlevel = \"debug\"\nfile = %s\n" % harness.toml_string(os.path.join(tmpdir_short, "new.log")))
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    assert "not applied until clusterd restarts: log.file" in out
    clusterd.wait_for_log(r"reload: changed keys that take effect only when clusterd restarts: log.file")
    # log.level took effect: the next worker's spawn is logged at debug level (in the old log).
    clusterd.control("scale", "2")
    clusterd.wait_for_log(r" debug .*worker spawned slot=1 ")
