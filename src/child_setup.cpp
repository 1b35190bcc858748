// A worker's side of a spawn: from clone to execve, async-signal-safe calls only (signal-safety(7)).
// Built without AddressSanitizer (src/CMakeLists.txt): it runs on a stack ASan does not know.
#include "child_setup.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace clusterd {
namespace {

void write_record(int status_pipe, const ExecStatusRecord& record) noexcept {
  if (status_pipe >= 0) {
    while (::write(status_pipe, &record, sizeof record) < 0 && errno == EINTR) {
    }
  }
}

// Says how the setup went: in the report, and on the exec-status pipe when forked.
[[noreturn]] void child_fail(ChildSetup& setup, ChildStep step, int error) noexcept {
  setup.report.step = static_cast<std::int32_t>(step);
  setup.report.error = error;
  setup.report.failed = true;
  write_record(setup.status_pipe, ExecStatusRecord{static_cast<std::int32_t>(step), error});
  // _exit, not exit: atexit handlers and stdio buffers belong to clusterd, not to this child.
  ::_exit(127);
}

// The id changes as raw system calls: in a child that shares clusterd's memory, glibc's setuid,
// setgid and setgroups would, in a process it believes multi-threaded, signal clusterd's threads
// to change their ids too (posix_spawn avoids them for the same reason).
// The 32-bit id calls where an architecture has both (i386, 32-bit ARM: the plain ones take
// 16-bit ids there).
#ifdef SYS_setuid32
constexpr long setgroups_call = SYS_setgroups32;
constexpr long setgid_call = SYS_setgid32;
constexpr long setuid_call = SYS_setuid32;
#else
constexpr long setgroups_call = SYS_setgroups;
constexpr long setgid_call = SYS_setgid;
constexpr long setuid_call = SYS_setuid;
#endif
long raw_setgroups(const std::vector<gid_t>& groups) noexcept {
  return ::syscall(setgroups_call, groups.size(), groups.data());
}
long raw_setgid(gid_t gid) noexcept { return ::syscall(setgid_call, gid); }
long raw_setuid(uid_t uid) noexcept { return ::syscall(setuid_call, uid); }

// Writes `value` in decimal at `out` and ends the string there. snprintf is not
// async-signal-safe (signal-safety(7)), hence by hand.
void write_decimal(char* out, pid_t value) noexcept {
  char reversed[24];
  int length = 0;
  auto rest = static_cast<std::uint64_t>(value);
  do {
    reversed[length++] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  } while (rest != 0);
  for (int i = 0; i < length; ++i) {
    out[i] = reversed[length - 1 - i];
  }
  out[length] = '\0';
}

// Moves `fd` to the lowest free number ≥ `floor`, close-on-exec; the old number stays open
// (close-on-exec as well, or overwritten by a later dup2).
int move_above(int fd, int floor, ChildSetup& setup) noexcept {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (moved < 0) {
    child_fail(setup, ChildStep::dup2, errno);
  }
  return moved;
}

// Puts `source` at `target` for the program to inherit. dup2 clears FD_CLOEXEC on the new fd,
// but dup2(x, x) does nothing at all, so an fd already in place gets its flag cleared by hand
// (dup(2), protocols §1.2).
void place_fd(int source, int target, ChildStep step, ChildSetup& setup) noexcept {
  const int result = source == target ? ::fcntl(target, F_SETFD, 0) : ::dup2(source, target);
  if (result < 0) {
    child_fail(setup, step, errno);
  }
}

}  // namespace

