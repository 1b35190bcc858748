// Starting a child, sharing clusterd's memory until its exec or forked (child_launch.h).
#include "child_launch.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

#include "spawn_fds.h"
#include "pidfd.h"

namespace clusterd {
namespace {

constexpr std::size_t child_stack_size = 256 * 1024;
constexpr std::size_t guard_size = 4096;

// What a shared launch needs, kept for clusterd's life: the stack the child runs on until its
// exec (one serves every launch: clusterd is single-threaded and waits for each exec), with a
// guard page below it, and the low fd block (spawn_fds.h).
struct SharedLaunch {
  void* stack_top = nullptr;
  std::optional<SpawnFds> block;
  std::optional<bool> kernel_can;  // close_range with CLOSE_RANGE_UNSHARE (Linux 5.9), not refused

  bool ready() {
    if (!kernel_can) {
      // An empty range: 0 where close_range and its flag exist and no seccomp filter refuses them.
      kernel_can = ::syscall(SYS_close_range, INT_MAX, INT_MAX, CLOSE_RANGE_UNSHARE) == 0;
    }
    if (*kernel_can && stack_top == nullptr) {
      void* base = ::mmap(nullptr, child_stack_size + guard_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (base != MAP_FAILED && ::mprotect(base, guard_size, PROT_NONE) == 0) {
        stack_top = static_cast<char*>(base) + guard_size + child_stack_size;
      } else if (base != MAP_FAILED) {
        ::munmap(base, child_stack_size + guard_size);
      }
    }
    if (*kernel_can && !block) {
      // 8 numbers hold a worker's stdout, stderr and six listeners; more are added when needed.
      if (auto opened = SpawnFds::open(8)) {
        block = std::move(*opened);
      }
    }
    return *kernel_can && stack_top != nullptr && block;
  }
};

SharedLaunch& shared_launch() {
  static SharedLaunch launch;
  return launch;
}

// Every signal blocked around the clone, as posix_spawn does: no handler of clusterd's may run on
// the child's side of the shared memory before the child has reset the dispositions.
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    ::sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, &previous_);
  }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;
  ~AllSignalsBlocked() { ::sigprocmask(SIG_SETMASK, &previous_, nullptr); }

 private:
  sigset_t previous_{};
};

tl::expected<LaunchedChild, StartFailure> launch_shared(ChildSetup& setup, SharedLaunch& launch,
                                                        std::span<const int> fds, int stdout_fd, int stderr_fd) {
  // The fds the child inherits go onto the low block, so it need copy nothing above it.
  std::vector<int> inherited(fds.begin(), fds.end());
  for (const int output : {stdout_fd, stderr_fd}) {
    if (output >= 0) {
      inherited.push_back(output);
    }
  }
  SpawnFds& block = *launch.block;
  auto staged = block.stage(inherited);
  if (!staged) {
    return tl::make_unexpected(StartFailure{"dup3", staged.error()});
  }
  std::vector<int> sources(staged->begin(), staged->begin() + static_cast<std::ptrdiff_t>(fds.size()));
  auto output = staged->begin() + static_cast<std::ptrdiff_t>(fds.size());
  setup.sources = sources.data();
  setup.source_count = static_cast<int>(sources.size());
  setup.stdio[0] = block.dev_null();
  setup.stdio[1] = stdout_fd >= 0 ? *output++ : -1;
  setup.stdio[2] = stderr_fd >= 0 ? *output++ : -1;
  setup.own_fds_below = block.end();
  // After the unshare the child holds the numbers below the block's end and the few it moves
  // above its layout: a fallback scan (before Linux 5.11) need go no further.
  setup.fd_scan_limit = std::max(block.end(), 3 + setup.source_count) + setup.source_count + 4;

  LaunchedChild child;
  int pidfd = -1;
  {
    const AllSignalsBlocked blocked;
    const int flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD;
    child.pid = ::clone(clone_entry, launch.stack_top, flags | CLONE_PIDFD, &setup, &pidfd);
    if (child.pid < 0 && errno == EINVAL) {  // before Linux 5.2
      pidfd = -1;
      child.pid = ::clone(clone_entry, launch.stack_top, flags, &setup);
    }
  }
  const int error = errno;
  block.unstage();  // the child has its own table (or is gone): the duplicates are done with
  if (child.pid < 0) {
    return tl::make_unexpected(StartFailure{"clone", error});
  }
  // clone + pidfd_open is race-free: the pid cannot be reused before we reap it (pidfd_open(2)).
  child.pidfd = pidfd >= 0 ? Fd(pidfd) : open_pidfd(child.pid);
  // The child has exec'd or ended: its report is final.
  const ChildReport& report = setup.report;
  if (report.failed) {
    child.exec_state = ExecState::failed;
    child.exec_failure = StartFailure{step_name(report.step), report.error};
  } else {
    child.exec_state = report.reaching_exec ? ExecState::succeeded : ExecState::died_before_exec;
  }
  return child;
}

tl::expected<LaunchedChild, StartFailure> launch_forked(ChildSetup& setup, std::span<const int> fds, int stdout_fd,
                                                        int stderr_fd) {
  std::vector<int> sources(fds.begin(), fds.end());
  setup.sources = sources.data();
  setup.source_count = static_cast<int>(sources.size());
  // stdin is /dev/null, opened here: a failure is clearer reported from the parent.
  const Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) {
    return tl::make_unexpected(StartFailure{"open /dev/null", errno});
  }
  setup.stdio[0] = dev_null.get();
  setup.stdio[1] = stdout_fd;
  setup.stdio[2] = stderr_fd;
  setup.own_fds_below = -1;

  int pipe_ends[2] = {-1, -1};
  if (::pipe2(pipe_ends, O_CLOEXEC) != 0) {
    return tl::make_unexpected(StartFailure{"pipe2", errno});
  }
  LaunchedChild child;
  child.exec_status = Fd(pipe_ends[0]);
  Fd status_write(pipe_ends[1]);
  // The read end is an epoll source of a single-threaded loop: a blocking read would stall
  // every other worker until this one execs (protocols §3.3).
  const int flags = ::fcntl(child.exec_status.get(), F_GETFL);
  if (flags < 0 || ::fcntl(child.exec_status.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return tl::make_unexpected(StartFailure{"fcntl", errno});
  }
  setup.status_pipe = status_write.get();

  child.pid = ::fork();
  if (child.pid < 0) {
    return tl::make_unexpected(StartFailure{"fork", errno});
  }
  if (child.pid == 0) {
    run_child(setup);
  }
  // Only the child may hold the write end, or EOF would never come (protocols §3.3).
  status_write.reset();
  child.pidfd = open_pidfd(child.pid);
  return child;
}

}  // namespace

void prepare_launches() { shared_launch().ready(); }

tl::expected<LaunchedChild, StartFailure> launch_child(ChildSetup& setup, std::span<const int> fds, int stdout_fd,
                                                       int stderr_fd, bool may_share) {
  SharedLaunch& launch = shared_launch();
  if (may_share && setup.credentials == nullptr && launch.ready()) {
    return launch_shared(setup, launch, fds, stdout_fd, stderr_fd);
  }
  return launch_forked(setup, fds, stdout_fd, stderr_fd);
}

}  // namespace clusterd
