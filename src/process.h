// Starts a worker (fork, child setup, exec) from a SpawnPlan, and owns the child: its pid, its
// pidfd and the pipe that reports a failed exec.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "credentials.h"
#include "fd.h"
#include "spawn_plan.h"
#include "worker_exit.h"

namespace clusterd {

// Credentials (the ids a worker runs as) live in credentials.h, next to the code that
// resolves them in the parent: the child may not call NSS.

// What the exec-status pipe says so far. died_before_exec: the child ended during its setup
// without a failure of its own (a signal killed it); its exit says how.
enum class ExecState { pending, succeeded, failed, died_before_exec };

// A child process clusterd started. Move-only. It does not reap: the daemon's waitid loop does,
// then calls mark_reaped(). A Process destroyed before that (an exception path, a test) SIGKILLs
// its group and reaps it, because a forgotten child would keep the listeners open.
class Process {
 public:
  // fork + child setup (protocols §3.2) + execve. Fails only when no child was created
  // (pipe2 or fork failed); a failed exec is reported later through exec_status().
  static tl::expected<Process, StartFailure> spawn(const SpawnPlan& plan,
                                                  const std::optional<Credentials>& credentials);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // The child's pidfd (readable once it exited), or -1 where pidfd_open failed (ENOSYS before
  // Linux 5.3): the pidfd is a convenience, never needed for correctness.
  int pidfd() const { return pidfd_.get(); }
  // Readable (an epoll source) once exec succeeded (EOF) or failed (a record). EOF also comes
  // when the child was killed before exec; the reap tells which. The fd stays open, and keeps
  // reporting readable, until close_exec_status() or the Process's end: remove it from epoll once
  // read_exec_status() is no longer `pending`, then close it.
  int exec_status_fd() const { return exec_status_.get(); }
  // Closes the exec-status pipe once its answer is in (no-op while `pending`): a long-running
  // worker then costs clusterd one fd (its pidfd), not two, and each fork copies a smaller fd table.
  void close_exec_status() noexcept {
    if (exec_state_ != ExecState::pending) {
      exec_status_.reset();
    }
  }

  // Reads the exec-status pipe without blocking. After `failed`, exec_failure() says why.
  ExecState read_exec_status();
  const std::optional<StartFailure>& exec_failure() const { return exec_failure_; }

  // Sends `signal` to the worker's process group (it is its own group leader). Before the
  // child's setsid() the group does not exist yet; the signal then goes to the child alone,
  // which still has the signals clusterd blocks blocked, so it is delivered right before exec.
  // Nothing is sent once the child is reaped (its pid may be reused).
  void signal_group(int signal) const noexcept;
  // Sends `signal` to the worker process alone (its pidfd where there is one).
  void signal_leader(int signal) const noexcept;
  // The waitid loop consumed this child's exit status.
  void mark_reaped() noexcept { reaped_ = true; }

 private:
  Process(pid_t pid, Fd pidfd, Fd exec_status);

  pid_t pid_ = -1;
  Fd pidfd_;
  Fd exec_status_;
  ExecState exec_state_ = ExecState::pending;
  bool reaching_exec_ = false;  // the child said it was about to call execve
  std::optional<StartFailure> exec_failure_;
  bool reaped_ = false;
};

// The children of the calling process (its every thread's), from /proc/self/task/TID/children,
// or, where the kernel lacks that file (CONFIG_PROC_CHILDREN), from every /proc/PID/stat's
// parent pid. A child stays listed until it is reaped (zombies too), so its pid cannot be reused
// while the caller, as long as it reaps nothing meanwhile, signals it. nullopt when /proc cannot
// be read, or is the /proc of another pid namespace (its /proc/self is not getpid()): its pids
// would name other processes than kill() does.
std::optional<std::vector<pid_t>> list_children();

// The children of `pid`, from /proc/PID/task/*/children; nullopt when no such file can be read
// (the process is gone, or the kernel lacks CONFIG_PROC_CHILDREN).
std::optional<std::vector<pid_t>> children_of(pid_t pid);

// The pids in a /proc/.../children file: decimal numbers separated by spaces.
std::vector<pid_t> parse_pid_list(std::string_view text);

// RLIMIT_NOFILE soft limits, for clusterd's startup log.
struct NofileLimits {
  rlim_t original_soft = 0;  // what every child gets back (the first value remembered)
  rlim_t soft = 0;           // clusterd's own soft limit now
};

// Raises clusterd's RLIMIT_NOFILE soft limit to the hard limit (protocols §3.8: it holds
// several fds per worker) and remembers the original soft limit, which every child gets back
// before exec (select()-based programs break above 1024). Call once at start, before spawning;
// calling it again keeps the first remembered value. Throws std::system_error if getrlimit or
// setrlimit fails.
NofileLimits raise_nofile_limit();

}  // namespace clusterd
