"""[metrics] listen: clusterd serves the Prometheus text at GET /metrics over HTTP from its event
loop. A real scrape read by python3-prometheus-client's parser; HEAD, 404, 405, 400, 431 and 505;
idle connections beyond the cap that neither keep a scrape out nor stall `clusterd status`; a
client that never finishes its request cut off at the deadline; the socket kept from workers; a
reload that keeps, moves or cannot move the endpoint; and configurations that are refused.
"""
import http.client
import os
import re
import socket
import time

from harness import (PYTHON, can_connect, read_until_closed, run_clusterd, split_host_port, socket_inodes,
                     toml_string, wait_until, worker, write_file)
from prometheus_text import samples_of, value

LISTENING = r"metrics endpoint listening address=(\S+)"


def start(start_clusterd, *args, workers=2, **kwargs):
    return start_clusterd(["--workers", str(workers), "--listen", "127.0.0.1:0", *args, "--",
                           PYTHON, worker("http_worker.py")], **kwargs)


def endpoint(clusterd, count=1):
    return clusterd.wait_for_log(LISTENING, count)[-1].group(1)


def request(address, method="GET", path="/metrics"):
    """(status, headers, body) of one request made as a scraper makes it."""
    host, port = split_host_port(address)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def exchange(address, data):
    """What the endpoint answers to `data` sent as it is, up to its close."""
    with socket.create_connection(split_host_port(address), timeout=10) as sock:
        sock.sendall(data)
        return read_until_closed(sock).decode(errors="replace")


def listening_inode(address):
    """The inode of the socket listening at "HOST:PORT" (IPv4), from /proc/net/tcp."""
    host, port = split_host_port(address)
    wanted = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":
                return int(fields[9])
    raise AssertionError("nothing listens at %s" % address)


def test_a_scrape_is_the_prometheus_text_of_the_instance(start_clusterd):
    clusterd = start(start_clusterd, "--name", "shop", "--set", "metrics.listen=127.0.0.1:0")
    pids = set(clusterd.ready_pids(2))
    address = endpoint(clusterd)

    status, headers, body = request(address)
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["Connection"] == "close"
    samples = samples_of(body)
    assert value(samples, "clusterd_info", name="shop") == 1
    assert value(samples, "clusterd_workers_ready") == 2
    assert {int(l["pid"]) for l, _ in samples["clusterd_worker_processes"]} == pids
    # The same text as the control request, read fresh: both name the same workers.
    code, out, err = clusterd.control("metrics")
    assert code == 0, err
    assert samples_of(out).keys() == samples.keys()

    status, headers, body = request(address, "HEAD")
    assert (status, body) == (200, "")
    assert int(headers["Content-Length"]) > 0

    # The endpoint's socket is clusterd's alone: no worker holds it (close-on-exec, not in LISTEN_FDS).
    inode = listening_inode(address)
    assert inode in socket_inodes(clusterd.pid)
    for pid in pids:
        assert inode not in socket_inodes(pid)


