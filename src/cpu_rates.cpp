// CPU percent per worker between two requests.
#include "cpu_rates.h"

#include <algorithm>
#include <chrono>

namespace clusterd {

double CpuRates::sample(int pid, double cpu_seconds, TimePoint now, Duration uptime) {
  constexpr auto shortest = std::chrono::milliseconds(100);
  const auto found = samples_.find(pid);
  double percent = 0;
  if (found == samples_.end()) {
    const double lived = std::chrono::duration<double>(uptime).count();
    percent = lived > 0 ? 100.0 * cpu_seconds / lived : 0;
  } else if (now - found->second.at < shortest) {
    return found->second.percent;
  } else {
    const double interval = std::chrono::duration<double>(now - found->second.at).count();
    percent = 100.0 * std::max(0.0, cpu_seconds - found->second.cpu_seconds) / interval;
  }
  samples_[pid] = Sample{cpu_seconds, now, percent};
  return percent;
}

void CpuRates::keep_only(const std::set<int>& live) {
  std::erase_if(samples_, [&live](const auto& entry) { return !live.contains(entry.first); });
}

}  // namespace clusterd
