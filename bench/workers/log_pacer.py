#!/usr/bin/python3
"""bench/logs' worker: writes RATE numbered lines a second on its stdout, in batches every 5 ms, for
SECONDS seconds, then writes what it managed to STATS (JSON) and waits for its stop signal.

  log_pacer.py RATE SECONDS STATS

Stats: lines written, the seconds it took, the longest single write() (how long the worker was
held up by its stdout at worst), and how far behind its schedule it fell at worst. A worker whose
pipe nobody drains blocks in write(): both figures show it.
"""
import json
import os
import signal
import sys
import time

BATCH_S = 0.005


def main():
    rate, seconds, stats_path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    padding = "x" * 60
    written = 0
    longest_write = 0.0
    most_behind = 0.0
    started = time.monotonic()
    while True:
        now = time.monotonic()
        elapsed = now - started
        if elapsed >= seconds:
            break
        due = min(int(elapsed * rate) + int(BATCH_S * rate), int(seconds * rate))
        behind = (written - elapsed * rate) / rate
        most_behind = max(most_behind, -behind)
        if due > written:
            data = "".join("line %d %s\n" % (number, padding) for number in range(written, due)).encode()
            before = time.monotonic()
            while data:
                data = data[os.write(1, data):]
            longest_write = max(longest_write, time.monotonic() - before)
            written = due
        time.sleep(BATCH_S)
    took = time.monotonic() - started
    with open(stats_path + ".tmp", "w") as f:
        json.dump({"lines": written, "seconds": took, "longest_write_s": longest_write,
                   "most_behind_s": most_behind}, f)
    os.rename(stats_path + ".tmp", stats_path)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
