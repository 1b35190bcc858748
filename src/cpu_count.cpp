// Counts the CPUs `--workers auto` may use: affinity capped by the cgroup CPU quota. The
// parsers and count_usable_cpus() at the top are pure; detect_usable_cpus() at the bottom is the
// only part that reads the system.
#include "cpu_count.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>

#include "text_file.h"

namespace clusterd {
namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const auto end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) {
      return parts;
    }
    start = end + 1;
  }
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < line.size()) {
    const auto begin = line.find_first_not_of(" \t\n", start);
    if (begin == std::string_view::npos) {
      break;
    }
    const auto end = std::min(line.find_first_of(" \t\n", begin), line.size());
    fields.push_back(line.substr(begin, end - begin));
    start = end;
  }
  return fields;
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

CpuQuota quota_of(std::optional<std::int64_t> quota, std::optional<std::int64_t> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

// mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
std::string unescape_mount_path(std::string_view text) {
  std::string result;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool octal = text[i] == '\\' && i + 3 < text.size() &&
                       std::all_of(text.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                   text.begin() + static_cast<std::ptrdiff_t>(i) + 4,
                                   [](char c) { return c >= '0' && c <= '7'; });
    if (octal) {
      result += static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0'));
      i += 3;
    } else {
      result += text[i];
    }
  }
  return result;
}

struct CgroupMount {
  std::string root;         // the part of the hierarchy mounted there, "/" unless a bind mount
  std::string mount_point;  // where it is mounted
};

// One /proc/self/mountinfo line (proc(5)): ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS
// [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS. The optional fields vary in number, so the
// fields after them are found from the "-" separator.
struct MountLine {
  std::string_view root;
  std::string_view mount_point;
  std::string_view fstype;
  std::string_view super_options;
};

std::optional<MountLine> parse_mount_line(std::string_view line) {
  const auto fields = fields_of(line);
  const auto separator = std::find(fields.begin(), fields.end(), "-");
  if (fields.size() < 5 || separator == fields.end() || separator - fields.begin() < 6 ||
      fields.end() - separator < 4) {
    return std::nullopt;
  }
  return MountLine{fields[3], fields[4], separator[1], separator[3]};
}

// True if the cgroup `path` lies in the subtree `root` that a mount shows.
bool within(std::string_view root, std::string_view path) {
  return root == "/" || (path.starts_with(root) && (path.size() == root.size() || path[root.size()] == '/'));
}

bool lists(std::string_view comma_separated, std::string_view item) {
  const auto items = split(comma_separated, ',');
  return std::find(items.begin(), items.end(), item) != items.end();
}

// The mount of the hierarchy: fstype "cgroup2", or "cgroup" with `cpu` among its super
// options. With several (bind mounts), the one whose root contains `path` is preferred.
std::optional<CgroupMount> find_mount(std::string_view mountinfo, CgroupVersion version, std::string_view path) {
  std::optional<CgroupMount> found;
  for (const auto line : split(mountinfo, '\n')) {
    const auto mount = parse_mount_line(line);
    if (!mount) {
      continue;
    }
    const bool matches = version == CgroupVersion::v2
                             ? mount->fstype == "cgroup2"
                             : mount->fstype == "cgroup" && lists(mount->super_options, "cpu");
    if (!matches) {
      continue;
    }
    CgroupMount candidate{unescape_mount_path(mount->root), unescape_mount_path(mount->mount_point)};
    if (within(candidate.root, path)) {
      return candidate;
    }
    if (!found) {
      found = std::move(candidate);
    }
  }
  return found;
}

