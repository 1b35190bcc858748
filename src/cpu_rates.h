// Each worker's CPU use as a percentage of one core over the interval since the previous time
// someone asked (a `status`, `top` refreshing): nothing is sampled between requests.
#pragma once

#include <map>
#include <set>

#include "duration.h"

namespace clusterd {

class CpuRates {
 public:
  // The percent for `pid`, whose tree has used `cpu_seconds` by `now`: over the interval since its
  // previous sample, or over its whole `uptime` the first time. Requests closer together than
  // 100 ms get the previous figure (too short an interval is mostly rounding of clock ticks).
  double sample(int pid, double cpu_seconds, TimePoint now, Duration uptime);
  // Drops the samples of every pid but `live` (workers that exited).
  void keep_only(const std::set<int>& live);

 private:
  struct Sample {
    double cpu_seconds = 0;
    TimePoint at;
    double percent = 0;
  };
  std::map<int, Sample> samples_;
};

}  // namespace clusterd
