// Starts a worker (fork, child setup, exec) from a SpawnPlan, and owns the child: its pid, its
// pidfd and the pipe that reports a failed exec.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "fd.h"
#include "spawn_plan.h"
#include "worker_exit.h"

namespace clusterd {

// Ids a worker runs as (interface §2.6), resolved in the parent: the child may not call NSS.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// What the exec-status pipe says so far.
enum class ExecState { pending, succeeded, failed };

// A child process clusterd started. Move-only. It does not reap: the daemon's waitid loop does,
// then calls mark_reaped(). A Process destroyed before that (an exception path, a test) SIGKILLs
// its group and reaps it, because a forgotten child would keep the listeners open.
class Process {
 public:
  // fork + child setup (protocols §3.2) + execve. Fails only when no child was created
  // (pipe2 or fork failed); a failed exec is reported later through exec_status().
  static tl::expected<Process, ExecFailure> spawn(const SpawnPlan& plan,
                                                  const std::optional<Credentials>& credentials);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // Readable (an epoll source) once exec succeeded (EOF) or failed (a record).
  int exec_status_fd() const { return exec_status_.get(); }

  // Reads the exec-status pipe without blocking. After `failed`, exec_failure() says why.
  ExecState read_exec_status();
  const std::optional<ExecFailure>& exec_failure() const { return exec_failure_; }

  // Sends `signal` to the worker's process group (it is its own group leader).
  void signal_group(int signal) const noexcept;
  // The waitid loop consumed this child's exit status.
  void mark_reaped() noexcept { reaped_ = true; }

 private:
  Process(pid_t pid, Fd pidfd, Fd exec_status);

  pid_t pid_ = -1;
  Fd pidfd_;
  Fd exec_status_;
  ExecState exec_state_ = ExecState::pending;
  std::optional<ExecFailure> exec_failure_;
  bool reaped_ = false;
};

// Finds the program the way a start would (interface §1): a name with '/' is taken relative to
// `directory` (unless absolute), otherwise each entry of `path_variable` is tried. Returns the
// absolute path, or the errno of the failure (ENOENT, EACCES, …) for the message.
tl::expected<std::string, int> resolve_executable(const std::string& program,
                                                  const std::string& directory,
                                                  const std::string& path_variable);

}  // namespace clusterd