def test_other_requests_get_their_error(start_clusterd):
    clusterd = start(start_clusterd, "--set", "metrics.listen=127.0.0.1:0", workers=1)
    address = endpoint(clusterd)

    status, _, body = request(address, path="/")
    assert (status, body) == (404, "not found; the metrics are at /metrics\n")
    status, headers, body = request(address, "POST")
    assert (status, headers["Allow"], body) == (405, "GET, HEAD", "method POST is not allowed; use GET or HEAD\n")
    assert exchange(address, b"hello\r\n\r\n").startswith("HTTP/1.1 400 Bad Request\r\n")
    assert exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n").endswith("HTTP/1.1 without a Host header field\n")
    # An HTTP/2 client with prior knowledge starts with the connection preface.
    assert exchange(address, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").startswith("HTTP/1.1 505 ")
    long_head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n"
    answer = exchange(address, long_head)
    assert answer.startswith("HTTP/1.1 431 ") and answer.endswith("request head longer than 8192 bytes\n")
    # Still serving.
    assert request(address)[0] == 200


def test_idle_connections_keep_neither_a_scrape_nor_status_waiting(start_clusterd):
    clusterd = start(start_clusterd, "--set", "metrics.listen=127.0.0.1:0", workers=1)
    clusterd.ready_pids(1)
    address = endpoint(clusterd)
    idle = [socket.create_connection(split_host_port(address), timeout=10) for _ in range(20)]
    try:
        # A request begun and never finished: the deadline cuts it off with a 408.
        slow = socket.create_connection(split_host_port(address), timeout=20)
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        began = time.monotonic()
        # More idle connections than the cap (16): the scrape gets in all the same, by closing the
        # oldest idle ones, and the control socket, which the endpoint shares a loop with, answers.
        status, _, body = request(address)
        assert status == 200 and "clusterd_workers_ready 1" in body
        assert clusterd.status()["workers_ready"] == 1
        # The oldest idle connections were closed to make room, without an answer.
        idle[0].settimeout(10)
        assert idle[0].recv(100) == b""
        answer = read_until_closed(slow).decode()
        # Cut off by its deadline, not by the close of an idle one: 5 s after it connected.
        assert time.monotonic() - began >= 4
        assert answer.startswith("HTTP/1.1 408 Request Timeout\r\n"), answer
        assert answer.endswith("no complete request head within 5s\n")
        slow.close()
    finally:
        for sock in idle:
            sock.close()
    assert request(address)[0] == 200


def write_config(directory, listen):
    metrics = "[metrics]\nlisten = %s\n" % toml_string(listen) if listen else ""
    text = ("workers = 1\ncommand = [%s, %s]\n[[listen]]\naddress = \"127.0.0.1:0\"\n%s"
            % (toml_string(PYTHON), toml_string(worker("http_worker.py")), metrics))
    return write_file(directory, "clusterd.toml", text)


def test_a_reload_keeps_moves_or_refuses_to_move_the_endpoint(start_clusterd, tmpdir_short):
    config = write_config(tmpdir_short, "127.0.0.1:0")
    clusterd = start_clusterd(["-c", config], tmpdir=tmpdir_short)
    first = endpoint(clusterd)
    inode = listening_inode(first)

    # Unchanged: the same socket (port 0 is not bound again).
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    assert listening_inode(first) == inode and request(first)[0] == 200
    assert clusterd.count(LISTENING) == 1

    # Moved: the new address serves, the old one is closed.
    write_config(tmpdir_short, "127.0.0.2:0")
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    second = endpoint(clusterd, 2)
    assert second.startswith("127.0.0.2:") and request(second)[0] == 200
    assert clusterd.count(r"metrics endpoint closed address=%s" % re.escape(first)) == 1
    assert not can_connect(first, timeout=2)

    # An address that cannot be bound: the reload is refused, the endpoint stays where it was.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    with taken:
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        write_config(tmpdir_short, busy)
        code, out, err = clusterd.control("reload")
        assert code != 0
        assert ("reload refused: metrics.listen: listener \"metrics\": bind %s: Address already in use; the metrics endpoint stays at %s"
                % (busy, second)) in out + err
        assert request(second)[0] == 200
        assert clusterd.status()["generation"] == 3

    # Removed: no endpoint any more.
    write_config(tmpdir_short, None)
    code, out, err = clusterd.control("reload")
    assert code == 0, out + err
    clusterd.wait_for_log(r"metrics endpoint closed address=%s" % re.escape(second))
    assert not can_connect(second, timeout=2)


def test_check_prints_the_key_and_warns_about_every_address(tmpdir_short):
    program = ["--", PYTHON, worker("http_worker.py")]
    code, out, err = run_clusterd(["check", "--set", "metrics.listen=0.0.0.0:9100"] + program)
    assert code == 0, err
    assert '\n[metrics]\nlisten = "0.0.0.0:9100"\n' in out
    assert ("clusterd: warning: --set metrics.listen=0.0.0.0:9100: metrics.listen: listens on every address: "
            "whoever can reach port 9100 can read the metrics") in err
    code, out, err = run_clusterd(["check"] + program)
    assert (code, err) == (0, "")
    assert "\n[metrics]\n# listen: unset" in out


def test_bad_addresses_are_refused_saying_how_to_write_them(tmpdir_short):
    write_file(tmpdir_short, "clusterd.toml",
               'command = ["/bin/true"]\n[metrics]\nlisten = "unix:/run/metrics.sock"\n')
    code, out, err = run_clusterd(["check", "-c", os.path.join(tmpdir_short, "clusterd.toml")])
    assert (code, out) == (2, "")
    assert err == ('%s/clusterd.toml:3:10: metrics.listen: expected a TCP address such as "127.0.0.1:9100", '
                   'found "unix:/run/metrics.sock"; the metrics are served over HTTP on TCP only\n' % tmpdir_short)
    code, out, err = run_clusterd(["check", "--set", "metrics.listen=9100", "/bin/true"])
    assert (code, out) == (2, "")
    assert err == ('--set metrics.listen=9100: metrics.listen: expected HOST:PORT with the host written '
                   'out, such as "127.0.0.1:9100" (or "0.0.0.0:9100" for every address), found "9100"\n')


def test_a_start_on_a_taken_address_is_refused(tmpdir_short):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        code, out, err = run_clusterd(["--set", "metrics.listen=" + busy, "/bin/sleep", "60"])
    assert code == 2
    assert 'clusterd: metrics.listen: listener "metrics": bind %s: Address already in use\n' % busy in err
