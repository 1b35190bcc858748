// `--workers auto`: the CPUs clusterd may use, from the affinity mask capped by the cgroup v2
// (or v1) CPU quota, rounded up (protocols §5). The parsers and the count are pure; one function
// reads the system.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd {

// A CPU quota in CPUs (1.5 = 150000/100000); nullopt means unlimited.
using CpuQuota = std::optional<double>;

// cgroup v2 `cpu.max` text: "max 100000" → unlimited, "150000 100000" → 1.5. Extra fields are
// ignored; malformed text is treated as unlimited.
CpuQuota parse_cgroup2_cpu_max(std::string_view cpu_max);

// cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` texts: quota -1 → unlimited.
CpuQuota parse_cgroup1_quota(std::string_view quota_us, std::string_view period_us);

enum class CgroupVersion { v1, v2 };

// The cgroup whose CPU controller limits this process.
struct CpuCgroup {
  CgroupVersion version = CgroupVersion::v2;
  std::string mount_point;  // "/sys/fs/cgroup" (v2), "/sys/fs/cgroup/cpu,cpuacct" (v1)
  std::string directory;    // the process's own cgroup: mount_point or below it

  bool operator==(const CpuCgroup&) const = default;
};

// From the texts of /proc/self/cgroup and /proc/self/mountinfo. v1 is chosen when a v1
// hierarchy carries the `cpu` controller (hybrid hosts: the unified tree then has no cpu
// controller); otherwise the `0::` v2 entry. nullopt: no such hierarchy is mounted here.
std::optional<CpuCgroup> find_cpu_cgroup(std::string_view proc_self_cgroup, std::string_view mountinfo);

// The process's cgroup v2 (the `0::` line) whatever the controllers, for the workers' cgroups
// (worker_cgroups.h); nullopt without that line, or without a cgroup2 mount that shows it. A directory equal to the
// mount point is the root of the hierarchy as this process sees it (the host's, or a cgroup
// namespace's).
std::optional<CpuCgroup> find_cgroup_v2(std::string_view proc_self_cgroup, std::string_view mountinfo);

// The directory and each ancestor up to and including the mount point, leaf first: every
// level whose quota applies (protocols §5).
std::vector<std::string> cgroup_directories(const CpuCgroup& cgroup);

// min(affinity, ceil(quota)), at least 1.
int usable_cpus_from(int affinity_cpus, CpuQuota quota);

// What `auto` found, for the log line.
struct CpuCount {
  int affinity = 1;
  CpuQuota quota;
  int usable = 1;
  std::string source;  // e.g. "cgroup2 /sys/fs/cgroup/app/cpu.max" or "affinity"

  bool operator==(const CpuCount&) const = default;
};

// Everything the count depends on, as read from the system by detect_usable_cpus().
struct CpuCountInputs {
  int affinity = 1;               // CPUs in the affinity mask (CPU_COUNT of sched_getaffinity)
  std::string proc_self_cgroup;   // the text of /proc/self/cgroup ("" when unreadable)
  std::string mountinfo;          // the text of /proc/self/mountinfo ("" when unreadable)
  // The texts of the cgroup quota files (cpu_quota_files()) by path; a file that could not be
  // read (the v2 root has no cpu.max) is absent.
  std::map<std::string, std::string> files;
};

// The files count_usable_cpus() reads for this cgroup, leaf first: `cpu.max` (v2), or
// `cpu.cfs_quota_us` and `cpu.cfs_period_us` (v1), of the cgroup and each ancestor.
std::vector<std::string> cpu_quota_files(const CpuCgroup& cgroup);

// Pure: the affinity count capped by the lowest quota along the cgroup's path, rounded up, at
// least 1 (usable_cpus_from), with the file that quota came from.
CpuCount count_usable_cpus(const CpuCountInputs& inputs);

// Reads sched_getaffinity, /proc/self/cgroup, /proc/self/mountinfo and the cgroup files, then
// count_usable_cpus().
CpuCount detect_usable_cpus();

}  // namespace clusterd
