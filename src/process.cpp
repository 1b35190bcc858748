// Starts a worker (fork, the child's setup in the order of protocols §3.2, execve) and owns the
// child until the daemon has reaped it.
#include "process.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/core.h>

namespace clusterd {

namespace {

// The child's setup steps, as numbers on the exec-status pipe and as names in StartFailure.
enum class ChildStep : std::int32_t {
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
};

const char* step_name(std::int32_t step) {
  switch (static_cast<ChildStep>(step)) {
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
  }
  return "child setup";
}

// What a failing child writes: one fixed-size record. Writes of at most PIPE_BUF bytes to a
// pipe are atomic (pipe(7)), so the parent reads all of it or nothing.
struct ExecStatusRecord {
  std::int32_t step = 0;
  std::int32_t error = 0;
};
static_assert(sizeof(ExecStatusRecord) <= PIPE_BUF);

// The soft RLIMIT_NOFILE clusterd started with. Process-wide, like the limit itself; written
// once at start by raise_nofile_limit(), read by every spawn.
std::optional<rlim_t> original_nofile_soft;

// Upper bound of the fallback loop that marks fds close-on-exec one by one when close_range is
// missing: a huge hard limit would otherwise cost millions of fcntl calls per spawn.
constexpr rlim_t fallback_fd_scan_limit = 1 << 20;

// Everything the child needs, built by the parent before fork: between fork and execve the
// child may only make async-signal-safe calls (signal-safety(7)) — no allocation, no locks,
// no logging, no NSS (protocols §3.1). The child writes only into this struct's own copies.
struct ChildSetup {
  const char* executable = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* listen_pid_digits = nullptr;    // inside envp's LISTEN_PID= slot; nullptr: no slot
  char* watchdog_pid_digits = nullptr;  // likewise WATCHDOG_PID=
  int* sources = nullptr;             // listener fds, laid out at 3, 4, …
  int source_count = 0;
  int stdio[3] = {-1, -1, -1};  // what goes to 0, 1, 2; -1 leaves it alone
  int status_pipe = -1;
  bool restore_nofile = false;
  rlimit nofile{};
  int fd_scan_limit = 0;
  const char* directory = nullptr;  // nullptr: keep clusterd's
  const Credentials* credentials = nullptr;
  pid_t parent_pid = 0;
};

[[noreturn]] void child_fail(int status_pipe, ChildStep step, int error) noexcept {
  const ExecStatusRecord record{static_cast<std::int32_t>(step), error};
  while (::write(status_pipe, &record, sizeof record) < 0 && errno == EINTR) {
  }
  // _exit, not exit: atexit handlers and stdio buffers belong to clusterd, not to this child.
  ::_exit(127);
}

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

// Where the child writes its pid into the reserved "PREFIX" + spaces entry `index` of `env`;
// nullptr when there is no such entry.
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

// Moves `fd` to the lowest free number ≥ `floor`, close-on-exec; the old number stays open
// (close-on-exec as well, or overwritten by a later dup2).
int move_above(int fd, int floor, int status_pipe) noexcept {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (moved < 0) {
    child_fail(status_pipe, ChildStep::dup2, errno);
  }
  return moved;
}

// Puts `source` at `target` for the program to inherit. dup2 clears FD_CLOEXEC on the new fd,
// but dup2(x, x) does nothing at all, so an fd already in place gets its flag cleared by hand
// (dup(2), protocols §1.2).
void place_fd(int source, int target, ChildStep step, int status_pipe) noexcept {
  const int result = source == target ? ::fcntl(target, F_SETFD, 0) : ::dup2(source, target);
  if (result < 0) {
    child_fail(status_pipe, step, errno);
  }
}

[[noreturn]] void run_child(ChildSetup& setup) noexcept {
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
    child_fail(setup.status_pipe, ChildStep::setsid, errno);
  }

