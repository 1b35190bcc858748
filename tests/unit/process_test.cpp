// Real children: fork, the child's setup (fd layout, signals, group, ids, LISTEN_PID), the
// exec-status pipe, the handle's cleanup, and finding the program.
#include "process.h"
#include "executable_path.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;

// Every wait in these tests is on a condition; this only bounds a broken one.
constexpr auto patience = 10s;

std::string path_variable() {
  const char* path = std::getenv("PATH");
  return path != nullptr && *path != '\0' ? path : "/usr/bin:/bin";
}

std::string shell_path() {
  auto found = resolve_executable("sh", "", path_variable());
  return found ? *found : "/bin/sh";
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
}

bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, POLLIN, 0};
    const int ready = ::poll(&entry, 1, remaining_ms(deadline));
    if (ready > 0) {
      return true;
    }
    if (ready == 0 || errno != EINTR) {
      return false;
    }
  }
}

// Reads until EOF, or fails the test at the deadline.
std::string read_to_eof(int fd) {
  const auto deadline = Clock::now() + patience;
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got > 0) {
      text.append(buffer, static_cast<std::size_t>(got));
    } else if (got == 0) {
      return text;
    } else if (errno == EAGAIN) {
      if (!wait_readable(fd, deadline)) {
        ADD_FAILURE() << "no EOF within the deadline; read so far: " << text;
        return text;
      }
    } else if (errno != EINTR) {
      ADD_FAILURE() << "read: " << std::strerror(errno);
      return text;
    }
  }
}

// Reads one line (without the newline), waiting at most `patience`.
std::string read_line(int fd) {
  const auto deadline = Clock::now() + patience;
  std::string line;
  char c = 0;
  for (;;) {
    const ssize_t got = ::read(fd, &c, 1);
    if (got == 1) {
      if (c == '\n') {
        return line;
      }
      line += c;
    } else if (got == 0) {
      return line;
    } else if (errno == EAGAIN) {
      if (!wait_readable(fd, deadline)) {
        ADD_FAILURE() << "no line within the deadline";
        return line;
      }
    } else if (errno != EINTR) {
      return line;
    }
  }
}

// Reaps the child (waiting on its pidfd with a deadline) and returns its wait status.
int wait_exit(Process& process) {
  EXPECT_TRUE(wait_readable(process.pidfd(), Clock::now() + patience)) << "child still running";
  const std::optional<siginfo_t> exited = process.exited();
  process.reap();
  if (!exited) {
    ADD_FAILURE() << "no exit seen through the pidfd";
    return -1;
  }
  return exited->si_code == CLD_EXITED ? (exited->si_status << 8) : exited->si_status;
}

struct Pipe {
  Fd read;
  Fd write;
};

// A pipe whose ends sit at 100 or above, so the low numbers stay free for layout tests. The
// read end is non-blocking for the test's own reads; a pipe a child reads from must not be
// (the flag belongs to the open file, which the child shares).
Pipe high_pipe(bool nonblocking_read = true) {
  int ends[2] = {-1, -1};
  EXPECT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  Pipe pipe{Fd(::fcntl(ends[0], F_DUPFD_CLOEXEC, 100)), Fd(::fcntl(ends[1], F_DUPFD_CLOEXEC, 100))};
  ::close(ends[0]);
  ::close(ends[1]);
  if (nonblocking_read) {
    const int flags = ::fcntl(pipe.read.get(), F_GETFL);
    ::fcntl(pipe.read.get(), F_SETFL, flags | O_NONBLOCK);
  }
  return pipe;
}

bool fd_is_free(int fd) { return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF; }

// Frees fds first..last for a test whose scenario needs them, whatever the test runner left open
// there (ctest and gtest_discover_tests do), and puts each one back, with its close-on-exec
// flag, when it goes out of scope. Declare it before anything the test opens: all of that must
// be closed again before this restores the range, which it checks.
class FreedFdRange {
 public:
  FreedFdRange(int first, int last) {
    for (int fd = first; fd <= last; ++fd) {
      const int flags = ::fcntl(fd, F_GETFD);
      if (flags == -1) {
        continue;
      }
      Fd saved(::fcntl(fd, F_DUPFD_CLOEXEC, 200));
      if (!saved) {
        ADD_FAILURE() << "cannot move fd " << fd << " out of the way: " << std::strerror(errno);
        continue;
      }
      ::close(fd);
      moved_.push_back({fd, flags, std::move(saved)});
    }
  }
  FreedFdRange(const FreedFdRange&) = delete;
  FreedFdRange& operator=(const FreedFdRange&) = delete;
  ~FreedFdRange() {
    for (const Moved& moved : moved_) {
      EXPECT_TRUE(fd_is_free(moved.fd)) << "the test left fd " << moved.fd << " open";
      ::dup3(moved.saved.get(), moved.fd, (moved.flags & FD_CLOEXEC) != 0 ? O_CLOEXEC : 0);
    }
  }

