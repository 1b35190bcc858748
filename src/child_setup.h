// A worker's side of a spawn, between clone and execve: the setup steps of protocols §3.2 in
// order, with only async-signal-safe calls, and what it reports back in the memory it shares
// with clusterd until the exec.
#pragma once

#include <limits.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "credentials.h"

namespace clusterd {

// The child's setup steps, as numbers on the exec-status pipe and as names in StartFailure.
enum class ChildStep : std::int32_t {
  unshare,
  setsid,
  dup2,
  stdio,
  close_range,
  setrlimit,
  chdir,
  setgroups,
  setgid,
  setuid,
  pdeathsig,
  getppid,
  sigprocmask,
  exec,
  cgroup,
};

// "setsid", "chdir", "exec", …: a step's name in StartFailure.
const char* step_name(std::int32_t step);

// What a child that shares clusterd's memory until its exec reports (child_launch.h): clusterd
// reads it once the clone returns, when the child has either exec'd or ended.
struct ChildReport {
  bool reaching_exec = false;  // set right before execve: the setup succeeded
  bool failed = false;         // a step failed: `step` and `error` say which and why
  std::int32_t step = 0;
  std::int32_t error = 0;
};

// What a forked child writes on its exec-status pipe: one fixed-size record. Writes of at most
// PIPE_BUF bytes to a pipe are atomic (pipe(7)), so the parent reads all of it or nothing.
struct ExecStatusRecord {
  std::int32_t step = 0;
  std::int32_t error = 0;
};
static_assert(sizeof(ExecStatusRecord) <= PIPE_BUF);
// Written right before execve: without it, end of file on the pipe would also come from a child
// that a signal killed during its setup, which would pass for a running program.
constexpr ExecStatusRecord reaching_exec_record{static_cast<std::int32_t>(ChildStep::exec), 0};

// Upper bound of the fallback loop that marks fds close-on-exec one by one when close_range is
// missing: a huge hard limit would otherwise cost millions of fcntl calls per spawn.
constexpr rlim_t fallback_fd_scan_limit = 1 << 20;

// Everything the child needs, built by the parent before the clone: between clone and execve the
// child may only make async-signal-safe calls (signal-safety(7)) — no allocation, no locks,
// no logging, no NSS (protocols §3.1). It shares clusterd's memory, so it writes only into this
// struct, its own copies and its report, and changes its ids with the raw system calls (glibc's
// wrappers would broadcast the change to clusterd's threads).
struct ChildSetup {
  const char* executable = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* listen_pid_digits = nullptr;    // inside envp's LISTEN_PID= slot; nullptr: no slot
  char* watchdog_pid_digits = nullptr;  // likewise WATCHDOG_PID=
  int* sources = nullptr;             // listener fds, laid out at 3, 4, …
  int source_count = 0;
  int stdio[3] = {-1, -1, -1};  // what goes to 0, 1, 2; -1 leaves it alone
  int status_pipe = -1;  // a forked child's exec-status pipe; -1: it shares clusterd's memory
  int cgroup_procs = -1;  // the worker's cgroup's cgroup.procs, written first; -1: no cgroup
  // The child shares clusterd's fd table (CLONE_FILES) until its first step copies the numbers
  // below this one (where every fd it needs was put) into a table of its own; -1: it already
  // has its own table.
  int own_fds_below = -1;
  bool restore_nofile = false;
  rlimit nofile{};
  int fd_scan_limit = 0;
  const char* directory = nullptr;  // nullptr: keep clusterd's
  const Credentials* credentials = nullptr;
  pid_t parent_pid = 0;
  ChildReport report;  // written by a child that shares clusterd's memory
};

// Where the child writes its pid into the reserved "PREFIX" + spaces entry `index` of `env`;
// nullptr when there is no such entry.
char* pid_slot_digits(std::vector<std::string>& env, const std::optional<std::size_t>& index,
                      std::string_view prefix);

// The child's whole life: setup, then execve; on a failure, the report (and the status pipe's
// record) and _exit(127).
[[noreturn]] void run_child(ChildSetup& setup) noexcept;
// run_child for clone(2), whose argument is the ChildSetup.
int clone_entry(void* setup) noexcept;

}  // namespace clusterd
