// `--workers auto`: the CPUs clusterd may use, from the affinity mask capped by the cgroup v2
// (or v1) CPU quota, rounded up (protocols §5). Parsers are pure; one function reads the files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace clusterd {

// A CPU quota in CPUs (1.5 = 150000/100000); nullopt means unlimited.
using CpuQuota = std::optional<double>;

// cgroup v2 `cpu.max` text: "max 100000" → unlimited, "150000 100000" → 1.5.
// nullopt inside the expected... malformed text is treated as unlimited.
CpuQuota parse_cgroup2_cpu_max(std::string_view cpu_max);

// cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` texts: quota -1 → unlimited.
CpuQuota parse_cgroup1_quota(std::string_view quota_us, std::string_view period_us);

// min(affinity, ceil(quota)), at least 1.
int usable_cpus_from(int affinity_cpus, CpuQuota quota);

// What `auto` found, for the log line.
struct CpuCount {
  int affinity = 1;
  CpuQuota quota;
  int usable = 1;
  std::string source;  // e.g. "cgroup2 /sys/fs/cgroup/app/cpu.max" or "affinity"
};

// Reads sched_getaffinity, /proc/self/cgroup, /proc/self/mountinfo and the cgroup files.
CpuCount detect_usable_cpus();

}  // namespace clusterd
