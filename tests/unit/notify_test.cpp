// Real notify sockets in private temp dirs: who may report for a worker, barrier fds, limits,
// the socket file, real senders (systemd-notify, python-systemd), the client to systemd, and
// where the directory goes.
#include "notify_directory.h"
#include "notify_systemd.h"
#include "notify_worker_socket.h"
#include "test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using TestClock = std::chrono::steady_clock;
using testing_support::EnvGuard;
using testing_support::TempDir;

// Every wait is on a condition; this only bounds a broken one (systemd-notify's own barrier
// timeout is 5 s, so a missed barrier shows as its exit status, not as this deadline).
constexpr auto patience = 10s;

int remaining_ms(TestClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TestClock::now());
  return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
}

struct Pipe {
  Fd read_end;
  Fd write_end;
};

Pipe make_pipe(int flags = O_CLOEXEC) {
  int ends[2] = {-1, -1};
  if (::pipe2(ends, flags) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  return {Fd(ends[0]), Fd(ends[1])};
}

// In a forked child: blocks until every write end of `release` is closed.
void wait_for_release(const Pipe& release) {
  ::close(release.write_end.get());
  char byte = 0;
  while (retry_on_eintr([&] { return ::read(release.read_end.get(), &byte, 1); }) > 0) {
  }
}

// A forked child running `body` (then _exit(0)); SIGKILLed and reaped if the test ends early.
class Child {
 public:
  template <typename Body>
  explicit Child(Body body) : pid_(::fork()) {
    if (pid_ == 0) {
      body();
      ::_exit(0);
    }
    if (pid_ < 0) {
      throw std::runtime_error("fork failed");
    }
    pidfd_ = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0U)));
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // The wait status, or -1 if it did not exit before the deadline (it is then killed).
  int reap(TestClock::time_point deadline) {
    pollfd entry{pidfd_.get(), POLLIN, 0};
    if (retry_on_eintr([&] { return ::poll(&entry, 1, remaining_ms(deadline)); }) <= 0) {
      ADD_FAILURE() << "child " << pid_ << " did not exit in time";
      return -1;
    }
    int status = 0;
    retry_on_eintr([&] { return ::waitpid(pid_, &status, 0); });
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  Fd pidfd_;
};

bool wait_readable(int fd, TestClock::time_point deadline) {
  pollfd entry{fd, POLLIN, 0};
  return retry_on_eintr([&] { return ::poll(&entry, 1, remaining_ms(deadline)); }) > 0;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

// Sends one datagram (with `fd_to_pass` as SCM_RIGHTS, if given) to `path`; false on failure.
bool send_datagram(const std::string& path, std::string_view payload, int fd_to_pass = -1) {
  Fd sender(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un address = unix_address(path);
  iovec vector{const_cast<char*>(payload.data()), payload.size()};
  msghdr header{};
  header.msg_name = &address;
  header.msg_namelen = sizeof(address);
  header.msg_iov = &vector;
  header.msg_iovlen = 1;
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(int))> control{};
  if (fd_to_pass >= 0) {
    header.msg_control = control.data();
    header.msg_controllen = control.size();
    cmsghdr* message = CMSG_FIRSTHDR(&header);
    message->cmsg_level = SOL_SOCKET;
    message->cmsg_type = SCM_RIGHTS;
    message->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(message), &fd_to_pass, sizeof(int));
  }
  return ::sendmsg(sender.get(), &header, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(payload.size());
}

WorkerNotifySocket open_socket(const std::string& path) {
  auto opened = WorkerNotifySocket::open(path, std::nullopt, std::nullopt);
  if (!opened) {
    throw std::runtime_error(opened.error());
  }
  return std::move(*opened);
}

// Drains once the socket is readable; fails the test if nothing arrives in time.
std::vector<NotifyMessage> drain_when_readable(WorkerNotifySocket& socket, pid_t worker, int& dropped) {
  if (!wait_readable(socket.fd(), TestClock::now() + patience)) {
    ADD_FAILURE() << "no datagram within the deadline";
    return {};
  }
  return socket.drain(worker, dropped);
}

// Runs `child` to its exit while draining `socket` for `worker`, as the daemon's loop would;
// returns every accepted message and the child's wait status.
std::vector<NotifyMessage> drain_while_running(WorkerNotifySocket& socket, pid_t worker, Child& child, int& dropped,
                                               int& status) {
  const auto deadline = TestClock::now() + patience;
  std::vector<NotifyMessage> accepted;
  for (;;) {
    pollfd entries[2] = {{socket.fd(), POLLIN, 0}, {child.pidfd(), POLLIN, 0}};
    if (retry_on_eintr([&] { return ::poll(entries, 2, remaining_ms(deadline)); }) <= 0) {
      ADD_FAILURE() << "the sender neither sent nor exited in time";
      break;
    }
    // The sender is not reaped yet, so its /proc entry (a zombie's) still names its parent.
    for (NotifyMessage& message : socket.drain(worker, dropped)) {
      accepted.push_back(std::move(message));
    }
    if ((entries[1].revents & POLLIN) != 0) {
      break;
    }
  }
  for (NotifyMessage& message : socket.drain(worker, dropped)) {
    accepted.push_back(std::move(message));
  }
  status = child.reap(deadline);
  return accepted;
}

// ---- WorkerNotifySocket ---------------------------------------------------------------------

TEST(WorkerNotifySocket, AcceptsADatagramFromTheWorkerItself) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  ASSERT_TRUE(send_datagram(socket.path(), "READY=1\nSTATUS=serving\n"));
  int dropped = 0;
  const auto messages = drain_when_readable(socket, ::getpid(), dropped);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(messages[0].ready);
  EXPECT_EQ(messages[0].status, "serving");
  EXPECT_EQ(dropped, 0);
}

