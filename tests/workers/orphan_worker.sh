#!/bin/sh
# A worker that leaves processes behind outside its process group, as a daemonizing helper does
# (`setsid cmd &`): once the worker exits they are re-parented to clusterd (a child subreaper),
# out of reach of the signals sent to the worker's group. Each writes its pid to
# $ORPHAN_DIR/KIND-WORKERPID.pid:
#   holder    keeps the listening socket (fd 3, inherited) open
#   plain     holds no socket (`setsid sleep 1000 &`, the review's example)
#   stubborn  ignores SIGTERM, and so does its child; once that child is gone it sleeps on
#             (never a busy loop, should a failed test leave it behind)
#   child     the stubborn one's child: re-parented to clusterd only when the stubborn one dies
# Then the worker waits to be stopped.
dir="${ORPHAN_DIR:?set ORPHAN_DIR}"
worker=$$
setsid sh -c 'echo $$ > "$1/holder-$2.pid.tmp" && mv "$1/holder-$2.pid.tmp" "$1/holder-$2.pid"; exec sleep 1000' \
  sh "$dir" "$worker" &
setsid sh -c 'echo $$ > "$1/plain-$2.pid.tmp" && mv "$1/plain-$2.pid.tmp" "$1/plain-$2.pid"; exec sleep 1000' \
  sh "$dir" "$worker" 3>&- &
setsid sh -c 'trap "" TERM; sleep 1000 & echo $! > "$1/child-$2.pid.tmp" && mv "$1/child-$2.pid.tmp" "$1/child-$2.pid"
  echo $$ > "$1/stubborn-$2.pid.tmp" && mv "$1/stubborn-$2.pid.tmp" "$1/stubborn-$2.pid"
  wait; exec sleep 1000' sh "$dir" "$worker" 3>&- &
exec sleep 1000
