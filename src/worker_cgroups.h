// A cgroup v2 per worker, so the kernel accounts for a worker and everything it started, and
// ends them as a whole (cgroup.kill): where clusterd may make them, and each one's life.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "cpu_count.h"
#include "fd.h"

namespace clusterd {

// Where the workers' cgroups go.
struct CgroupPlan {
  std::string parent;         // the directory the workers' cgroups are made in
  bool create_parent = false; // clusterd makes `parent` at start and removes it at exit
  // The leaf clusterd moves itself into first: a cgroup with processes of its own may not give
  // its children controllers (cgroup v2's no-internal-processes rule). nullopt: it stays.
  std::optional<std::string> supervisor;

  bool operator==(const CgroupPlan&) const = default;
};

// Pure. `own`: clusterd's cgroup v2 (find_cgroup_v2). `delegated(directory)`: whether the
// cgroup there was handed to clusterd (systemd's Delegate=yes marks it with the xattr
// trusted.delegate=1, a user manager with user.delegate=1).
//   - The hierarchy's root as clusterd sees it (a container's cgroup namespace, a host without
//     an init that manages cgroups): a cgroup `clusterd.PID` of its own there; clusterd stays.
//   - A delegated cgroup: the workers' cgroups go in it and clusterd into its leaf `supervisor`
//     (also when clusterd already is there: a second start in the same unit).
//   - Elsewhere (a systemd unit without Delegate=yes, a login session): no cgroups, and why.
tl::expected<CgroupPlan, std::string> plan_worker_cgroups(const std::optional<CpuCgroup>& own,
                                                          const std::function<bool(const std::string&)>& delegated,
                                                          pid_t pid);

// From the text of a `cgroup.events` file ("populated 1\nfrozen 0\n"); nullopt when it has no
// populated line.
std::optional<bool> parse_populated(std::string_view events);

// The `usage_usec` line of a cgroup's `cpu.stat`, in seconds; nullopt without one.
std::optional<double> parse_cpu_usage(std::string_view cpu_stat);

// What a worker's cgroup says it costs: everything it ran there, processes that are gone included.
struct CgroupCost {
  std::string path;
  double cpu_seconds = 0;                     // cpu.stat usage_usec
  int processes = 0;                          // cgroup.procs
  std::optional<std::uint64_t> memory_bytes;  // memory.current, where the memory controller is enabled
};

// "worker.SLOT.GENERATION.INSTANCE": the cgroup of one worker, unique among the live ones.
std::string worker_cgroup_name(int slot, std::uint64_t generation, std::uint64_t instance);

// One worker's cgroup: made before the worker starts, removed when its last process is gone.
// Move-only; the parent directory (WorkerCgroups) outlives it.
class WorkerCgroup {
 public:
  WorkerCgroup(WorkerCgroup&& other) noexcept;
  WorkerCgroup& operator=(WorkerCgroup&& other) = delete;
  WorkerCgroup(const WorkerCgroup&) = delete;
  WorkerCgroup& operator=(const WorkerCgroup&) = delete;
  // Removes the directory; one still populated stays (logged), never killed here.
  ~WorkerCgroup();

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }  // in the parent: worker.SLOT.GENERATION.INSTANCE
  // `cgroup.procs`, for the child to write itself into (SpawnPlan::cgroup_procs_fd); close it once
  // the child was started.
  int procs_fd() const { return procs_.get(); }
  void close_procs() { procs_.reset(); }
  // `cgroup.events`: an epoll source (EPOLLPRI) whenever `populated` changes, once read.
  int events_fd() const { return events_.get(); }
  // Whether a process is left in it, read from cgroup.events; true when that cannot be read (a
  // worker is never taken for gone on a guess).
  bool populated() const;
  // SIGKILL to every process in it, its descendants' cgroups included (cgroup.kill, Linux 5.14).
  // False, with errno, when the file could not be written.
  bool kill() const;
  // Read now; nullopt when cpu.stat cannot be read (the cgroup is gone).
  std::optional<CgroupCost> cost() const;

 private:
  friend class WorkerCgroups;
  WorkerCgroup(int parent_fd, std::string name, std::string path, Fd procs, Fd events);

  int parent_fd_ = -1;
  std::string name_;
  std::string path_;
  Fd procs_;
  Fd events_;
};

// The directory the workers' cgroups are made in, set up once at start.
class WorkerCgroups {
 public:
  // Reads where clusterd runs (/proc/self/cgroup, /proc/self/mountinfo), plans, and carries the
  // plan out: makes the parent, moves clusterd into its leaf, kills and removes what a previous
  // clusterd in the same delegated cgroup left, checks the kernel has cgroup.kill. The error says
  // why the workers stay in clusterd's cgroup. `assume_delegated` (cgroup.mode = "on"): the
  // operator says clusterd's cgroup is its own to manage, marked or not (systemd before 251
  // marks nothing; other managers).
  static tl::expected<WorkerCgroups, std::string> set_up(bool assume_delegated);

  WorkerCgroups(WorkerCgroups&& other) noexcept;
  WorkerCgroups& operator=(WorkerCgroups&& other) = delete;
  WorkerCgroups(const WorkerCgroups&) = delete;
  WorkerCgroups& operator=(const WorkerCgroups&) = delete;
  // Removes the parent clusterd made (once every worker's cgroup is gone).
  ~WorkerCgroups();

  const std::string& parent() const { return plan_.parent; }
  // For `clusterd upgrade`: the parent's fd (its flock held), and whether clusterd made it.
  int parent_fd() const { return parent_.get(); }
  bool created_parent() const { return plan_.create_parent; }
  // The parent an earlier clusterd of this process set up, with its locked fd (`clusterd upgrade`):
  // nothing is swept or moved.
  static WorkerCgroups adopt(std::string parent, bool created_parent, Fd parent_fd);
  // The cgroup `name` an earlier clusterd of this process made for a worker that still runs.
  tl::expected<WorkerCgroup, int> adopt_worker(const std::string& name) const;
  // Makes the cgroup of a worker about to start; the error is errno.
  tl::expected<WorkerCgroup, int> create(int slot, std::uint64_t generation, std::uint64_t instance) const;

 private:
  WorkerCgroups(CgroupPlan plan, Fd parent);

  CgroupPlan plan_;
  Fd parent_;
};

}  // namespace clusterd
