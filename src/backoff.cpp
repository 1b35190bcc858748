// Restart timing of one slot: failure streak, equal-jitter exponential backoff, burst limit.
#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace clusterd {

bool policy_restarts(RestartPolicyKind policy, const WorkerExit& exit) {
  switch (policy) {
    case RestartPolicyKind::always:
      return true;
    case RestartPolicyKind::on_failure:
      return !is_clean_exit(exit);
    case RestartPolicyKind::never:
      return false;
  }
  return false;
}

Duration backoff_ceiling(const RestartConfig& config, int restart_number) {
  if (restart_number < 2) {
    return Duration{0};
  }
  // Computed in double and clamped before converting back: multiplier^k overflows any integer
  // long before a streak that long is plausible, and the cap must still hold then.
  const double base_ms = static_cast<double>(config.delay.count());
  const double cap_ms = static_cast<double>(config.max_delay.count());
  const double grown = base_ms * std::pow(config.multiplier, restart_number - 2);
  const double capped = std::isfinite(grown) ? std::min(grown, cap_ms) : cap_ms;
  return Duration{static_cast<Duration::rep>(capped)};
}

RestartVerdict SlotBackoff::on_failure(TimePoint now, Duration uptime, double jitter01) {
  if (uptime >= config_.reset_after) {
    failures_ = 0;
  }
  ++failures_;

  RestartVerdict verdict;
  if (config_.burst) {
    while (!recent_restarts_.empty() && now - recent_restarts_.front() >= config_.interval) {
      recent_restarts_.pop_front();
    }
    recent_restarts_.push_back(now);
    if (static_cast<int>(recent_restarts_.size()) > *config_.burst) {
      verdict.failed_for_good = true;
      return verdict;
    }
  }

  const Duration ceiling = backoff_ceiling(config_, failures_);
  // Equal jitter: at least half the ceiling, so slots that failed together restart apart
  // but never at ~0 (protocols §6.2).
  const double jitter = std::clamp(jitter01, 0.0, 1.0);
  const auto half = ceiling.count() / 2.0;
  verdict.delay = Duration{static_cast<Duration::rep>(std::llround(half + jitter * half))};
  return verdict;
}

}  // namespace clusterd
