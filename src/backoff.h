// Restart timing of one slot: the failure streak, exponential backoff with equal jitter, and the
// optional burst limit (interface §2.3, protocols §6.2).
#pragma once

#include <deque>

#include "config.h"
#include "duration.h"
#include "worker_exit.h"

namespace clusterd {

// Whether `policy` restarts a worker that ended with `exit` (and that clusterd did not stop).
bool policy_restarts(RestartPolicyKind policy, const WorkerExit& exit);

struct RestartVerdict {
  bool failed_for_good = false;  // more than `burst` restarts within `interval`
  Duration delay{0};             // wait before the restart (0: at once)
};

// The restart history of one slot. Pure: time and jitter come in as arguments.
class SlotBackoff {
 public:
  explicit SlotBackoff(const RestartConfig& config) : config_(config) {}

  // A worker of this slot failed after running `uptime`. An uptime of at least `reset_after`
  // ends the streak first. The first restart of a streak is immediate; restart k >= 2 waits
  // between half and all of delay * multiplier^(k-2), capped at max_delay. `jitter01` in [0, 1]
  // picks the point in that range (equal jitter).
  RestartVerdict on_failure(TimePoint now, Duration uptime, double jitter01);

  // A worker that stayed up long enough, or a restart that clusterd asked for: the streak ends.
  void reset() { failures_ = 0; }

  // An operator's `restart` after a fix: the streak and the burst window both start afresh.
  void forget() {
    failures_ = 0;
    recent_restarts_.clear();
  }

  // Failures in the current streak.
  int failures() const { return failures_; }
  // The streak an earlier clusterd of this process counted (`clusterd upgrade`).
  void restore(int failures) { failures_ = failures; }

  void set_config(const RestartConfig& config) { config_ = config; }

 private:
  RestartConfig config_;
  int failures_ = 0;
  std::deque<TimePoint> recent_restarts_;  // within `interval`, for `burst`
};

// The backoff delay of restart k >= 2 of a streak, before jitter: delay * multiplier^(k-2),
// capped at max_delay.
Duration backoff_ceiling(const RestartConfig& config, int restart_number);

}  // namespace clusterd
