// The stop of clusterd's orphans: which signal each gets when, and how long clusterd waits.
#include "orphan_stop.h"

#include <algorithm>

namespace clusterd {

void OrphanStop::begin(TimePoint now, Duration grace, int stop_signal) {
  const TimePoint kill_at = now + grace;
  if (!kill_at_) {
    stop_signal_ = stop_signal;
    kill_at_ = kill_at;
    return;
  }
  kill_at_ = std::min(*kill_at_, kill_at);
}

void OrphanStop::exit_wanted(TimePoint now, Duration grace, int stop_signal) {
  if (!kill_at_) {
    begin(now, grace, stop_signal);
  }
  if (!exit_by_) {
    exit_by_ = std::max(*kill_at_, now) + kill_wait;
  }
}

std::vector<OrphanSignal> OrphanStop::signals_for(const std::vector<int>& orphans, TimePoint now) {
  std::vector<OrphanSignal> signals;
  if (!kill_at_) {
    return signals;
  }
  // A pid that is no longer a child was reaped; if it comes back, it is another process.
  std::erase_if(sent_, [&](const auto& entry) {
    return std::find(orphans.begin(), orphans.end(), entry.first) == orphans.end();
  });
  const bool grace_over = now >= *kill_at_;
  for (const int pid : orphans) {
    Sent& sent = sent_[pid];
    if (grace_over && !sent.kill) {
      sent.stop = sent.kill = true;
      signals.push_back({pid, SIGKILL});
    } else if (!sent.stop) {
      sent.stop = true;
      signals.push_back({pid, stop_signal_});
    }
  }
  return signals;
}

std::optional<TimePoint> OrphanStop::next_deadline(TimePoint now, bool orphans_left) const {
  if (!kill_at_) {
    return std::nullopt;
  }
  // The SIGKILL time wakes clusterd even when no orphan is known yet: one may have been
  // re-parented without a SIGCHLD (its parent was not clusterd's child).
  if (now < *kill_at_) {
    return kill_at_;
  }
  if (exit_by_ && orphans_left) {
    return exit_by_;
  }
  return std::nullopt;
}

}  // namespace clusterd
