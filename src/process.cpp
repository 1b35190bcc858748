// Starts a worker (clone, the child's setup in the order of protocols §3.2, execve) and owns the
// child until the daemon has reaped it.
#include "process.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/core.h>

#include "child_setup.h"
#include "spawn_fds.h"
#include "text_file.h"

namespace clusterd {

namespace {

// The soft RLIMIT_NOFILE clusterd started with. Process-wide, like the limit itself; written
// once at start by raise_nofile_limit(), read by every spawn.
std::optional<rlim_t> original_nofile_soft;

// glibc 2.36's <sys/pidfd.h> declares its wrappers without extern "C" (fixed in 2.37), so a
// C++ program cannot link against them; the raw system calls do the same (pidfd_open(2),
// pidfd_send_signal(2)).
int open_pidfd(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)); }

int send_signal_to_pidfd(int pidfd, int signal) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0U));
}

// The stack the child runs on between clone and execve. One serves every spawn: clusterd is
// single-threaded and waits for each child's exec (CLONE_VFORK). Mapped on the first spawn and
// kept, with a guard page below it so an overflow faults instead of writing into the heap.
constexpr std::size_t child_stack_size = 256 * 1024;
constexpr std::size_t guard_size = 4096;

void* child_stack_top() {
  static void* top = [] () -> void* {
    void* base = ::mmap(nullptr, child_stack_size + guard_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
      return nullptr;
    }
    ::mprotect(base, guard_size, PROT_NONE);
    return static_cast<char*>(base) + guard_size + child_stack_size;
  }();
  return top;
}

// The low fds a spawn stages its child's fds on (spawn_fds.h). Opened by the first spawn, while
// the fd table is still small: 8 numbers hold a worker's stdout, stderr and six listeners.
SpawnFds* spawn_fds() {
  static std::optional<SpawnFds> block = [] () -> std::optional<SpawnFds> {
    auto opened = SpawnFds::open(8);
    return opened ? std::optional<SpawnFds>(std::move(*opened)) : std::nullopt;
  }();
  return block ? &*block : nullptr;
}

// waitid(P_PIDFD) (Linux 5.4) works: asked once with a number that is no fd, which a kernel
// that knows P_PIDFD refuses with EBADF and an older one with EINVAL.
bool pidfd_waits_work() {
  static const bool work = [] {
    siginfo_t info{};
    return ::waitid(P_PIDFD, static_cast<id_t>(INT_MAX), &info, WEXITED | WNOHANG) != 0 && errno == EBADF;
  }();
  return work;
}

struct Cloned {
  pid_t pid = -1;
  Fd pidfd;
};

// clone(CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD) with every signal blocked, as
// posix_spawn does: no handler of clusterd's may run on the child's side of the shared memory
// before the child has reset the dispositions. The pidfd comes with the clone (Linux 5.2) or,
// before that, from pidfd_open. The child's exit raises SIGCHLD as any child's (an exec resets
// the exit signal to SIGCHLD whatever the clone asked).
tl::expected<Cloned, StartFailure> clone_child(ChildSetup& setup, void* stack) {
  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &previous);
  const int flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD;
  Cloned child;
  int pidfd = -1;
  child.pid = ::clone(clone_entry, stack, flags | CLONE_PIDFD, &setup, &pidfd);
  if (child.pid < 0 && errno == EINVAL) {
    pidfd = -1;
    child.pid = ::clone(clone_entry, stack, flags, &setup);
  }
  const int error = errno;
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (child.pid < 0) {
    return tl::make_unexpected(StartFailure{"clone", error});
  }
  // clone + pidfd_open is race-free: the pid cannot be reused before we reap it (pidfd_open(2)).
  child.pidfd = Fd(pidfd >= 0 ? pidfd : open_pidfd(child.pid));
  return child;
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

  SpawnFds* block = spawn_fds();
  void* stack = child_stack_top();
  if (block == nullptr || stack == nullptr) {
    return tl::make_unexpected(StartFailure{"spawn setup", block == nullptr ? EMFILE : ENOMEM});
  }
  // The fds the child inherits go onto the low block, so it need copy nothing above it.
  std::vector<int> inherited = plan.fds;
  for (const int output : {plan.stdout_fd, plan.stderr_fd}) {
    if (output >= 0) {
      inherited.push_back(output);
    }
  }
  auto staged = block->stage(inherited);
  if (!staged) {
    return tl::make_unexpected(StartFailure{"dup3", staged.error()});
  }
  std::vector<int> sources(staged->begin(), staged->begin() + static_cast<std::ptrdiff_t>(plan.fds.size()));
  auto output = staged->begin() + static_cast<std::ptrdiff_t>(plan.fds.size());

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
  setup.stdio[0] = block->dev_null();
  setup.stdio[1] = plan.stdout_fd >= 0 ? *output++ : -1;
  setup.stdio[2] = plan.stderr_fd >= 0 ? *output++ : -1;
  setup.own_fds_below = block->end();

  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    block->unstage();
    return tl::make_unexpected(StartFailure{"getrlimit", errno});
  }
  setup.fd_scan_limit = static_cast<int>(std::min(nofile.rlim_cur, fallback_fd_scan_limit));
  if (original_nofile_soft && *original_nofile_soft != nofile.rlim_cur) {
    setup.restore_nofile = true;
    setup.nofile.rlim_cur = std::min(*original_nofile_soft, nofile.rlim_max);
    setup.nofile.rlim_max = nofile.rlim_max;
  }
  setup.parent_pid = ::getpid();

  auto child = clone_child(setup, stack);
  block->unstage();  // the child has its own table (or is gone): the duplicates are done with
  if (!child) {
    return tl::make_unexpected(child.error());
  }
  // The child has exec'd or ended: its report is final.
  const ChildReport& report = setup.report;
  const bool waitable_pidfd = child->pidfd && pidfd_waits_work();
  Process process(child->pid, std::move(child->pidfd), waitable_pidfd);
  if (report.failed) {
    process.exec_state_ = ExecState::failed;
    process.exec_failure_ = StartFailure{step_name(report.step), report.error};
  } else if (!report.reaching_exec) {
    process.exec_state_ = ExecState::died_before_exec;
  }
  return process;
}