// The cgroup's directory under its mount. A mount root other than "/" (a container that sees
// only its own subtree) is cut off the front of the path; a path outside the mounted subtree
// (a cgroup namespace shows "/" or "/.." forms) leaves only the mount point to read.
std::string directory_under(const CgroupMount& mount, std::string_view path) {
  std::string_view relative;
  if (mount.root == "/") {
    relative = path;
  } else if (within(mount.root, path)) {
    relative = path.substr(mount.root.size());
  }
  if (relative.find("/..") != std::string_view::npos || relative.starts_with("..")) {
    relative = {};
  }
  while (relative.ends_with('/')) {
    relative.remove_suffix(1);
  }
  if (!relative.empty() && !relative.starts_with('/')) {
    return mount.mount_point + "/" + std::string(relative);
  }
  return mount.mount_point + std::string(relative);
}

}  // namespace

CpuQuota parse_cgroup2_cpu_max(std::string_view cpu_max) {
  const auto fields = fields_of(cpu_max);
  if (fields.size() < 2 || fields[0] == "max") {
    return std::nullopt;
  }
  return quota_of(parse_integer(fields[0]), parse_integer(fields[1]));
}

CpuQuota parse_cgroup1_quota(std::string_view quota_us, std::string_view period_us) {
  const auto quota = fields_of(quota_us);
  const auto period = fields_of(period_us);
  if (quota.empty() || period.empty()) {
    return std::nullopt;
  }
  return quota_of(parse_integer(quota[0]), parse_integer(period[0]));
}

std::optional<CpuCgroup> find_cpu_cgroup(std::string_view proc_self_cgroup, std::string_view mountinfo) {
  // Lines are HIERARCHY-ID:CONTROLLERS:PATH (cgroups(7)); the path may itself contain ':'.
  std::optional<std::string_view> v1_path;
  std::optional<std::string_view> v2_path;
  for (const auto line : split(proc_self_cgroup, '\n')) {
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      continue;
    }
    const auto id = line.substr(0, first);
    const auto controllers = line.substr(first + 1, second - first - 1);
    const auto path = line.substr(second + 1);
    if (id == "0" && controllers.empty()) {
      v2_path = path;
    } else if (lists(controllers, "cpu")) {
      v1_path = path;
    }
  }
  // A controller is in one hierarchy at a time: if v1 has `cpu`, v2's cpu.max does not exist.
  if (v1_path) {
    if (const auto mount = find_mount(mountinfo, CgroupVersion::v1, *v1_path)) {
      return CpuCgroup{CgroupVersion::v1, mount->mount_point, directory_under(*mount, *v1_path)};
    }
  }
  if (v2_path) {
    if (const auto mount = find_mount(mountinfo, CgroupVersion::v2, *v2_path)) {
      return CpuCgroup{CgroupVersion::v2, mount->mount_point, directory_under(*mount, *v2_path)};
    }
  }
  return std::nullopt;
}

std::optional<CpuCgroup> find_cgroup_v2(std::string_view proc_self_cgroup, std::string_view mountinfo) {
  for (const auto line : split(proc_self_cgroup, '\n')) {
    if (!line.starts_with("0::")) {
      continue;
    }
    const auto path = line.substr(3);
    // A path outside what the mount shows (a cgroup namespace's "/.." forms, another subtree
    // bind-mounted): where the process is cannot be told, and its directory must not be guessed.
    const auto mount = find_mount(mountinfo, CgroupVersion::v2, path);
    if (mount && within(mount->root, path) && path.find("/..") == std::string_view::npos) {
      return CpuCgroup{CgroupVersion::v2, mount->mount_point, directory_under(*mount, path)};
    }
  }
  return std::nullopt;
}

std::vector<std::string> cgroup_directories(const CpuCgroup& cgroup) {
  std::vector<std::string> directories;
  std::string directory = cgroup.directory;
  directories.push_back(directory);
  // Climbs one "/name" at a time while still below the mount point.
  while (directory.size() > cgroup.mount_point.size() && directory.starts_with(cgroup.mount_point)) {
    directory.resize(directory.rfind('/'));
    if (directory.size() < cgroup.mount_point.size()) {
      break;
    }
    directories.push_back(directory);
  }
  return directories;
}