const char* step_name(std::int32_t step) {
  switch (static_cast<ChildStep>(step)) {
    case ChildStep::unshare: return "unshare";
    case ChildStep::setsid: return "setsid";
    case ChildStep::dup2: return "dup2";
    case ChildStep::stdio: return "stdio";
    case ChildStep::close_range: return "close_range";
    case ChildStep::setrlimit: return "setrlimit";
    case ChildStep::chdir: return "chdir";
    case ChildStep::setgroups: return "setgroups";
    case ChildStep::setgid: return "setgid";
    case ChildStep::setuid: return "setuid";
    case ChildStep::pdeathsig: return "pdeathsig";
    case ChildStep::getppid: return "getppid";
    case ChildStep::sigprocmask: return "sigprocmask";
    case ChildStep::exec: return "exec";
    case ChildStep::cgroup: return "cgroup";
  }
  return "child setup";
}

char* pid_slot_digits(std::vector<std::string>& env, const std::optional<std::size_t>& index,
                      std::string_view prefix) {
  if (!index || *index >= env.size()) {
    return nullptr;
  }
  std::string& slot = env[*index];
  if (!slot.starts_with(prefix) || slot.size() < prefix.size() + pid_slot_width) {
    return nullptr;
  }
  return slot.data() + prefix.size();
}