 private:
  struct Moved {
    int fd;
    int flags;
    Fd saved;
  };
  std::vector<Moved> moved_;
};

// Puts a close-on-exec duplicate of `fd` at exactly `target`, which must be free.
Fd place_at(int fd, int target) {
  EXPECT_TRUE(fd_is_free(target));
  return Fd(::dup3(fd, target, O_CLOEXEC));
}

SpawnPlan shell_plan(const std::string& script, std::vector<int> fds = {}) {
  SpawnPlan plan;
  plan.executable = shell_path();
  plan.argv = {"sh", "-c", script};
  plan.env = {"PATH=" + path_variable()};
  plan.fds = std::move(fds);
  return plan;
}

Process spawn_ok(const SpawnPlan& plan, const std::optional<Credentials>& credentials = std::nullopt) {
  auto process = Process::spawn(plan, credentials);
  if (!process) {
    ADD_FAILURE() << "spawn failed at " << process.error().step << ": " << std::strerror(process.error().error);
    std::abort();
  }
  return std::move(*process);
}

// What the child of `plan` writes to its stdout (a pipe), once it exited.
std::string stdout_of(SpawnPlan plan) {
  Pipe out = high_pipe();
  plan.stdout_fd = out.write.get();
  auto process = spawn_ok(plan);
  out.write.reset();
  std::string written = read_to_eof(out.read.get());
  wait_exit(process);
  return written;
}