TEST(WorkerNotifySocket, AcceptsADescendantOfTheWorker) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  Pipe release = make_pipe();
  // A grandchild of this process (the worker here) sends and stays alive until released, so
  // its PPid chain can be walked.
  Child child([&] {
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      send_datagram(socket.path(), "READY=1");
      wait_for_release(release);
      ::_exit(0);
    }
    ::close(release.write_end.get());
    ::waitpid(grandchild, nullptr, 0);
  });
  int dropped = 0;
  const auto messages = drain_when_readable(socket, ::getpid(), dropped);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(messages[0].ready);
  EXPECT_EQ(dropped, 0);
  release.write_end.reset();
  EXPECT_EQ(child.reap(TestClock::now() + patience), 0);
}

TEST(WorkerNotifySocket, DropsADatagramFromASiblingOfTheWorker) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  Pipe release = make_pipe();
  Child worker([&] { wait_for_release(release); });
  Child sibling([&] {
    send_datagram(socket.path(), "READY=1");
    wait_for_release(release);
  });
  int dropped = 0;
  const auto messages = drain_when_readable(socket, worker.pid(), dropped);
  EXPECT_TRUE(messages.empty());
  EXPECT_EQ(dropped, 1);
  release.write_end.reset();
  EXPECT_EQ(sibling.reap(TestClock::now() + patience), 0);
  EXPECT_EQ(worker.reap(TestClock::now() + patience), 0);
}

TEST(WorkerNotifySocket, ReportsTheFirstDropAtOnceAndHoldsBackTheNextOnes) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  Pipe release = make_pipe();
  Child worker([&] { wait_for_release(release); });  // not us: each datagram of ours is a stranger's
  ASSERT_TRUE(send_datagram(socket.path(), "READY=1"));
  int dropped = 0;
  EXPECT_TRUE(drain_when_readable(socket, worker.pid(), dropped).empty());
  EXPECT_EQ(dropped, 1);
  ASSERT_TRUE(send_datagram(socket.path(), "READY=1"));
  ASSERT_TRUE(send_datagram(socket.path(), "READY=1"));
  EXPECT_TRUE(drain_when_readable(socket, worker.pid(), dropped).empty());
  EXPECT_EQ(dropped, 1);  // less than NotifyPacing::report_interval (10 s) after the first report
  release.write_end.reset();
  EXPECT_EQ(worker.reap(TestClock::now() + patience), 0);
}

