"""Workers serve the socket clusterd opened once: distinct pids, slots and the LISTEN_* protocol."""
import harness
from harness import PYTHON, http_get, wait_until, worker


def test_two_workers_answer_with_distinct_pids(start_clusterd):
    clusterd = start_clusterd(["--workers", "2", "--listen", "127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")])
    address = clusterd.address()
    ready = set(clusterd.ready_pids(2))

    answered = set()
    slots = set()

    def both_answered():
        reply = http_get(address)
        answered.add(reply["pid"])
        slots.add(reply["slot"])
        return answered == ready

    # The kernel hands connections to whichever worker accepts first, so ask until both have.
    wait_until(both_answered, 10.0, "answers from both workers", describe=lambda: str(answered))
    assert slots == {"0", "1"}
    assert set(clusterd.children()) == ready


def test_worker_gets_the_socket_activation_variables(start_clusterd):
    clusterd = start_clusterd(["--workers", "1", "--listen", "web=127.0.0.1:0", "--",
                               PYTHON, worker("http_worker.py")])
    address = clusterd.address("web")
    [pid] = clusterd.ready_pids(1)
    reply = http_get(address)
    assert reply["pid"] == pid
    assert reply["listen"] == {"LISTEN_FDS": "1", "LISTEN_PID": str(pid), "LISTEN_FDNAMES": "web"}
    assert reply["workers"] == "1"
    assert reply["generation"] == "1"