std::vector<std::string> cpu_quota_files(const CpuCgroup& cgroup) {
  std::vector<std::string> files;
  for (const std::string& directory : cgroup_directories(cgroup)) {
    if (cgroup.version == CgroupVersion::v2) {
      files.push_back(directory + "/cpu.max");
    } else {
      files.push_back(directory + "/cpu.cfs_quota_us");
      files.push_back(directory + "/cpu.cfs_period_us");
    }
  }
  return files;
}

CpuCount count_usable_cpus(const CpuCountInputs& inputs) {
  CpuCount count;
  count.affinity = inputs.affinity;
  count.source = "affinity";
  const auto file = [&](const std::string& path) -> const std::string* {
    const auto found = inputs.files.find(path);
    return found == inputs.files.end() ? nullptr : &found->second;
  };
  if (const auto cgroup = find_cpu_cgroup(inputs.proc_self_cgroup, inputs.mountinfo)) {
    for (const std::string& directory : cgroup_directories(*cgroup)) {
      // A missing file (the v2 root, a level without the cpu controller) limits nothing.
      CpuQuota quota;
      std::string source;
      if (cgroup->version == CgroupVersion::v2) {
        const std::string* cpu_max = file(directory + "/cpu.max");
        quota = cpu_max != nullptr ? parse_cgroup2_cpu_max(*cpu_max) : std::nullopt;
        source = "cgroup2 " + directory + "/cpu.max";
      } else {
        const std::string* quota_us = file(directory + "/cpu.cfs_quota_us");
        const std::string* period_us = file(directory + "/cpu.cfs_period_us");
        quota = quota_us != nullptr && period_us != nullptr ? parse_cgroup1_quota(*quota_us, *period_us)
                                                            : std::nullopt;
        source = "cgroup1 " + directory + "/cpu.cfs_quota_us";
      }
      // The lowest quota along the path applies; of equal ones, the one nearest the leaf is named.
      if (quota && (!count.quota || *quota < *count.quota)) {
        count.quota = quota;
        count.source = std::move(source);
      }
    }
  }
  count.usable = usable_cpus_from(count.affinity, count.quota);
  return count;
}

int usable_cpus_from(int affinity_cpus, CpuQuota quota) {
  const int affinity = std::max(affinity_cpus, 1);
  if (!quota || !(*quota < static_cast<double>(affinity))) {
    return affinity;
  }
  // Rounded up (1.5 CPUs → 2 workers), as Java does: a worker per started CPU keeps the whole
  // quota usable; rounding down would leave half a CPU idle. protocols §5 discusses both.
  return std::max(1, static_cast<int>(std::ceil(*quota)));
}

// ---- Reading the system --------------------------------------------------------------------

namespace {

// CPU_COUNT of sched_getaffinity with a set that grows until the kernel's mask fits: the fixed
// cpu_set_t holds 1024 CPUs and EINVAL means the set is too small (sched_getaffinity(2)).
int affinity_cpu_count() {
  for (int cpus = 1024; cpus <= (1 << 22); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) {
      break;
    }
    const std::size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const int result = ::sched_getaffinity(0, size, set);
    const int count = result == 0 ? CPU_COUNT_S(size, set) : 0;
    const bool too_small = result != 0 && errno == EINVAL;
    CPU_FREE(set);
    if (count > 0) {
      return count;
    }
    if (!too_small) {
      break;
    }
  }
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

}  // namespace

CpuCount detect_usable_cpus() {
  CpuCountInputs inputs;
  inputs.affinity = affinity_cpu_count();
  inputs.proc_self_cgroup = read_text_file("/proc/self/cgroup").value_or("");
  inputs.mountinfo = read_text_file("/proc/self/mountinfo").value_or("");
  if (const auto cgroup = find_cpu_cgroup(inputs.proc_self_cgroup, inputs.mountinfo)) {
    for (const std::string& path : cpu_quota_files(*cgroup)) {
      if (auto text = read_text_file(path)) {
        inputs.files.emplace(path, std::move(*text));
      }
    }
  }
  return count_usable_cpus(inputs);
}

}  // namespace clusterd