TEST(Process, ExecOfAnExistingProgramIsKnownWhenSpawnReturns) {
  SpawnPlan plan = shell_plan("exit 0");
  auto process = spawn_ok(plan);
  EXPECT_GT(process.pid(), 0);
  EXPECT_EQ(process.exec_state(), ExecState::succeeded);
  EXPECT_FALSE(process.exec_failure().has_value());
  const int status = wait_exit(process);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Process, TrueFromPathRunsAndExitsZero) {
  SpawnPlan plan;
  plan.executable = resolve_executable("true", "", path_variable()).value();
  plan.argv = {"true"};
  auto process = spawn_ok(plan);
  EXPECT_EQ(process.exec_state(), ExecState::succeeded);
  const int status = wait_exit(process);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Process, MissingProgramFailsAtExecWithEnoent) {
  SpawnPlan plan = shell_plan("");
  plan.executable = "/nonexistent/clusterd-test-program";
  auto process = spawn_ok(plan);
  EXPECT_EQ(process.exec_state(), ExecState::failed);
  EXPECT_EQ(process.exec_failure(), (StartFailure{"exec", ENOENT}));
  const int status = wait_exit(process);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

TEST(Process, MissingDirectoryFailsAtChdir) {
  SpawnPlan plan = shell_plan("exit 0");
  plan.directory = "/nonexistent/clusterd-test-directory";
  auto process = spawn_ok(plan);
  EXPECT_EQ(process.exec_state(), ExecState::failed);
  EXPECT_EQ(process.exec_failure(), (StartFailure{"chdir", ENOENT}));
  wait_exit(process);
}

TEST(Process, WorkerRunsInItsDirectory) {
  Pipe out = high_pipe();
  SpawnPlan plan = shell_plan("pwd >&3", {out.write.get()});
  plan.directory = "/usr";
  auto process = spawn_ok(plan);
  out.write.reset();
  EXPECT_EQ(read_to_eof(out.read.get()), "/usr\n");
  wait_exit(process);
}

TEST(Process, ChildSeesOnlyStdioAndItsListeners) {
  Pipe other = high_pipe();
  // Inheritable on purpose: the child must not get it anyway.
  Fd leaky(::open("/dev/null", O_RDONLY));
  ASSERT_TRUE(leaky);
  // `ls` runs as a child of the shell and lists the shell's fds: the exec'd worker itself.
  // It writes to stdout (an output pipe), because a shell redirection would make dash keep a
  // saved copy of fd 1 (at 10) while ls runs.
  EXPECT_EQ(stdout_of(shell_plan("ls /proc/$$/fd; readlink /proc/$$/fd/0", {other.write.get(), other.read.get()})),
            "0\n1\n2\n3\n4\n/dev/null\n");
}

// A pool of thousands holds thousands of fds; a child that copied them all would pay for each at
// the clone and again at the exec that closes them. It copies only the low block its fds were
// staged on, so its fd table is the smallest the kernel allocates (64 slots) however many fds
// clusterd holds. FDSize (proc(5)) is the size of the table, which the exec does not shrink.
TEST(Process, ChildCopiesOnlyTheBottomOfALargeFdTable) {
  prepare_launches();  // as clusterd does at start, before its fd table fills up
  std::vector<Fd> many;
  for (int i = 0; i < 900; ++i) {
    many.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(many.back()) << std::strerror(errno);
  }
  EXPECT_EQ(stdout_of(shell_plan("grep FDSize /proc/$$/status")), "FDSize:\t64\n");
}

// A worker's exit is seen and reaped through its pidfd alone, so a SIGCHLD that names it never
// needs waitid(P_ALL), which walks every other child of a large pool to find it.
TEST(Process, AnExitedWorkerIsSeenAndReapedThroughItsPidfd) {
  auto process = spawn_ok(shell_plan("exit 3"));
  ASSERT_TRUE(process.reaped_through_pidfd()) << "this kernel has CLONE_PIDFD and waitid(P_PIDFD)";
  ASSERT_TRUE(wait_readable(process.pidfd(), Clock::now() + patience)) << "child still running";
  const auto exited = process.exited();
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->si_code, CLD_EXITED);
  EXPECT_EQ(exited->si_status, 3);
  EXPECT_EQ(exited->si_pid, process.pid());
  EXPECT_TRUE(process.exited().has_value()) << "seeing the exit must leave the zombie in place";
  process.reap();
  EXPECT_EQ(::waitpid(process.pid(), nullptr, WNOHANG | __WALL), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Process, ListenPidIsTheChildsOwnPid) {
  Pipe out = high_pipe();
  Config config;
  config.command = {"sh"};
  const SpawnPlan made = make_spawn_plan(config, shell_path(), {{"out", out.write.get()}}, WorkerIdentity{},
                                         {"PATH=" + path_variable()}, std::nullopt);
  SpawnPlan plan = made;
  plan.argv = {"sh", "-c", "echo \"[$LISTEN_PID] $LISTEN_FDS $LISTEN_FDNAMES\" >&3"};
  auto process = spawn_ok(plan);
  out.write.reset();
  EXPECT_EQ(read_to_eof(out.read.get()), "[" + std::to_string(process.pid()) + "] 1 out\n");
  wait_exit(process);
  // The parent's copy of the plan still holds the blank slot for the next spawn.
  EXPECT_EQ(plan.env[*plan.listen_pid_index], made.env[*made.listen_pid_index]);
}

TEST(Process, SignalMaskIsEmptyAndDispositionsAreDefault) {
  // What the daemon does to itself: handled signals blocked, SIGPIPE ignored.
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGCHLD);
  sigaddset(&blocked, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &blocked, &old_mask), 0);
  struct sigaction ignore {}, old_pipe {}, old_usr2 {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);
  ::sigaction(SIGUSR2, &ignore, &old_usr2);

  Pipe out = high_pipe();
  auto process = spawn_ok(shell_plan("exec grep -E '^Sig(Blk|Ign):' /proc/self/status >&3", {out.write.get()}));
  out.write.reset();

  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::sigaction(SIGUSR2, &old_usr2, nullptr);

  EXPECT_EQ(read_to_eof(out.read.get()), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  wait_exit(process);
}

TEST(Process, ChildLeadsItsOwnProcessGroupAndSession) {
  Pipe hold = high_pipe(false);
  auto process = spawn_ok(shell_plan("read line <&3", {hold.read.get()}));
  ASSERT_EQ(process.exec_state(), ExecState::succeeded);
  EXPECT_EQ(::getpgid(process.pid()), process.pid());
  EXPECT_EQ(::getsid(process.pid()), process.pid());
  hold.write.reset();  // EOF ends the child's read
  const int status = wait_exit(process);
  EXPECT_TRUE(WIFEXITED(status));
}