  // 3. fd layout. Every fd still needed below 3+n that is not already where it belongs is
  // first moved above the range, so no dup2 of the layout can overwrite it (protocols §1.2).
  const int range_end = 3 + setup.source_count;
  if (setup.status_pipe < range_end) {
    setup.status_pipe = move_above(setup.status_pipe, range_end, setup.status_pipe);
  }
  for (int target = 0; target < 3; ++target) {
    int& source = setup.stdio[target];
    if (source >= 0 && source != target && source < range_end) {
      source = move_above(source, range_end, setup.status_pipe);
    }
  }
  for (int i = 0; i < setup.source_count; ++i) {
    int& source = setup.sources[i];
    if (source < range_end && source != 3 + i) {
      source = move_above(source, range_end, setup.status_pipe);
    }
  }
  for (int target = 0; target < 3; ++target) {
    if (setup.stdio[target] >= 0) {
      place_fd(setup.stdio[target], target, ChildStep::stdio, setup.status_pipe);
    }
  }
  for (int i = 0; i < setup.source_count; ++i) {
    place_fd(setup.sources[i], 3 + i, ChildStep::dup2, setup.status_pipe);
  }

  // 4. Everything above the layout is closed by execve. CLOSE_RANGE_CLOEXEC marks rather than
  // closes, so the status pipe lives until the exec succeeds (close_range(2), Linux 5.11).
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
    child_fail(setup.status_pipe, ChildStep::setrlimit, errno);
  }
  if (setup.directory != nullptr && ::chdir(setup.directory) != 0) {
    child_fail(setup.status_pipe, ChildStep::chdir, errno);
  }

  // 6. Privileges: groups first, then gid, then uid; after setuid nothing else can be changed
  // (protocols §3.9, setgroups(2)). Verified, because a partial drop must not run the worker.
  if (const Credentials* wanted = setup.credentials) {
    if (::setgroups(wanted->groups.size(), wanted->groups.data()) != 0) {
      child_fail(setup.status_pipe, ChildStep::setgroups, errno);
    }
    if (::setgid(wanted->gid) != 0) {
      child_fail(setup.status_pipe, ChildStep::setgid, errno);
    }
    if (::getgid() != wanted->gid || ::getegid() != wanted->gid) {
      child_fail(setup.status_pipe, ChildStep::setgid, EPERM);
    }
    if (::setuid(wanted->uid) != 0) {
      child_fail(setup.status_pipe, ChildStep::setuid, errno);
    }
    if (::getuid() != wanted->uid || ::geteuid() != wanted->uid ||
        (wanted->uid != 0 && ::setuid(0) == 0)) {
      child_fail(setup.status_pipe, ChildStep::setuid, EPERM);
    }
  }

  // 7. Parent-death signal after the id change, which clears it (prctl(2)); then make sure
  // the parent did not die before it was set, since then no signal will ever come.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    child_fail(setup.status_pipe, ChildStep::pdeathsig, errno);
  }
  if (::getppid() != setup.parent_pid) {
    child_fail(setup.status_pipe, ChildStep::getppid, ESRCH);
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
    child_fail(setup.status_pipe, ChildStep::sigprocmask, errno);
  }

  // 10. "Reaching exec": without this record, end of file on the pipe would also come from a
  // child that a signal killed during its setup, which would pass for a running program.
  const ExecStatusRecord reaching_exec{static_cast<std::int32_t>(ChildStep::exec), 0};
  while (::write(setup.status_pipe, &reaching_exec, sizeof reaching_exec) < 0 && errno == EINTR) {
  }
  ::execve(setup.executable, setup.argv, setup.envp);
  child_fail(setup.status_pipe, ChildStep::exec, errno);
}

// glibc 2.36's <sys/pidfd.h> declares its wrappers without extern "C" (fixed in 2.37), so a
// C++ program cannot link against them; the raw system calls do the same (pidfd_open(2),
// pidfd_send_signal(2)).
int open_pidfd(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)); }

