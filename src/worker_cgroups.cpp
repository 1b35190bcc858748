// A cgroup v2 per worker (worker_cgroups.h): the plan is pure, the rest writes cgroupfs.
#include "worker_cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "errno_text.h"
#include "text_file.h"

namespace clusterd {
namespace {

constexpr std::string_view supervisor_leaf = "supervisor";
constexpr std::string_view worker_prefix = "worker.";

std::string parent_of(const std::string& directory) { return directory.substr(0, directory.rfind('/')); }

std::string base_name(const std::string& directory) { return directory.substr(directory.rfind('/') + 1); }

// Writes `text` to the file `name` of the directory `directory_fd`; errno on failure.
tl::expected<void, int> write_at(int directory_fd, const char* name, std::string_view text) {
  const Fd file(::openat(directory_fd, name, O_WRONLY | O_CLOEXEC));
  if (!file) {
    return tl::make_unexpected(errno);
  }
  if (retry_on_eintr([&] { return ::write(file.get(), text.data(), text.size()); }) !=
      static_cast<ssize_t>(text.size())) {
    return tl::make_unexpected(errno);
  }
  return {};
}

bool populated_at(int directory_fd) {
  const Fd events(::openat(directory_fd, "cgroup.events", O_RDONLY | O_CLOEXEC));
  char buffer[256];
  const ssize_t got = events ? retry_on_eintr([&] { return ::read(events.get(), buffer, sizeof buffer); }) : -1;
  return got <= 0 || parse_populated(std::string_view(buffer, static_cast<std::size_t>(got))).value_or(true);
}

// systemd marks a cgroup it delegates with trusted.delegate=1, which only CAP_SYS_ADMIN can read
// (the shipped units do not grant it), and user.delegate=1, which the cgroup's owner can set
// too: trusted only on a cgroup owned by clusterd's own uid, or a user could have a root
// clusterd take their scope for its own.
bool has_delegate_mark(const std::string& directory) {
  const auto marked = [&](const char* name) {
    char value[8];
    return ::getxattr(directory.c_str(), name, value, sizeof value) == 1 && value[0] == '1';
  };
  struct stat status {};
  return marked("trusted.delegate") ||
         (::stat(directory.c_str(), &status) == 0 && status.st_uid == ::geteuid() && marked("user.delegate"));
}

// Calls `visit(name)` for each subdirectory of `directory_fd` (a cgroup's child cgroups).
void for_each_directory(int directory_fd, const std::function<void(std::string_view)>& visit) {
  const int listing = directory_fd >= 0 ? ::openat(directory_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  DIR* directory = listing >= 0 ? ::fdopendir(listing) : nullptr;
  if (directory == nullptr) {
    if (listing >= 0) {
      ::close(listing);
    }
    return;
  }
  while (const dirent* entry = ::readdir(directory)) {
    const std::string_view name = entry->d_name;
    if (entry->d_type == DT_DIR && name != "." && name != "..") {
      visit(name);
    }
  }
  ::closedir(directory);
}

// What a clusterd before this one left in the same delegated cgroup (it was killed, its workers
// died with it but their helpers may not have): killed, and removed once empty.
void clear_stale_worker_cgroups(int parent_fd, const std::string& parent) {
  std::vector<std::string> stale;
  for_each_directory(parent_fd, [&](std::string_view name) {
    if (name.starts_with(worker_prefix)) {
      stale.emplace_back(name);
    }
  });
  for (const std::string& name : stale) {
    const Fd directory(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (directory && populated_at(directory.get())) {
      spdlog::warn("killing what an earlier clusterd left in cgroup={}/{}", parent, name);
      (void)write_at(directory.get(), "cgroup.kill", "1");
    }
    ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR);  // EBUSY while its processes die: reused
  }
}

// The cgroups `clusterd.PID` beside ours whose clusterd is gone without removing them (it was
// killed): removed once empty, their workers' empty cgroups first. One with a process left (a
// helper that outlived its clusterd) is only named: whose it is cannot be told for sure here.
void clear_stale_instance_cgroups(const std::string& root, const std::string& own) {
  const Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::vector<std::string> stale;
  for_each_directory(root_fd.get(), [&](std::string_view name) {
    constexpr std::string_view prefix = "clusterd.";
    pid_t pid = 0;
    const auto digits = name.substr(std::min(name.size(), prefix.size()));
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (name.starts_with(prefix) && error == std::errc() && end == digits.data() + digits.size() && pid > 0 &&
        root + "/" + std::string(name) != own && ::kill(pid, 0) != 0 && errno == ESRCH) {
      stale.emplace_back(name);
    }
  });
  for (const std::string& name : stale) {
    const Fd instance(::openat(root_fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    // Its pid is gone, but another pid namespace's live clusterd may carry the number: the lock says.
    if (!instance || ::flock(instance.get(), LOCK_EX | LOCK_NB) != 0) {
      continue;
    }
    for_each_directory(instance.get(), [&](std::string_view worker) {
      ::unlinkat(instance.get(), std::string(worker).c_str(), AT_REMOVEDIR);
    });
    if (::unlinkat(root_fd.get(), name.c_str(), AT_REMOVEDIR) == 0) {
      spdlog::info("removed the cgroup of a clusterd that is gone cgroup={}/{}", root, name);
    } else {
      spdlog::warn("the cgroup of a clusterd that is gone still holds processes cgroup={}/{}", root, name);
    }
  }
}

// The value of `key` in a cgroup "flat keyed" file ("KEY VALUE" lines: cgroup.events, cpu.stat).
std::optional<std::string_view> flat_keyed_value(std::string_view text, std::string_view key) {
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      return line.substr(key.size() + 1);
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

tl::expected<CgroupPlan, std::string> plan_worker_cgroups(const std::optional<CpuCgroup>& own,
                                                          const std::function<bool(const std::string&)>& delegated,
                                                          pid_t pid) {
  if (!own) {
    return tl::make_unexpected("no cgroup v2 mount here shows clusterd's cgroup");
  }
  const std::string& directory = own->directory;
  if (directory == own->mount_point) {
    return CgroupPlan{fmt::format("{}/clusterd.{}", directory, pid), true, std::nullopt};
  }
  // Checked first: the leaf itself counts as delegated too (a mark is inherited by nothing, but
  // cgroup.mode = "on" assumes every cgroup is).
  if (base_name(directory) == supervisor_leaf && parent_of(directory) != own->mount_point &&
      delegated(parent_of(directory))) {
    return CgroupPlan{parent_of(directory), false, directory};
  }
  if (delegated(directory)) {
    return CgroupPlan{directory, false, directory + "/" + std::string(supervisor_leaf)};
  }
  return tl::make_unexpected(fmt::format(
      "clusterd's cgroup {} was not delegated to it (a systemd unit needs Delegate=yes; see "
      "docs/operations.md#a-cgroup-per-worker)",
      directory));
}

std::optional<bool> parse_populated(std::string_view events) {
  const auto value = flat_keyed_value(events, "populated");
  if (value == "0" || value == "1") {
    return value == "1";
  }
  return std::nullopt;
}

std::optional<double> parse_cpu_usage(std::string_view cpu_stat) {
  const auto digits = flat_keyed_value(cpu_stat, "usage_usec");
  std::uint64_t usec = 0;
  if (!digits) {
    return std::nullopt;
  }
  const auto [last, error] = std::from_chars(digits->data(), digits->data() + digits->size(), usec);
  if (error != std::errc() || last != digits->data() + digits->size()) {
    return std::nullopt;
  }
  return static_cast<double>(usec) / 1e6;
}

std::string worker_cgroup_name(int slot, std::uint64_t generation, std::uint64_t instance) {
  return fmt::format("{}{}.{}.{}", worker_prefix, slot, generation, instance);
}

// ---- WorkerCgroup

WorkerCgroup::WorkerCgroup(int parent_fd, std::string name, std::string path, Fd procs, Fd events)
    : parent_fd_(parent_fd), name_(std::move(name)), path_(std::move(path)), procs_(std::move(procs)),
      events_(std::move(events)) {}

WorkerCgroup::WorkerCgroup(WorkerCgroup&& other) noexcept
    : parent_fd_(other.parent_fd_), name_(std::exchange(other.name_, {})), path_(std::move(other.path_)),
      procs_(std::move(other.procs_)), events_(std::move(other.events_)) {}

WorkerCgroup::~WorkerCgroup() {
  if (name_.empty()) {
    return;  // moved from
  }
  procs_.reset();
  events_.reset();
  if (::unlinkat(parent_fd_, name_.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    spdlog::warn("cannot remove cgroup={} error=\"{}\"", path_, errno_text(errno));
  }
}

bool WorkerCgroup::populated() const {
  char buffer[256];
  // A kernfs file is read again from its start; each read also re-arms its EPOLLPRI.
  const ssize_t got = retry_on_eintr([&] { return ::pread(events_.get(), buffer, sizeof buffer, 0); });
  if (got < 0 && (errno == ENODEV || errno == ENOENT)) {
    return false;  // the cgroup was removed: it was empty
  }
  return got <= 0 || parse_populated(std::string_view(buffer, static_cast<std::size_t>(got))).value_or(true);
}

bool WorkerCgroup::kill() const {
  const Fd directory(::openat(parent_fd_, name_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return directory && write_at(directory.get(), "cgroup.kill", "1").has_value();
}

std::optional<CgroupCost> WorkerCgroup::cost() const {
  const auto cpu = read_text_file(path_ + "/cpu.stat");
  const auto usage = cpu ? parse_cpu_usage(*cpu) : std::nullopt;
  if (!usage) {
    return std::nullopt;
  }
  CgroupCost cost{path_, *usage, 0, std::nullopt};
  if (const auto procs = read_text_file(path_ + "/cgroup.procs")) {
    cost.processes = static_cast<int>(std::count(procs->begin(), procs->end(), '\n'));
  }
  if (const auto memory = read_text_file(path_ + "/memory.current")) {
    std::uint64_t bytes = 0;
    const std::string_view text = *memory;
    if (std::from_chars(text.data(), text.data() + text.size(), bytes).ec == std::errc()) {
      cost.memory_bytes = bytes;
    }
  }
  return cost;
}

// ---- WorkerCgroups

WorkerCgroups::WorkerCgroups(CgroupPlan plan, Fd parent) : plan_(std::move(plan)), parent_(std::move(parent)) {}

WorkerCgroups::WorkerCgroups(WorkerCgroups&& other) noexcept
    : plan_(std::move(other.plan_)), parent_(std::move(other.parent_)) {
  other.plan_.create_parent = false;
}

WorkerCgroups::~WorkerCgroups() {
  if (plan_.create_parent && parent_) {
    parent_.reset();
    if (::rmdir(plan_.parent.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("cannot remove cgroup={} error=\"{}\"", plan_.parent, errno_text(errno));
    }
  }
}

tl::expected<WorkerCgroups, std::string> WorkerCgroups::set_up(bool assume_delegated) {
  const auto own = find_cgroup_v2(read_text_file("/proc/self/cgroup").value_or(""),
                                  read_text_file("/proc/self/mountinfo").value_or(""));
  const auto delegated = [assume_delegated](const std::string& directory) {
    return assume_delegated || has_delegate_mark(directory);
  };
  auto plan = plan_worker_cgroups(own, delegated, ::getpid());
  if (!plan) {
    return tl::make_unexpected(plan.error());
  }
  const auto failed = [&](std::string_view what, const std::string& path, int error) {
    return tl::make_unexpected(fmt::format("cannot {} {}: {}", what, path, errno_text(error)));
  };
  if (plan->create_parent && ::mkdir(plan->parent.c_str(), 0755) != 0 && errno != EEXIST) {
    return failed("create the cgroup", plan->parent, errno);
  }
  Fd parent(::open(plan->parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent) {
    return failed("open the cgroup", plan->parent, errno);
  }
  // Held for clusterd's life: a second clusterd in the same delegated cgroup would take (and
  // kill, as an earlier one's) this one's workers; a sweep of a killed clusterd's cgroups tells
  // a live one by it.
  if (::flock(parent.get(), LOCK_EX | LOCK_NB) != 0) {
    return tl::make_unexpected(errno == EWOULDBLOCK
                                   ? fmt::format("another clusterd makes its workers' cgroups in {}", plan->parent)
                                   : fmt::format("cannot lock the cgroup {}: {}", plan->parent, errno_text(errno)));
  }
  WorkerCgroups cgroups(std::move(*plan), std::move(parent));  // from here removes what it made
  const CgroupPlan& made = cgroups.plan_;
  if (::faccessat(cgroups.parent_.get(), "cgroup.kill", W_OK, 0) != 0) {
    if (errno == ENOENT) {
      return tl::make_unexpected(fmt::format("this kernel has no cgroup.kill (Linux 5.14) in {}", made.parent));
    }
    return failed("write", made.parent + "/cgroup.kill", errno);
  }
  if (made.supervisor) {
    if (::mkdir(made.supervisor->c_str(), 0755) != 0 && errno != EEXIST) {
      return failed("create the cgroup", *made.supervisor, errno);
    }
    const Fd leaf(::open(made.supervisor->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const auto moved = leaf ? write_at(leaf.get(), "cgroup.procs", std::to_string(::getpid()))
                            : tl::expected<void, int>(tl::unexpect, errno);
    if (!moved) {
      return failed("move clusterd into the cgroup", *made.supervisor, moved.error());
    }
    clear_stale_worker_cgroups(cgroups.parent_.get(), made.parent);
  }
  if (made.create_parent) {
    clear_stale_instance_cgroups(parent_of(made.parent), made.parent);
  }
  return cgroups;
}

WorkerCgroups WorkerCgroups::adopt(std::string parent, bool created_parent, Fd parent_fd) {
  return WorkerCgroups(CgroupPlan{std::move(parent), created_parent, std::nullopt}, std::move(parent_fd));
}

tl::expected<WorkerCgroup, int> WorkerCgroups::adopt_worker(const std::string& name) const {
  if (name.empty() || name.find('/') != std::string::npos || name.starts_with(".")) {
    return tl::make_unexpected(EINVAL);
  }
  const Fd directory(::openat(parent_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  Fd events(directory ? ::openat(directory.get(), "cgroup.events", O_RDONLY | O_CLOEXEC) : -1);
  if (!events) {
    return tl::make_unexpected(errno);
  }
  return WorkerCgroup(parent_.get(), name, plan_.parent + "/" + name, Fd(), std::move(events));
}

tl::expected<WorkerCgroup, int> WorkerCgroups::create(int slot, std::uint64_t generation,
                                                      std::uint64_t instance) const {
  std::string name = worker_cgroup_name(slot, generation, instance);
  if (::mkdirat(parent_.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
    return tl::make_unexpected(errno);
  }
  const Fd directory(::openat(parent_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Fd procs(directory ? ::openat(directory.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC) : -1);
  Fd events(procs ? ::openat(directory.get(), "cgroup.events", O_RDONLY | O_CLOEXEC) : -1);
  if (!events) {
    const int error = errno;
    ::unlinkat(parent_.get(), name.c_str(), AT_REMOVEDIR);
    return tl::make_unexpected(error);
  }
  std::string path = plan_.parent + "/" + name;
  return WorkerCgroup(parent_.get(), std::move(name), std::move(path), std::move(procs), std::move(events));
}

}  // namespace clusterd