TEST(Process, SourcesAlreadyInsideTheRangeAreMovedBeforeTheLayout) {
  const FreedFdRange range(3, 4);
  Pipe a = high_pipe();
  Pipe b = high_pipe();
  Fd a_at_3 = place_at(a.write.get(), 3);
  Fd b_at_4 = place_at(b.write.get(), 4);
  a.write.reset();
  b.write.reset();
  // Swapped: fd 3 of the child is b, fd 4 is a.
  auto process = spawn_ok(shell_plan("echo three >&3; echo four >&4", {4, 3}));
  a_at_3.reset();
  b_at_4.reset();
  EXPECT_EQ(read_to_eof(a.read.get()), "four\n");
  EXPECT_EQ(read_to_eof(b.read.get()), "three\n");
  wait_exit(process);
}

TEST(Process, SourceAlreadyAtItsTargetIsInheritedDespiteCloseOnExec) {
  const FreedFdRange range(3, 3);
  Pipe a = high_pipe();
  Fd a_at_3 = place_at(a.write.get(), 3);
  ASSERT_EQ(::fcntl(3, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  a.write.reset();
  auto process = spawn_ok(shell_plan("echo here >&3", {3}));
  a_at_3.reset();
  EXPECT_EQ(read_to_eof(a.read.get()), "here\n");
  wait_exit(process);
}

// With 3..5 free, the low fds spawn itself opens (its block of /dev/null placeholders the child's
// fds are staged on) land inside the target range and must survive the layout.
TEST(Process, FdsOpenedBySpawnInsideTheRangeSurviveTheLayout) {
  const FreedFdRange range(3, 5);
  Pipe a = high_pipe();
  Pipe b = high_pipe();
  Pipe c = high_pipe();
  const std::vector<int> fds = {a.write.get(), b.write.get(), c.write.get()};

  auto process = spawn_ok(shell_plan("echo a >&3; echo b >&4; readlink /proc/$$/fd/0 >&5", fds));
  EXPECT_EQ(process.exec_state(), ExecState::succeeded);
  wait_exit(process);

  SpawnPlan missing = shell_plan("", fds);
  missing.executable = "/nonexistent/clusterd-test-program";
  auto failing = spawn_ok(missing);
  EXPECT_EQ(failing.exec_state(), ExecState::failed);
  EXPECT_EQ(failing.exec_failure(), (StartFailure{"exec", ENOENT}));
  wait_exit(failing);

  a.write.reset();
  b.write.reset();
  c.write.reset();
  EXPECT_EQ(read_to_eof(a.read.get()), "a\n");
  EXPECT_EQ(read_to_eof(b.read.get()), "b\n");
  EXPECT_EQ(read_to_eof(c.read.get()), "/dev/null\n");
}

TEST(Process, OutputFdsReplaceStdoutAndStderr) {
  Pipe out = high_pipe();
  Pipe err = high_pipe();
  SpawnPlan plan = shell_plan("echo to-out; echo to-err >&2");
  plan.stdout_fd = out.write.get();
  plan.stderr_fd = err.write.get();
  auto process = spawn_ok(plan);
  out.write.reset();
  err.write.reset();
  EXPECT_EQ(read_to_eof(out.read.get()), "to-out\n");
  EXPECT_EQ(read_to_eof(err.read.get()), "to-err\n");
  wait_exit(process);
}

TEST(Process, SignalGroupReachesEveryProcessOfTheGroup) {
  Pipe hold = high_pipe(false);
  Pipe out = high_pipe();
  // A helper in the background and the worker itself; both keep `out` open.
  auto process = spawn_ok(shell_plan("{ echo started; exec cat; } <&3 >&4 & exec cat <&3 >&4",
                                     {hold.read.get(), out.write.get()}));
  out.write.reset();
  ASSERT_EQ(read_line(out.read.get()), "started");
  process.signal_group(SIGTERM);
  EXPECT_EQ(read_to_eof(out.read.get()), "");  // every holder of the write end is gone
  const int status = wait_exit(process);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

TEST(Process, DestroyingAnUnreapedProcessKillsItsGroupAndReapsIt) {
  Pipe hold = high_pipe(false);
  Pipe out = high_pipe();
  pid_t pid = -1;
  ::testing::internal::CaptureStderr();
  {
    auto process = spawn_ok(shell_plan("{ echo started; exec cat; } <&3 >&4 & exec cat <&3 >&4",
                                       {hold.read.get(), out.write.get()}));
    pid = process.pid();
    out.write.reset();
    ASSERT_EQ(read_line(out.read.get()), "started");
  }
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(logged, HasSubstr("pid=" + std::to_string(pid) + " was dropped unreaped"));
  EXPECT_EQ(read_to_eof(out.read.get()), "");
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG | __WALL), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Process, MovedFromProcessOwnsNothing) {
  auto first = spawn_ok(shell_plan("exit 0"));
  const pid_t pid = first.pid();
  Process second = std::move(first);
  EXPECT_EQ(second.pid(), pid);
  EXPECT_EQ(first.pid(), -1);  // NOLINT(bugprone-use-after-move): the state is the point
  EXPECT_EQ(second.exec_state(), ExecState::succeeded);
  wait_exit(second);
}

TEST(Process, WorkerGetsTheUsersIds) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  Pipe out = high_pipe();
  auto process = spawn_ok(shell_plan("id -u >&3; id -g >&3; id -G >&3", {out.write.get()}),
                          Credentials{65534, 65534, {65534}});
  out.write.reset();
  EXPECT_EQ(read_to_eof(out.read.get()), "65534\n65534\n65534\n");
  wait_exit(process);
}

// A child that changes ids is forked: one that shared clusterd's memory would hold clusterd until
// its exec, and the worker user may stop it (SIGSTOP) between its setuid and its exec. Its exec
// is then reported later, through its exec-status pipe.
ExecState wait_exec_status(Process& process) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    const ExecState state = process.read_exec_status();
    if (state != ExecState::pending || !wait_readable(process.exec_status_fd(), deadline)) {
      return state;
    }
  }
}