int send_signal_to_pidfd(int pidfd, int signal) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0U));
}

}  // namespace

tl::expected<Process, StartFailure> Process::spawn(const SpawnPlan& plan,
                                                  const std::optional<Credentials>& credentials) {
  // Copies the child may write into (the LISTEN_PID slot, the moved source fds); the plan
  // stays untouched for the next spawn.
  std::vector<std::string> env = plan.env;
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& entry : env) {
    envp.push_back(entry.data());
  }
  envp.push_back(nullptr);
  // execve(2) takes char* const[] for historical reasons; it does not write into the strings.
  std::vector<char*> argv;
  argv.reserve(plan.argv.size() + 1);
  for (const auto& argument : plan.argv) {
    argv.push_back(const_cast<char*>(argument.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<int> sources = plan.fds;

  ChildSetup setup;
  setup.executable = plan.executable.c_str();
  setup.argv = argv.data();
  setup.envp = envp.data();
  setup.listen_pid_digits = pid_slot_digits(env, plan.listen_pid_index, "LISTEN_PID=");
  setup.watchdog_pid_digits = pid_slot_digits(env, plan.watchdog_pid_index, "WATCHDOG_PID=");
  setup.sources = sources.data();
  setup.source_count = static_cast<int>(sources.size());
  setup.directory = plan.directory.empty() ? nullptr : plan.directory.c_str();
  setup.credentials = credentials ? &*credentials : nullptr;

  // stdin is /dev/null, opened here: open(2) in the child would be fine, but a failure is
  // clearer reported from the parent, before anything was forked.
  Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) {
    return tl::make_unexpected(StartFailure{"open /dev/null", errno});
  }
  setup.stdio[0] = dev_null.get();
  setup.stdio[1] = plan.stdout_fd;
  setup.stdio[2] = plan.stderr_fd;

  int pipe_ends[2] = {-1, -1};
  if (::pipe2(pipe_ends, O_CLOEXEC) != 0) {
    return tl::make_unexpected(StartFailure{"pipe2", errno});
  }
  Fd status_read(pipe_ends[0]);
  Fd status_write(pipe_ends[1]);
  // The read end is an epoll source of a single-threaded loop: a blocking read would stall
  // every other worker until this one execs (protocols §3.3).
  const int flags = ::fcntl(status_read.get(), F_GETFL);
  if (flags < 0 || ::fcntl(status_read.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return tl::make_unexpected(StartFailure{"fcntl", errno});
  }
  setup.status_pipe = status_write.get();

  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    return tl::make_unexpected(StartFailure{"getrlimit", errno});
  }
  setup.fd_scan_limit = static_cast<int>(std::min(nofile.rlim_cur, fallback_fd_scan_limit));
  if (original_nofile_soft && *original_nofile_soft != nofile.rlim_cur) {
    setup.restore_nofile = true;
    setup.nofile.rlim_cur = std::min(*original_nofile_soft, nofile.rlim_max);
    setup.nofile.rlim_max = nofile.rlim_max;
  }
  setup.parent_pid = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    return tl::make_unexpected(StartFailure{"fork", errno});
  }
  if (pid == 0) {
    run_child(setup);
  }

  // Only the child may hold the write end, or EOF would never come (protocols §3.3).
  status_write.reset();
  // fork + pidfd_open is race-free: the pid cannot be reused before we reap it
  // (pidfd_open(2)). The pidfd is a convenience, so any failure (ENOSYS before Linux 5.3,
  // EMFILE) leaves the Process without one instead of abandoning a child already running.
  Fd pidfd(open_pidfd(pid));
  return Process(pid, std::move(pidfd), std::move(status_read));
}

