#!/bin/sh
# Test worker: a shell wrapper that reports readiness with systemd-notify(1), then execs the HTTP
# server, so the server keeps the worker's pid (LISTEN_PID) and gets the stop signal directly.
#
#   systemd_notify_worker.sh DELAY [http_worker.py options]
#
# DELAY: seconds of "start-up" before `systemd-notify --ready`. systemd-notify runs as a child of
# this shell: as root it sends with its parent's (this worker's) pid, otherwise with its own, so
# clusterd must accept a descendant of the worker.
set -e
delay=$1
shift
sleep "$delay"
systemd-notify --ready --status="systemd-notify worker ready after ${delay}s"
exec /usr/bin/python3 "$(dirname "$0")/http_worker.py" --graceful "$@"