TEST(WorkerNotifySocket, AFloodIsPausedAndResumedUntilItIsDrainedToTheEnd) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  Pipe release = make_pipe();
  Child worker([&] { wait_for_release(release); });
  // Four windows' worth, sent blocking: the sender gets through only as far as clusterd reads,
  // so it finishes only if every pause ends and reading resumes.
  constexpr int flood = 4 * NotifyPacing::datagrams_per_window;
  const std::string path = socket.path();
  Child stranger([&] {
    Fd sender(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const sockaddr_un address = unix_address(path);
    for (int i = 0; i < flood; ++i) {
      if (::sendto(sender.get(), "READY=1", 7, MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                   sizeof(address)) != 7) {
        ::_exit(1);
      }
    }
  });
  int dropped = 0;
  int status = -1;
  const auto accepted = drain_while_running(socket, worker.pid(), stranger, dropped, status);
  EXPECT_TRUE(accepted.empty());
  EXPECT_EQ(status, 0);  // every datagram was sent, so every one was read
  // One report, at the first drain: it counts what that drain read (at most one window's worth,
  // however many had queued); the rest falls within report_interval and is not reported yet.
  EXPECT_GE(dropped, 1);
  EXPECT_LE(dropped, NotifyPacing::datagrams_per_window);
  release.write_end.reset();
  EXPECT_EQ(worker.reap(TestClock::now() + patience), 0);
}

TEST(WorkerNotifySocket, ClosesReceivedFdsSoTheSendersBarrierCompletes) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  // sd_notify_barrier(): send the write end of a pipe, wait for the read end to hang up.
  Pipe barrier = make_pipe(O_CLOEXEC | O_NONBLOCK);
  ASSERT_TRUE(send_datagram(socket.path(), "BARRIER=1", barrier.write_end.get()));
  barrier.write_end.reset();
  int dropped = 0;
  const auto messages = drain_when_readable(socket, ::getpid(), dropped);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], NotifyMessage{});
  ASSERT_TRUE(wait_readable(barrier.read_end.get(), TestClock::now() + patience));
  char byte = 0;
  EXPECT_EQ(::read(barrier.read_end.get(), &byte, 1), 0);  // EOF: no copy of the write end is left
}

TEST(WorkerNotifySocket, ClosesFdsOfDroppedDatagramsToo) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  Pipe release = make_pipe();
  Child worker([&] { wait_for_release(release); });  // not us, so our datagram is dropped
  Pipe barrier = make_pipe(O_CLOEXEC | O_NONBLOCK);
  ASSERT_TRUE(send_datagram(socket.path(), "BARRIER=1", barrier.write_end.get()));
  barrier.write_end.reset();
  int dropped = 0;
  EXPECT_TRUE(drain_when_readable(socket, worker.pid(), dropped).empty());
  EXPECT_EQ(dropped, 1);
  release.write_end.reset();
  EXPECT_EQ(worker.reap(TestClock::now() + patience), 0);
  ASSERT_TRUE(wait_readable(barrier.read_end.get(), TestClock::now() + patience));
  char byte = 0;
  EXPECT_EQ(::read(barrier.read_end.get(), &byte, 1), 0);
}

TEST(WorkerNotifySocket, DropsATruncatedDatagramAndReadsOn) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  ASSERT_TRUE(send_datagram(socket.path(), "STATUS=" + std::string(4993, 'x')));  // 5000 bytes
  ASSERT_TRUE(send_datagram(socket.path(), "READY=1"));
  int dropped = 0;
  const auto messages = drain_when_readable(socket, ::getpid(), dropped);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(messages[0].ready);
  EXPECT_EQ(dropped, 1);
}

TEST(WorkerNotifySocket, AcceptsA4096ByteDatagramAsSystemdDoes) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  const std::string status(4096 - 7, 's');
  ASSERT_TRUE(send_datagram(socket.path(), "STATUS=" + status));
  int dropped = 0;
  const auto messages = drain_when_readable(socket, ::getpid(), dropped);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].status, status);
  EXPECT_EQ(dropped, 0);
}

TEST(WorkerNotifySocket, DrainsEveryQueuedDatagramInOneCallInOrder) {
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  // 10: without systemd as PID 1, net.unix.max_dgram_qlen is 10 (protocols §2.3 step 8).
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(send_datagram(socket.path(), "STATUS=" + std::to_string(i))) << i;
  }
  int dropped = 0;
  const auto messages = socket.drain(::getpid(), dropped);
  ASSERT_EQ(messages.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(messages[static_cast<std::size_t>(i)].status, std::to_string(i));
  }
  EXPECT_TRUE(socket.drain(::getpid(), dropped).empty());
  EXPECT_EQ(dropped, 0);
}