Process::Process(pid_t pid, Fd pidfd, Fd exec_status)
    : pid_(pid), pidfd_(std::move(pidfd)), exec_status_(std::move(exec_status)) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      exec_status_(std::move(other.exec_status_)),
      exec_state_(other.exec_state_),
      reaching_exec_(other.reaching_exec_),
      exec_failure_(std::move(other.exec_failure_)),
      reaped_(other.reaped_) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process old(std::move(*this));  // a child this handle still owns is killed and reaped
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    exec_status_ = std::move(other.exec_status_);
    exec_state_ = other.exec_state_;
    reaching_exec_ = other.reaching_exec_;
    exec_failure_ = std::move(other.exec_failure_);
    reaped_ = other.reaped_;
  }
  return *this;
}

Process::~Process() {
  if (pid_ <= 0 || reaped_) {
    return;
  }
  // A forgotten child would keep the listeners open and run unsupervised (style §3). Its group
  // and, in case it had not reached setsid() yet, the child itself.
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  retry_on_eintr([this] { return ::waitpid(pid_, nullptr, 0); });
  // Formatted into a fixed buffer: a destructor must not throw, not even bad_alloc.
  char line[128];
  const auto end = fmt::format_to_n(line, sizeof line - 1,
                                    "clusterd: bug: worker pid={} was dropped unreaped; its "
                                    "process group was killed\n",
                                    pid_);
  *end.out = '\0';
  std::fputs(line, stderr);
}

ExecState Process::read_exec_status() {
  while (exec_state_ == ExecState::pending && exec_status_) {
    ExecStatusRecord record;
    const ssize_t got = retry_on_eintr([&] { return ::read(exec_status_.get(), &record, sizeof record); });
    if (got < 0) {
      if (errno == EAGAIN) {
        return exec_state_;
      }
      exec_failure_ = StartFailure{"read exec status", errno};
      exec_state_ = ExecState::failed;
    } else if (got == 0) {
      // The kernel closed the child's close-on-exec write end: execve succeeded if the child said
      // it was reaching it; otherwise it died during its setup (killed by a signal, say).
      exec_state_ = reaching_exec_ ? ExecState::succeeded : ExecState::died_before_exec;
    } else if (static_cast<std::size_t>(got) != sizeof record) {
      // Cannot happen with atomic writes of whole records; reported rather than trusted.
      exec_failure_ = StartFailure{"read exec status", EPROTO};
      exec_state_ = ExecState::failed;
    } else if (record.step == static_cast<std::int32_t>(ChildStep::exec) && record.error == 0) {
      reaching_exec_ = true;  // read on: a failed execve follows with its own record
    } else {
      exec_failure_ = StartFailure{step_name(record.step), record.error};
      exec_state_ = ExecState::failed;
    }
  }
  return exec_state_;
}

void Process::signal_group(int signal) const noexcept {
  if (pid_ <= 0 || reaped_) {
    return;
  }
  // ESRCH: no group with that id yet, the child is still before setsid(). It is then alone in
  // clusterd's group, so the leader gets it; the group's SIGKILL after its exit covers the rest.
  if (::kill(-pid_, signal) != 0 && errno == ESRCH) {
    signal_leader(signal);
  }
}

void Process::signal_leader(int signal) const noexcept {
  if (pid_ <= 0 || reaped_) {
    return;
  }
  if (pidfd_ && send_signal_to_pidfd(pidfd_.get(), signal) == 0) {
    return;
  }
  // No pidfd: kill() by pid is still safe, because the pid cannot be reused before it is reaped.
  ::kill(pid_, signal);
}

NofileLimits raise_nofile_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    throw std::system_error(errno, std::generic_category(), "getrlimit RLIMIT_NOFILE");
  }
  if (!original_nofile_soft) {
    original_nofile_soft = limit.rlim_cur;
  }
  if (limit.rlim_cur != limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      throw std::system_error(errno, std::generic_category(), "setrlimit RLIMIT_NOFILE");
    }
  }
  return NofileLimits{*original_nofile_soft, limit.rlim_cur};
}

}  // namespace clusterd
