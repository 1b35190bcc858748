#!/usr/bin/env bash
# A job runner as a clusterd worker, with no socket: each worker takes job files from
# $SPOOL/new one at a time and writes a result to $SPOOL/done. clusterd runs N of them, restarts
# one that dies, and stops them all gracefully (a job in hand is finished first).
#
# Usage (clusterd.toml fills in the slot): worker.sh WORKER_ID
# A job whose content is the word "crash" makes the worker exit 1, to show a restart.
set -euo pipefail

worker_id=${1:?usage: worker.sh WORKER_ID}
spool=${SPOOL:?SPOOL must name the spool directory}
mkdir -p "$spool/new" "$spool/work" "$spool/done"

readonly done_one=0 nothing_to_do=3 crash=4

# Takes one job from new/ and runs it; returns done_one, nothing_to_do or crash.
run_one_job() {
  local candidate name taken="" text result
  for candidate in "$spool"/new/*; do
    [ -e "$candidate" ] || break
    name=${candidate##*/}
    # rename() is atomic: when several workers reach for the same file, exactly one wins.
    if mv "$candidate" "$spool/work/$name.$$" 2>/dev/null; then
      taken="$spool/work/$name.$$"
      break
    fi
  done
  [ -n "$taken" ] || return $nothing_to_do

  text=$(< "$taken")   # read once: the job may be a pipe that someone is still writing
  if [ "$text" = crash ]; then
    result="job $name crashed on purpose in worker $worker_id pid $$"
  else
    result="job $name: $(wc -w <<< "$text") words, done by worker $worker_id pid $$"
  fi
  # Written beside, then renamed: a reader of done/ never sees half a result.
  echo "$result" > "$spool/done/.$name.$$"
  mv "$spool/done/.$name.$$" "$spool/done/$name"
  rm -f "$taken"
  echo "$result"
  [ "$text" != crash ] || return $crash
  return $done_one
}

stopping=0
trap 'stopping=1' TERM INT

echo "worker $worker_id (pid $$): taking jobs from $spool/new"
while [ "$stopping" = 0 ]; do
  # clusterd sends the stop signal to the worker's whole process group, so a job's commands would
  # get it too. Each round runs in a subshell that ignores it (an ignored signal stays ignored in
  # the commands it runs): a job in hand runs to its end, or to the SIGKILL after stop.grace. This
  # loop catches the signal and stops before the next round.
  status=0
  (trap '' TERM INT; run_one_job) || status=$?
  case $status in
    "$done_one") ;;
    "$nothing_to_do")
      # Look again shortly. `sleep & wait`, because bash runs the TERM trap only once a foreground
      # command has finished, while `wait` returns at once on a signal.
      sleep 0.2 &
      wait $! || true
      ;;
    "$crash")
      echo "worker $worker_id (pid $$): a job asked for a crash; exiting 1" >&2
      exit 1
      ;;
    143 | 130) ;;  # the signal came before the subshell ignored it: nothing was taken yet
    *) exit "$status" ;;
  esac
done
echo "worker $worker_id (pid $$): stopped"