TEST(WorkerNotifySocket, SocketFileIsPrivateAndRemovedOnDestruction) {
  TempDir dir;
  const std::string path = dir.file("w0-1-1.sock");
  {
    WorkerNotifySocket socket = open_socket(path);
    struct stat status {};
    ASSERT_EQ(::lstat(path.c_str(), &status), 0);
    EXPECT_TRUE(S_ISSOCK(status.st_mode));
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    EXPECT_EQ(status.st_uid, ::geteuid());
    WorkerNotifySocket moved = std::move(socket);  // the moved-from one must leave the file alone
  }
  struct stat status {};
  EXPECT_EQ(::lstat(path.c_str(), &status), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST(WorkerNotifySocket, IsOwnedByTheWorkersUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another user needs root";
  }
  TempDir dir;
  const std::string path = dir.file("w0-1-1.sock");
  auto socket = WorkerNotifySocket::open(path, uid_t{65534}, gid_t{65534});
  ASSERT_TRUE(socket) << socket.error();
  struct stat status {};
  ASSERT_EQ(::lstat(path.c_str(), &status), 0);
  EXPECT_EQ(status.st_uid, 65534u);
  EXPECT_EQ(status.st_gid, 65534u);
  EXPECT_EQ(status.st_mode & 07777, 0600u);
}

TEST(WorkerNotifySocket, RefusesAnExistingPathAndATooLongOne) {
  TempDir dir;
  WorkerNotifySocket first = open_socket(dir.file("w0-1-1.sock"));
  auto again = WorkerNotifySocket::open(first.path(), std::nullopt, std::nullopt);
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error(), StartsWith("bind " + first.path() + ": "));
  auto too_long = WorkerNotifySocket::open(dir.file(std::string(120, 'a')), std::nullopt, std::nullopt);
  ASSERT_FALSE(too_long);
  EXPECT_THAT(too_long.error(), HasSubstr("the limit is 107"));
}

TEST(WorkerNotifySocket, SystemdNotifyReadyIsAcceptedWhenThisProcessIsTheWorker) {
  if (::access("/usr/bin/systemd-notify", X_OK) != 0) {
    GTEST_SKIP() << "systemd-notify is not installed";
  }
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  const std::string variable = "NOTIFY_SOCKET=" + socket.path();
  // As root it reports with its parent's pid (this process), then sends BARRIER=1 with a pipe
  // fd from its own; unprivileged, both come from its own pid, a child of ours (§2.3).
  Child notify([&] {
    const char* argv[] = {"systemd-notify", "--ready", "--status=booted", nullptr};
    const char* envp[] = {variable.c_str(), "PATH=/usr/bin:/bin", nullptr};
    ::execve("/usr/bin/systemd-notify", const_cast<char* const*>(argv), const_cast<char* const*>(envp));
    ::_exit(127);
  });
  int dropped = 0;
  int status = -1;
  const auto messages = drain_while_running(socket, ::getpid(), notify, dropped, status);
  // Exit 0 within its 5 s barrier timeout: the barrier fd was closed.
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_FALSE(messages.empty());
  EXPECT_TRUE(messages[0].ready);
  EXPECT_EQ(messages[0].status, "booted");
  EXPECT_EQ(dropped, 0);
}