TEST(Process, AChildThatChangesIdsIsForkedAndReportsItsExecThroughItsPipe) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  const Credentials nobody{65534, 65534, {65534}};
  auto process = spawn_ok(shell_plan("exit 0"), nobody);
  ASSERT_GE(process.exec_status_fd(), 0) << "a child that changes ids has its exec-status pipe";
  EXPECT_EQ(wait_exec_status(process), ExecState::succeeded);
  wait_exit(process);

  SpawnPlan missing = shell_plan("");
  missing.executable = "/nonexistent/clusterd-test-program";
  auto failing = spawn_ok(missing, nobody);
  EXPECT_EQ(wait_exec_status(failing), ExecState::failed);
  EXPECT_EQ(failing.exec_failure(), (StartFailure{"exec", ENOENT}));
  wait_exit(failing);
}

// A program or directory on a network file system or FUSE could make the exec wait as long as the
// server does not answer: such a child is forked, so clusterd never waits with it.
TEST(Process, AChildWhoseExecMayHangIsForked) {
  SpawnPlan plan = shell_plan("exit 0");
  plan.may_hang_before_exec = true;
  auto process = spawn_ok(plan);
  ASSERT_GE(process.exec_status_fd(), 0) << "forked, with its exec-status pipe";
  EXPECT_EQ(wait_exec_status(process), ExecState::succeeded);
  wait_exit(process);
}

// Without an id change the child shares clusterd's memory until its exec: how the exec went is
// known when spawn returns, and there is no pipe to watch.
TEST(Process, AChildThatKeepsClusterdsIdsIsDoneWithItsExecWhenSpawnReturns) {
  auto process = spawn_ok(shell_plan("exit 0"));
  EXPECT_EQ(process.exec_state(), ExecState::succeeded);
  EXPECT_EQ(process.exec_status_fd(), -1);
  wait_exit(process);
}

TEST(Process, WorkerGetsBackTheFdLimitClusterdStartedWith) {
  // Lower our soft limit first, so the remembered value differs from the hard limit when this
  // is the first call in the test binary; later calls keep the first value either way.
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 1000);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  const NofileLimits limits = raise_nofile_limit();
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(limits.soft, limit.rlim_max);
  EXPECT_EQ(limit.rlim_cur, limit.rlim_max);

  Pipe out = high_pipe();
  auto process = spawn_ok(shell_plan("ulimit -n >&3", {out.write.get()}));
  out.write.reset();
  EXPECT_EQ(read_to_eof(out.read.get()), std::to_string(limits.original_soft) + "\n");
  wait_exit(process);
}