Process::Process(pid_t pid, Fd pidfd, bool reaped_through_pidfd)
    : pid_(pid), pidfd_(std::move(pidfd)), reaped_through_pidfd_(reaped_through_pidfd) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      reaped_through_pidfd_(other.reaped_through_pidfd_),
      exec_state_(other.exec_state_),
      exec_failure_(std::move(other.exec_failure_)),
      reaped_(other.reaped_) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process old(std::move(*this));  // a child this handle still owns is killed and reaped
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    reaped_through_pidfd_ = other.reaped_through_pidfd_;
    exec_state_ = other.exec_state_;
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
  retry_on_eintr([this] { return ::waitpid(pid_, nullptr, __WALL); });
  // Formatted into a fixed buffer: a destructor must not throw, not even bad_alloc.
  char line[128];
  const auto end = fmt::format_to_n(line, sizeof line - 1,
                                    "clusterd: bug: worker pid={} was dropped unreaped; its "
                                    "process group was killed\n",
                                    pid_);
  *end.out = '\0';
  std::fputs(line, stderr);
}

std::optional<siginfo_t> Process::exited() const {
  siginfo_t info{};
  if (reaped_ || !reaped_through_pidfd_ ||
      retry_on_eintr([&] {
        return ::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG | WNOWAIT | __WALL);
      }) != 0 ||
      info.si_pid == 0) {
    return std::nullopt;
  }
  return info;
}

void Process::reap() noexcept {
  if (reaped_) {
    return;
  }
  siginfo_t info{};
  if (reaped_through_pidfd_) {
    retry_on_eintr([&] { return ::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | __WALL); });
  } else {
    retry_on_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED); });
  }
  reaped_ = true;
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

std::vector<pid_t> parse_pid_list(std::string_view text) {
  std::vector<pid_t> pids;
  pid_t pid = 0;
  bool in_number = false;
  for (const char c : text) {
    if (c >= '0' && c <= '9') {
      pid = pid * 10 + (c - '0');
      in_number = true;
      continue;
    }
    if (in_number && pid > 0) {
      pids.push_back(pid);
    }
    pid = 0;
    in_number = false;
  }
  if (in_number && pid > 0) {
    pids.push_back(pid);
  }
  return pids;
}

namespace {

// The fallback for a kernel without /proc/PID/task/TID/children: every process's parent pid.
// The parent field comes after the command name, which may hold spaces and parentheses, so it
// is read after the last ')' (proc(5)).
std::vector<pid_t> children_from_every_stat(pid_t self) {
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return children;
  }
  while (const dirent* entry = ::readdir(proc)) {
    const auto pids = parse_pid_list(entry->d_name);
    if (pids.size() != 1 || std::to_string(pids[0]) != entry->d_name) {
      continue;
    }
    const auto stat = read_text_file("/proc/" + std::string(entry->d_name) + "/stat");
    const std::size_t close = stat ? stat->rfind(')') : std::string::npos;
    if (close == std::string::npos) {
      continue;  // gone meanwhile
    }
    // ") S PPID ...": the state, then the parent.
    const std::string_view rest = std::string_view(*stat).substr(close + 1);
    const std::size_t state = rest.find_first_not_of(' ');
    const std::size_t parent = state == std::string_view::npos ? state : rest.find(' ', state);
    if (parent == std::string_view::npos) {
      continue;
    }
    const auto parent_pid = parse_pid_list(rest.substr(parent + 1, rest.find(' ', parent + 1) - parent - 1));
    if (parent_pid.size() == 1 && parent_pid[0] == self) {
      children.push_back(pids[0]);
    }
  }
  ::closedir(proc);
  return children;
}

// The children listed in `process`/task/*/children ("/proc/self", "/proc/123"). nullopt: no
// task directory; `listed` false: none of its children files could be read.
struct TaskChildren {
  bool listed = false;
  std::vector<pid_t> pids;
};
std::optional<TaskChildren> task_children(const std::string& process) {
  const std::string task_directory = process + "/task";
  const std::unique_ptr<DIR, int (*)(DIR*)> tasks(::opendir(task_directory.c_str()), ::closedir);
  if (!tasks) {
    return std::nullopt;
  }
  TaskChildren children;
  while (const dirent* entry = ::readdir(tasks.get())) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    const auto text = read_text_file(task_directory + "/" + entry->d_name + "/children");
    if (!text) {
      continue;
    }
    children.listed = true;
    for (const pid_t pid : parse_pid_list(*text)) {
      children.pids.push_back(pid);
    }
  }
  return children;
}

}  // namespace

std::optional<std::vector<pid_t>> children_of(pid_t pid) {
  auto children = task_children("/proc/" + std::to_string(pid));
  return children && children->listed ? std::optional(std::move(children->pids)) : std::nullopt;
}

std::optional<std::vector<pid_t>> list_children() {
  const pid_t self = ::getpid();
  std::array<char, 32> link{};
  const ssize_t length = ::readlink("/proc/self", link.data(), link.size() - 1);
  if (length <= 0 || std::string_view(link.data(), static_cast<std::size_t>(length)) != std::to_string(self)) {
    return std::nullopt;
  }
  auto children = task_children("/proc/self");
  if (!children) {
    return std::nullopt;
  }
  return children->listed ? std::move(children->pids) : children_from_every_stat(self);
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