TEST(WorkerNotifySocket, PythonSystemdNotifyIsAccepted) {
  if (::access("/usr/bin/python3", X_OK) != 0) {
    GTEST_SKIP() << "/usr/bin/python3 is not installed";
  }
  TempDir dir;
  WorkerNotifySocket socket = open_socket(dir.file("w0-1-1.sock"));
  const std::string variable = "NOTIFY_SOCKET=" + socket.path();
  Child python([&] {
    const char* argv[] = {"python3", "-c",
                          "from systemd import daemon; import sys; "
                          "sys.exit(0 if daemon.notify('READY=1\\nSTATUS=from python') else 3)",
                          nullptr};
    const char* envp[] = {variable.c_str(), nullptr};
    ::execve("/usr/bin/python3", const_cast<char* const*>(argv), const_cast<char* const*>(envp));
    ::_exit(127);
  });
  int dropped = 0;
  int status = -1;
  const auto messages = drain_while_running(socket, ::getpid(), python, dropped, status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "python3-systemd missing? status " << status;
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(messages[0].ready);
  EXPECT_EQ(messages[0].status, "from python");
  EXPECT_EQ(dropped, 0);
}

// ---- NotifyDirectory ------------------------------------------------------------------------

mode_t mode_of(const std::string& path) {
  struct stat status {};
  EXPECT_EQ(::lstat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

// The bases a clusterd with these variables would try, without the fixed /run/clusterd or
// /tmp/clusterd-UID: a unit test never touches those (other instances may be using them).
DefaultDirectories bases_from(std::optional<std::string> runtime_directory, std::optional<std::string> xdg_runtime_dir) {
  DefaultDirectories all = default_directories(runtime_directory, xdg_runtime_dir, ::geteuid(), false);
  std::erase_if(all.directories, [](const DefaultDirectory& directory) {
    return directory.path == "/run/clusterd" || directory.path.starts_with("/tmp/clusterd-");
  });
  return all;
}

DefaultDirectories runtime_directory(const std::string& path) { return bases_from(path, std::nullopt); }

TEST(NotifyDirectory, IsCreatedInTheRuntimeDirectoryAndRemovedWithItsContents) {
  TempDir runtime;
  std::string path;
  {
    auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(runtime.path()));
    ASSERT_TRUE(directory) << directory.error();
    path = directory->path();
    EXPECT_THAT(path, StartsWith(runtime.path() + "/shop.notify."));
    EXPECT_EQ(mode_of(path), 0711u);
    const WorkerNotifySocket socket = open_socket(directory->worker_socket_path(3, 2, 17));
    EXPECT_EQ(socket.path(), path + "/w3-2-17.sock");
    std::ofstream(path + "/left-behind") << "x";
    NotifyDirectory moved = std::move(*directory);  // the moved-from one must not remove it
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(NotifyDirectory, UsesTheFirstRuntimeDirectoryEntry) {
  TempDir first;
  TempDir second;
  auto directory =
      NotifyDirectory::create("shop", std::nullopt, bases_from(first.path() + ":" + second.path(), std::nullopt));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith(first.path() + "/shop.notify."));
}

TEST(NotifyDirectory, CreatesAPrivateClusterdDirectoryUnderXdgRuntimeDir) {
  TempDir xdg;
  auto directory = NotifyDirectory::create("shop", std::nullopt, bases_from(std::nullopt, xdg.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith(xdg.path() + "/clusterd/shop.notify."));
  EXPECT_EQ(mode_of(xdg.file("clusterd")), 0700u);
}

TEST(NotifyDirectory, SkipsABaseOthersCanWriteTo) {
  TempDir xdg;
  ASSERT_EQ(::mkdir(xdg.file("clusterd").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(xdg.file("clusterd").c_str(), 0777), 0);
  auto directory = NotifyDirectory::create("shop", std::nullopt, bases_from(std::nullopt, xdg.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith("/tmp/shop.notify."));
}

TEST(NotifyDirectory, SkipsARuntimeDirectoryOthersCanWriteTo) {
  TempDir runtime;
  ASSERT_EQ(::chmod(runtime.path().c_str(), 0777), 0);  // $RUNTIME_DIRECTORY is never created by us
  auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith("/tmp/shop.notify."));
}

TEST(NotifyDirectory, SkipsARuntimeDirectoryBelowOneOthersCanWriteTo) {
  TempDir outer;
  ASSERT_EQ(::chmod(outer.path().c_str(), 0777), 0);
  const std::string runtime = outer.file("run");
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(runtime));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith("/tmp/shop.notify."));
}

TEST(NotifyDirectory, UsesAStickyWorldWritableRuntimeDirectoryAsItUsesTmp) {
  TempDir runtime;
  ASSERT_EQ(::chmod(runtime.path().c_str(), 01777), 0);
  auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith(runtime.path() + "/shop.notify."));
  EXPECT_EQ(mode_of(directory->path()), 0711u);
}

TEST(NotifyDirectory, SkipsARuntimeDirectoryOwnedByAnotherUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another user needs root";
  }
  TempDir runtime;
  ASSERT_EQ(::chown(runtime.path().c_str(), 65534, 65534), 0);
  auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith("/tmp/shop.notify."));
}

