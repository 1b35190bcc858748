// Starts a worker (clone, the child's setup in the order of protocols §3.2, execve) and owns the
// child until the daemon has reaped it.
#include "process.h"

#include <dirent.h>
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
#include "child_launch.h"
#include "pidfd.h"
#include "text_file.h"

namespace clusterd {

namespace {

// The soft RLIMIT_NOFILE clusterd started with. Process-wide, like the limit itself; written
// once at start by raise_nofile_limit(), read by every spawn.
std::optional<rlim_t> original_nofile_soft;


// waitid(P_PIDFD) (Linux 5.4) works: asked once with a number that is no fd, which a kernel
// that knows P_PIDFD refuses with EBADF and an older one with EINVAL.
bool pidfd_waits_work() {
  static const bool work = [] {
    siginfo_t info{};
    return ::waitid(P_PIDFD, static_cast<id_t>(INT_MAX), &info, WEXITED | WNOHANG) != 0 && errno == EBADF;
  }();
  return work;
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

  ChildSetup setup;
  setup.executable = plan.executable.c_str();
  setup.argv = argv.data();
  setup.envp = envp.data();
  setup.listen_pid_digits = pid_slot_digits(env, plan.listen_pid_index, "LISTEN_PID=");
  setup.watchdog_pid_digits = pid_slot_digits(env, plan.watchdog_pid_index, "WATCHDOG_PID=");
  setup.directory = plan.directory.empty() ? nullptr : plan.directory.c_str();
  setup.credentials = credentials ? &*credentials : nullptr;

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
  setup.cgroup_procs = plan.cgroup_procs_fd;

  auto child = launch_child(setup, plan.fds, plan.stdout_fd, plan.stderr_fd, !plan.may_hang_before_exec);
  if (!child) {
    return tl::make_unexpected(child.error());
  }
  Process process(child->pid, std::move(child->pidfd), std::move(child->exec_status));
  process.reaped_through_pidfd_ = process.pidfd_ && pidfd_waits_work();
  process.exec_state_ = child->exec_state;
  process.exec_failure_ = std::move(child->exec_failure);
  return process;
}

tl::expected<Process, int> Process::adopt(pid_t pid) {
  Fd pidfd = open_pidfd(pid);
  if (!pidfd) {
    return tl::make_unexpected(errno);
  }
  siginfo_t info{};
  // A zombie of ours (exited meanwhile) is still ours to reap; anything else is no child.
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return tl::make_unexpected(errno);
  }
  Process process(pid, std::move(pidfd), Fd());
  process.reaped_through_pidfd_ = pidfd_waits_work();
  process.exec_state_ = ExecState::succeeded;
  return process;
}

Process::Process(pid_t pid, Fd pidfd, Fd exec_status)
    : pid_(pid), pidfd_(std::move(pidfd)), exec_status_(std::move(exec_status)) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      reaped_through_pidfd_(other.reaped_through_pidfd_),
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
    reaped_through_pidfd_ = other.reaped_through_pidfd_;
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
    } else if (record.step == reaching_exec_record.step && record.error == reaching_exec_record.error) {
      reaching_exec_ = true;  // read on: a failed execve follows with its own record
    } else {
      exec_failure_ = StartFailure{step_name(record.step), record.error};
      exec_state_ = ExecState::failed;
    }
  }
  return exec_state_;
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

void restore_nofile_limit() noexcept {
  rlimit limit{};
  if (original_nofile_soft && ::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = std::min(*original_nofile_soft, limit.rlim_max);
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
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