[[noreturn]] void run_child(ChildSetup& setup) noexcept {
  // Into the worker's own cgroup first, while the fd is still reachable through clusterd's table
  // (a shared child) and before the program can start anything that would be left outside it.
  // "0" is the writer itself (cgroup v2 `cgroup.procs`).
  if (setup.cgroup_procs >= 0 && ::write(setup.cgroup_procs, "0", 1) != 1) {
    child_fail(setup, ChildStep::cgroup, errno);
  }

  // 0. A table of its own before any fd changes: until then every dup2 and close would be
  // clusterd's. CLOSE_RANGE_UNSHARE copies only the numbers below the range it closes, where
  // the spawn put every fd the child needs (spawn_fds.h); a kernel before 5.9 copies it all.
  if (setup.own_fds_below >= 0 &&
      ::close_range(static_cast<unsigned>(setup.own_fds_below), ~0U, CLOSE_RANGE_UNSHARE) != 0 &&
      ::unshare(CLONE_FILES) != 0) {
    child_fail(setup, ChildStep::unshare, errno);
  }

  // 1. Default dispositions: ignored signals (clusterd ignores SIGPIPE) survive execve
  // (signal(7)). glibc refuses to touch its two internal real-time signals (EINVAL); nothing
  // else can fail, so the result is not checked.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigemptyset(&default_action.sa_mask);
  for (int signal = 1; signal < NSIG; ++signal) {
    if (signal != SIGKILL && signal != SIGSTOP) {
      ::sigaction(signal, &default_action, nullptr);
    }
  }

  // 2. Own session and process group, so kill(-pid) reaches the worker and its helpers
  // (protocols §3.5).
  if (::setsid() < 0) {
    child_fail(setup, ChildStep::setsid, errno);
  }

  // 3. fd layout. Every fd still needed below 3+n that is not already where it belongs is
  // first moved above the range, so no dup2 of the layout can overwrite it (protocols §1.2).
  const int range_end = 3 + setup.source_count;
  if (setup.status_pipe >= 0 && setup.status_pipe < range_end) {
    setup.status_pipe = move_above(setup.status_pipe, range_end, setup);
  }
  for (int target = 0; target < 3; ++target) {
    int& source = setup.stdio[target];
    if (source >= 0 && source != target && source < range_end) {
      source = move_above(source, range_end, setup);
    }
  }
  for (int i = 0; i < setup.source_count; ++i) {
    int& source = setup.sources[i];
    if (source < range_end && source != 3 + i) {
      source = move_above(source, range_end, setup);
    }
  }
  for (int target = 0; target < 3; ++target) {
    if (setup.stdio[target] >= 0) {
      place_fd(setup.stdio[target], target, ChildStep::stdio, setup);
    }
  }
  for (int i = 0; i < setup.source_count; ++i) {
    place_fd(setup.sources[i], 3 + i, ChildStep::dup2, setup);
  }

  // 4. Everything above the layout is closed by execve. CLOSE_RANGE_CLOEXEC marks rather than
  // closes, so a forked child's status pipe lives until the exec succeeds (close_range(2),
  // Linux 5.11).
  // Older kernels say ENOSYS or EINVAL: mark them one by one, up to the soft limit the parent
  // read (no /proc/self/fd: opendir allocates).
  if (::close_range(static_cast<unsigned>(range_end), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = range_end; fd < setup.fd_scan_limit; ++fd) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // EBADF for the many unused numbers
    }
  }

  // 5. The soft fd limit clusterd started with: select()-based programs break above 1024
  // (protocols §3.8). Then the working directory.
  if (setup.restore_nofile && ::setrlimit(RLIMIT_NOFILE, &setup.nofile) != 0) {
    child_fail(setup, ChildStep::setrlimit, errno);
  }
  if (setup.directory != nullptr && ::chdir(setup.directory) != 0) {
    child_fail(setup, ChildStep::chdir, errno);
  }

  // 6. Privileges: groups first, then gid, then uid; after setuid nothing else can be changed
  // (protocols §3.9, setgroups(2)). Verified, because a partial drop must not run the worker.
  if (const Credentials* wanted = setup.credentials) {
    if (raw_setgroups(wanted->groups) != 0) {
      child_fail(setup, ChildStep::setgroups, errno);
    }
    if (raw_setgid(wanted->gid) != 0) {
      child_fail(setup, ChildStep::setgid, errno);
    }
    if (::getgid() != wanted->gid || ::getegid() != wanted->gid) {
      child_fail(setup, ChildStep::setgid, EPERM);
    }
    if (raw_setuid(wanted->uid) != 0) {
      child_fail(setup, ChildStep::setuid, errno);
    }
    // A clusterd that is not root changes ids with CAP_SETUID/CAP_SETGID, and setuid() from one
    // non-zero uid to another keeps every capability (capabilities(7)): drop them all (the
    // ambient ones go with the permitted set), so the worker is the plain user it is under a
    // root clusterd, and the check below does not find it able to become root again.
    if (wanted->uid != 0) {
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
      if (::syscall(SYS_capset, &header, none) != 0) {
        child_fail(setup, ChildStep::setuid, errno);
      }
    }
    if (::getuid() != wanted->uid || ::geteuid() != wanted->uid ||
        (wanted->uid != 0 && raw_setuid(0) == 0)) {
      child_fail(setup, ChildStep::setuid, EPERM);
    }
  }

  // 7. Parent-death signal after the id change, which clears it (prctl(2)); then make sure
  // the parent did not die before it was set, since then no signal will ever come.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    child_fail(setup, ChildStep::pdeathsig, errno);
  }
  if (::getppid() != setup.parent_pid) {
    child_fail(setup, ChildStep::getppid, ESRCH);
  }

  // 8. Fill LISTEN_PID in the child: only it knows its pid (protocols §1.2).
  if (setup.listen_pid_digits != nullptr) {
    write_decimal(setup.listen_pid_digits, ::getpid());
  }
  if (setup.watchdog_pid_digits != nullptr) {
    write_decimal(setup.watchdog_pid_digits, ::getpid());
  }

  // 9. Unblock everything last: the mask survives execve, and a worker started with SIGTERM
  // blocked would never see its stop signal (signal(7)). A signal already pending for us
  // (a stop sent during the spawn) is delivered here, with its default action.
  sigset_t empty;
  ::sigemptyset(&empty);
  if (::sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) {
    child_fail(setup, ChildStep::sigprocmask, errno);
  }

  // 10. "Reaching exec", then the program.
  setup.report.reaching_exec = true;
  write_record(setup.status_pipe, reaching_exec_record);
  ::execve(setup.executable, setup.argv, setup.envp);
  child_fail(setup, ChildStep::exec, errno);
}

int clone_entry(void* setup) noexcept { run_child(*static_cast<ChildSetup*>(setup)); }

}  // namespace clusterd