// A uid that is not ours: the workers' user in the tests below.
uid_t another_uid() { return ::geteuid() == 65534 ? 65533 : 65534; }

TEST(NotifyDirectory, FallsBackToTmpWhenTheWorkersUserCannotSearchTheBase) {
  TempDir runtime;  // 0700, ours: another uid may not pass through
  auto directory = NotifyDirectory::create("shop", another_uid(), runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith("/tmp/shop.notify."));
  EXPECT_EQ(mode_of(directory->path()), 0711u);
}

TEST(NotifyDirectory, KeepsTheBaseWhenTheWorkersUserCanSearchIt) {
  TempDir runtime;
  ASSERT_EQ(::chmod(runtime.path().c_str(), 0755), 0);
  auto directory = NotifyDirectory::create("shop", another_uid(), runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), StartsWith(runtime.path() + "/shop.notify."));
}

TEST(NotifyDirectory, ShortensALongNameSoSocketPathsFit) {
  TempDir runtime;
  auto directory = NotifyDirectory::create(std::string(64, 'n'), std::nullopt, runtime_directory(runtime.path()));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_LE(directory->path().size() + NotifyDirectory::socket_name_room, 107u);
  EXPECT_TRUE(
      WorkerNotifySocket::open(directory->worker_socket_path(4095, 99999, 9999999), std::nullopt, std::nullopt));
}

TEST(NotifyDirectory, SkipsABaseTooLongForSocketPaths) {
  TempDir runtime;
  const std::string deep = runtime.file(std::string(80, 'd'));
  ASSERT_EQ(::mkdir(deep.c_str(), 0755), 0);
  auto directory = NotifyDirectory::create("shop", std::nullopt, runtime_directory(deep));
  ASSERT_TRUE(directory) << directory.error();
  EXPECT_THAT(directory->path(), ::testing::Not(StartsWith(deep)));
}

// ---- SystemdNotifier ------------------------------------------------------------------------

// A datagram socket standing in for systemd's: bound at `address` ("/path" or "@name").
Fd systemd_socket(const std::string& address) {
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un bound = unix_address(address);
  socklen_t length = sizeof(bound);
  if (address.starts_with('@')) {
    bound.sun_path[0] = '\0';
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  }
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&bound), length), 0) << std::strerror(errno);
  return fd;
}

std::string receive(int fd) {
  if (!wait_readable(fd, TestClock::now() + patience)) {
    ADD_FAILURE() << "nothing received";
    return {};
  }
  std::array<char, 8192> buffer{};
  const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
  return got < 0 ? std::string() : std::string(buffer.data(), static_cast<std::size_t>(got));
}

