#!/usr/bin/python3
"""A worker that writes to its stdout and stderr the way the output tests ask, then waits for its
stop signal (or exits at once with --exit CODE).

  --lines N        N numbered lines "out PID I" on stdout and "err PID I" on stderr, interleaved,
                   each stream written with many small unbuffered writes (a line in 3 pieces)
  --long BYTES     one line of BYTES letters on stdout
  --flood BYTES    BYTES of lines "flood PID SEQ yyy…" (SEQ 0, 1, 2, …) on stdout, as fast as it
                   can, then "flood done PID"
  --flood-until FILE  the same lines without end until FILE exists, then "flood done PID"
  --flooding FILE  with --flood-until: create FILE once the first MiB is written (the flood is
                   under way, and clusterd has copied all but a pipe's worth of it)
  --last TEXT      TEXT on stderr without a newline, just before exiting
  --env            "env JOURNAL_STREAM=VALUE" on stdout (VALUE "-" when unset)
  --exit CODE      exit with CODE after writing instead of waiting
"""
import argparse
import os
import signal
import sys


def write(fd, text):
    data = text.encode()
    while data:
        data = data[os.write(fd, data):]


def create(path):
    """Creates path whole (written elsewhere, then renamed), for a test waiting on it."""
    with open(path + ".tmp", "w"):
        pass
    os.rename(path + ".tmp", path)


def flood(pid, size, until, flooding):
    """Numbered lines, 64 to a write: `size` bytes of them, or without end until `until` exists
    (looked for every 1024 lines, about 100 KiB)."""
    padding = "y" * 80
    written = sequence = 0
    announced = False

    def done():
        if until:
            return sequence % 1024 == 0 and os.path.exists(until)
        return written >= size

    while not done():
        chunk = "".join("flood %d %d %s\n" % (pid, number, padding) for number in range(sequence, sequence + 64))
        write(1, chunk)
        written += len(chunk)
        sequence += 64
        if flooding and not announced and written >= 1 << 20:
            create(flooding)
            announced = True
    write(1, "flood done %d\n" % pid)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=0)
    parser.add_argument("--long", type=int, default=0)
    parser.add_argument("--flood", type=int, default=0)
    parser.add_argument("--flood-until")
    parser.add_argument("--flooding")
    parser.add_argument("--last")
    parser.add_argument("--env", action="store_true")
    parser.add_argument("--exit", type=int)
    args = parser.parse_args()
    pid = os.getpid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    if args.env:
        write(1, "env JOURNAL_STREAM=%s\n" % os.environ.get("JOURNAL_STREAM", "-"))
    for i in range(args.lines):
        # Three writes per line: clusterd must still print it whole, never mixed with another.
        for fd, tag in ((1, "out"), (2, "err")):
            write(fd, tag)
            write(fd, " %d" % pid)
            write(fd, " %d\n" % i)
    if args.long:
        write(1, "x" * args.long + "\n")
    if args.flood or args.flood_until:
        flood(pid, args.flood, args.flood_until, args.flooding)
    if args.last:
        write(2, args.last)
    if args.exit is not None:
        os._exit(args.exit)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
