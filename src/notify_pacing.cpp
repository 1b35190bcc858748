// Paces a notify socket's reading and the reports of its drops by the times datagrams were read.
#include "notify_pacing.h"

namespace clusterd {

void NotifyPacing::read_one(TimePoint now, bool dropped) {
  if (!window_start_ || now - *window_start_ >= window) {
    window_start_ = now;
    read_in_window_ = 0;
  }
  ++read_in_window_;
  if (dropped) {
    ++unreported_;
  }
}

std::optional<TimePoint> NotifyPacing::resume_at(TimePoint now) const {
  if (!window_start_ || read_in_window_ < datagrams_per_window || now - *window_start_ >= window) {
    return std::nullopt;
  }
  return *window_start_ + window;
}

int NotifyPacing::take_report(TimePoint now) {
  if (unreported_ == 0 || (last_report_ && now - *last_report_ < report_interval)) {
    return 0;
  }
  last_report_ = now;
  const int count = unreported_;
  unreported_ = 0;
  return count;
}

}  // namespace clusterd