TEST(SystemdNotifier, DeliversTheExactBytesToAPathSocket) {
  TempDir dir;
  const std::string path = dir.file("notify");
  const Fd systemd = systemd_socket(path);
  const EnvGuard env{{"NOTIFY_SOCKET", path}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  ASSERT_TRUE(notifier.enabled());
  EXPECT_EQ(notifier.problem(), std::nullopt);
  EXPECT_EQ(notifier.send("READY=1\nSTATUS=4/4 workers ready"), std::nullopt);
  EXPECT_EQ(receive(systemd.get()), "READY=1\nSTATUS=4/4 workers ready");
  EXPECT_EQ(notifier.send("STOPPING=1"), std::nullopt);
  EXPECT_EQ(receive(systemd.get()), "STOPPING=1");
}

TEST(SystemdNotifier, DeliversToAnAbstractSocketWithoutTrailingZeros) {
  const std::string name = "@cd-notify-test-" + std::to_string(::getpid());
  const Fd systemd = systemd_socket(name);
  const EnvGuard env{{"NOTIFY_SOCKET", name}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  ASSERT_TRUE(notifier.enabled());
  EXPECT_EQ(notifier.send("READY=1"), std::nullopt);
  EXPECT_EQ(receive(systemd.get()), "READY=1");
}

TEST(SystemdNotifier, WithoutNotifySocketIsDisabledAndSendingIsANoOp) {
  const EnvGuard env{{"NOTIFY_SOCKET", std::nullopt}, {"WATCHDOG_USEC", "1000000"}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  EXPECT_FALSE(notifier.enabled());
  EXPECT_EQ(notifier.problem(), std::nullopt);
  EXPECT_EQ(notifier.send("READY=1"), std::nullopt);
  EXPECT_EQ(notifier.watchdog_timeout(), std::nullopt);
}

TEST(SystemdNotifier, AVsockAddressIsNotUsedAndSaysWhy) {
  const EnvGuard env{{"NOTIFY_SOCKET", "vsock:2:1234"}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  EXPECT_FALSE(notifier.enabled());
  ASSERT_TRUE(notifier.problem());
  EXPECT_THAT(*notifier.problem(), HasSubstr("NOTIFY_SOCKET=vsock:2:1234 is not a unix socket path"));
}

TEST(SystemdNotifier, AFailedSendIsReturnedAsText) {
  TempDir dir;
  const EnvGuard env{{"NOTIFY_SOCKET", dir.file("nobody-listens")}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  ASSERT_TRUE(notifier.enabled());
  const auto problem = notifier.send("READY=1");
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "sendto NOTIFY_SOCKET=" + dir.file("nobody-listens") + ": No such file or directory");
}

TEST(SystemdNotifier, RefusesAMessageSystemdWouldDrop) {
  TempDir dir;
  const Fd systemd = systemd_socket(dir.file("notify"));
  const EnvGuard env{{"NOTIFY_SOCKET", dir.file("notify")}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  const auto problem = notifier.send("STATUS=" + std::string(4096, 'x'));
  ASSERT_TRUE(problem);
  EXPECT_THAT(*problem, HasSubstr("is 4103 bytes, systemd drops more than 4096"));
}

TEST(SystemdNotifier, WatchdogIsOursWhenWatchdogPidIsUnsetOrOurs) {
  TempDir dir;
  const Fd systemd = systemd_socket(dir.file("notify"));
  {
    const EnvGuard env{
        {"NOTIFY_SOCKET", dir.file("notify")}, {"WATCHDOG_USEC", "30000000"}, {"WATCHDOG_PID", std::nullopt}};
    EXPECT_EQ(SystemdNotifier::from_environment().watchdog_timeout(), 30s);
  }
  {
    const EnvGuard env{{"NOTIFY_SOCKET", dir.file("notify")},
                       {"WATCHDOG_USEC", "30000000"},
                       {"WATCHDOG_PID", std::to_string(::getpid())}};
    EXPECT_EQ(SystemdNotifier::from_environment().watchdog_timeout(), 30s);
  }
}

TEST(SystemdNotifier, WatchdogPidOfAnotherProcessDisablesTheWatchdog) {
  TempDir dir;
  const Fd systemd = systemd_socket(dir.file("notify"));
  const EnvGuard env{{"NOTIFY_SOCKET", dir.file("notify")},
                     {"WATCHDOG_USEC", "30000000"},
                     {"WATCHDOG_PID", std::to_string(::getppid())}};
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  EXPECT_TRUE(notifier.enabled());
  EXPECT_EQ(notifier.watchdog_timeout(), std::nullopt);
}

TEST(SystemdNotifier, WatchdogOfZeroOrGarbageIsOff) {
  TempDir dir;
  const Fd systemd = systemd_socket(dir.file("notify"));
  for (const char* usec : {"0", "", "10s", "-5"}) {
    const EnvGuard env{{"NOTIFY_SOCKET", dir.file("notify")}, {"WATCHDOG_USEC", usec}, {"WATCHDOG_PID", std::nullopt}};
    EXPECT_EQ(SystemdNotifier::from_environment().watchdog_timeout(), std::nullopt) << usec;
  }
}

TEST(MonotonicNow, IsTheMonotonicClockInMicroseconds) {
  // libstdc++'s steady_clock is CLOCK_MONOTONIC on Linux.
  const auto before = std::chrono::duration_cast<std::chrono::microseconds>(TestClock::now().time_since_epoch());
  const auto now = monotonic_now();
  const auto after = std::chrono::duration_cast<std::chrono::microseconds>(TestClock::now().time_since_epoch());
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

}  // namespace
}  // namespace clusterd
