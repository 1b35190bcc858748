// Computes, in the parent, everything a worker's exec needs: argv with placeholders expanded,
// the environment (with a reserved LISTEN_PID= slot the child fills in), and the fd layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"

namespace clusterd {

// A listener as a worker sees it: its name (LISTEN_FDNAMES, {fd:NAME}) and clusterd's fd for it.
struct ListenerFd {
  std::string name;
  int fd = -1;
};

// Who the worker is (CLUSTERD_WORKER_ID, CLUSTERD_WORKERS, CLUSTERD_GENERATION).
struct WorkerIdentity {
  int slot = 0;
  int workers = 1;
  std::uint64_t generation = 1;
};

// Variables set for the worker's user when `user` is given (HOME, USER, LOGNAME), unless [env]
// sets them.
struct UserEnv {
  std::string name;
  std::string home;
};

// The worker's own NOTIFY_SOCKET (ready.mode = "notify"), and its watchdog (ready.watchdog).
struct NotifySettings {
  std::string socket_path;
  std::optional<std::uint64_t> watchdog_usec;  // WATCHDOG_USEC; WATCHDOG_PID is filled in the child
};

struct SpawnPlan {
  std::string executable;         // absolute path, resolved in the parent (no PATH search in the child)
  std::vector<std::string> argv;  // argv[0] is the command as written
  std::vector<std::string> env;   // "KEY=VALUE"
  // Index in `env` of "LISTEN_PID=" followed by pid_slot_width spaces; the child writes its
  // own pid there (protocols §1.2). Unset when the worker has no listeners.
  std::optional<std::size_t> listen_pid_index;
  // Likewise "WATCHDOG_PID=" + pid_slot_width spaces, when the worker has a watchdog.
  std::optional<std::size_t> watchdog_pid_index;
  std::vector<int> fds;    // clusterd's fds, to be laid out at 3, 4, … in this order
  std::string directory;   // empty: keep clusterd's
  // With output = "prefix" (interface §3) the daemon sets these to the write ends of the
  // worker's output pipes; -1 leaves clusterd's own stdout/stderr. make_spawn_plan leaves -1.
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Set by the daemon: the exec or chdir may wait on a network file system or FUSE, so the child
  // must be forked, never share clusterd's memory until its exec (child_launch.h).
  bool may_hang_before_exec = false;
  // Set by the daemon: the worker's own cgroup's `cgroup.procs`, open for writing; the child moves
  // itself there before anything else, so all it ever starts is in it (worker_cgroups.h). -1: none.
  int cgroup_procs_fd = -1;
};

inline constexpr std::size_t pid_slot_width = 20;

// Variables systemd set for clusterd itself, never passed on to workers (interface §3).
bool is_removed_variable(std::string_view name);
// Names clusterd sets or removes; `[env]` may not set them.
bool is_reserved_variable(std::string_view name);

// Expands `{fd:NAME}` (→ 3 + the listener's position), `{worker_id}` (→ slot) and `{{` (→ `{`)
// in one argument or [env] value. The error names the unknown placeholder: `unknown placeholder "{port}"`.
tl::expected<std::string, std::string> expand_argument(std::string_view argument,
                                                       const std::vector<std::string>& listener_names,
                                                       int slot);

// `parent_env`: clusterd's environment as "KEY=VALUE" strings, of which the worker gets those
// `config.inherit_env` lets through, less the ones clusterd removes or sets itself.
// `executable`: the resolved path.
SpawnPlan make_spawn_plan(const Config& config, const std::string& executable,
                          const std::vector<ListenerFd>& listeners, const WorkerIdentity& identity,
                          const std::vector<std::string>& parent_env,
                          const std::optional<UserEnv>& user_env,
                          const std::optional<NotifySettings>& notify = std::nullopt);

}  // namespace clusterd