class ResolveExecutable : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cd-process-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write_file("prog", 0755);
    write_file("data", 0644);
    std::filesystem::create_directory(dir_ + "/dir");
    std::filesystem::create_directory(dir_ + "/sub");
    write_file("sub/prog2", 0755);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write_file(const std::string& name, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n";
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }

  std::string dir_;
};

TEST_F(ResolveExecutable, AbsolutePathIsTakenAsIs) {
  EXPECT_EQ(resolve_executable(dir_ + "/prog", "/", ""), dir_ + "/prog");
}

TEST_F(ResolveExecutable, NameWithSlashIsFoundFromTheDirectory) {
  EXPECT_EQ(resolve_executable("./prog", dir_, "/nonexistent"), dir_ + "/prog");
  EXPECT_EQ(resolve_executable("sub/prog2", dir_, ""), dir_ + "/sub/prog2");
}

TEST_F(ResolveExecutable, NameWithSlashWithoutDirectoryIsFoundFromTheWorkingDirectory) {
  // A relative path from our working directory to the temp dir.
  const std::filesystem::path relative = std::filesystem::relative(dir_ + "/prog", std::filesystem::current_path());
  const auto found = resolve_executable(relative.string(), "", "");
  ASSERT_TRUE(found) << std::strerror(found.error());
  EXPECT_TRUE(found->starts_with("/"));
  EXPECT_TRUE(std::filesystem::equivalent(*found, dir_ + "/prog"));
}

TEST_F(ResolveExecutable, NonExecutableFileIsEacces) {
  EXPECT_EQ(resolve_executable("./data", dir_, ""), tl::make_unexpected(EACCES));
}

TEST_F(ResolveExecutable, DirectoryIsEacces) {
  EXPECT_EQ(resolve_executable("./dir", dir_, ""), tl::make_unexpected(EACCES));
}

TEST_F(ResolveExecutable, MissingFileIsEnoent) {
  EXPECT_EQ(resolve_executable("./missing", dir_, ""), tl::make_unexpected(ENOENT));
  EXPECT_EQ(resolve_executable("clusterd-no-such-program", dir_, "/nonexistent:" + dir_),
            tl::make_unexpected(ENOENT));
  EXPECT_EQ(resolve_executable("", dir_, ""), tl::make_unexpected(ENOENT));
}

TEST_F(ResolveExecutable, BareNameIsSearchedInPath) {
  EXPECT_EQ(resolve_executable("prog", "/", "/nonexistent:" + dir_), dir_ + "/prog");
}

TEST_F(ResolveExecutable, PathSearchSkipsANonExecutableMatch) {
  EXPECT_EQ(resolve_executable("data", "/", dir_), tl::make_unexpected(EACCES));
  write_file("sub/data", 0755);
  EXPECT_EQ(resolve_executable("data", "/", dir_ + ":" + dir_ + "/sub"), dir_ + "/sub/data");
}

TEST_F(ResolveExecutable, RelativePathEntriesAreTakenFromTheDirectory) {
  EXPECT_EQ(resolve_executable("prog2", dir_, "sub"), dir_ + "/sub/prog2");
  EXPECT_EQ(resolve_executable("prog", dir_, "/nonexistent:"), dir_ + "/prog");  // empty entry: "."
}

TEST_F(ResolveExecutable, EmptyPathMeansBinAndUsrBin) {
  EXPECT_EQ(resolve_executable("sh", "/", ""), "/bin/sh");
}

// ----- the children of the calling process

TEST(ParsePidList, NumbersSeparatedBySpaces) {
  EXPECT_EQ(parse_pid_list("4121 4122 "), (std::vector<pid_t>{4121, 4122}));
  EXPECT_EQ(parse_pid_list("7"), (std::vector<pid_t>{7}));
  EXPECT_EQ(parse_pid_list(""), std::vector<pid_t>{});
  EXPECT_EQ(parse_pid_list("  12\n"), (std::vector<pid_t>{12}));
}

TEST(ListChildren, AForkedChildIsListedUntilItIsReaped) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  const auto running = list_children();
  ::kill(child, SIGKILL);
  ASSERT_EQ(retry_on_eintr([&] { return ::waitpid(child, nullptr, 0); }), child);
  ASSERT_TRUE(running);
  EXPECT_THAT(*running, ::testing::Contains(child));
  const auto after = list_children();
  ASSERT_TRUE(after);
  EXPECT_THAT(*after, ::testing::Not(::testing::Contains(child)));
}

}  // namespace
}  // namespace clusterd
