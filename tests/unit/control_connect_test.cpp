// Which control sockets a client believes, for real in private temp dirs: only those in
// directories no other user may write (found by a search or named by the operator), through
// links only root or the client owns, and served by root or the client's own uid.
#include "control_connect.h"
#include "control_paths.h"
#include "test_support.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing_support::TempDir;

// A socket listening at `path`, served by this process (so by its euid).
Fd listen_at(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 8), 0) << std::strerror(errno);
  return fd;
}

std::string failure(const std::string& path) {
  auto connected = connect_control(path, ::geteuid());
  EXPECT_FALSE(connected) << path;
  return connected ? std::string() : connected.error().message;
}

ConnectFailure::Kind failure_kind(const std::string& path) {
  auto connected = connect_control(path, ::geteuid());
  return connected ? ConnectFailure::Kind{} : connected.error().kind;
}

TEST(UntrustedServer, OnlyRootOrTheClientsOwnUid) {
  EXPECT_EQ(untrusted_server("/run/clusterd/shop.sock", 0, 10, 0), std::nullopt);
  EXPECT_EQ(untrusted_server("/run/clusterd/shop.sock", 0, 10, 1000), std::nullopt);
  EXPECT_EQ(untrusted_server("/tmp/clusterd-1000/shop.sock", 1000, 10, 1000), std::nullopt);
  EXPECT_EQ(untrusted_server("/tmp/clusterd-0/shop.sock", 65534, 4242, 0),
            "refusing control socket /tmp/clusterd-0/shop.sock: its server (pid 4242) runs as uid 65534, and "
            "only a server running as root is believed, since another user's program could answer anything "
            "(to ask it, run the client as uid 65534)");
  EXPECT_EQ(untrusted_server("/x/shop.sock", 1001, 7, 1000),
            "refusing control socket /x/shop.sock: its server (pid 7) runs as uid 1001, and only a server running "
            "as root or uid 1000 (this client's user) is believed, since another user's program could answer "
            "anything (to ask it, run the client as uid 1001)");
}

TEST(ConnectControl, ASocketInAPrivateDirectory) {
  TempDir dir;
  const Fd server = listen_at(dir.file("c.sock"));
  EXPECT_TRUE(connect_control(dir.file("c.sock"), ::geteuid()));
}

TEST(ConnectControl, MissingOrDeadIsUnreachableAsBefore) {
  TempDir dir;
  EXPECT_EQ(failure(dir.file("gone.sock")),
            "cannot connect to control socket " + dir.file("gone.sock") + ": No such file or directory");
  EXPECT_EQ(failure(dir.file("no/gone.sock")),
            "cannot connect to control socket " + dir.file("no/gone.sock") + ": No such file or directory");
  { const Fd closed = listen_at(dir.file("dead.sock")); }
  EXPECT_EQ(failure(dir.file("dead.sock")), "cannot connect to control socket " + dir.file("dead.sock") +
                                                ": Connection refused (nobody listens: the socket of an instance "
                                                "that was killed?)");
  EXPECT_EQ(failure_kind(dir.file("dead.sock")), ConnectFailure::Kind::unreachable);
}

TEST(ConnectControl, ADirectoryOthersMayWriteIsRefusedBeforeConnecting) {
  TempDir dir;
  const Fd server = listen_at(dir.file("c.sock"));
  ::chmod(dir.path().c_str(), 0777);
  EXPECT_EQ(failure(dir.file("c.sock")),
            "refusing control socket " + dir.file("c.sock") + ", since another user could have put it there: "
            "control socket directory " + dir.path() + ": " + dir.path() + " (mode 0777) is writable by its group "
            "and by others, who could swap a file in it for a link to another (chmod go-w " + dir.path() + ")");
  EXPECT_EQ(failure_kind(dir.file("c.sock")), ConnectFailure::Kind::untrusted);
  // Sticky like /tmp: others cannot rename ours, but could have made the name first.
  ::chmod(dir.path().c_str(), 01777);
  EXPECT_EQ(failure_kind(dir.file("c.sock")), ConnectFailure::Kind::untrusted);
  ::chmod(dir.path().c_str(), 0755);
  EXPECT_TRUE(connect_control(dir.file("c.sock"), ::geteuid()));
}

TEST(ConnectControl, AnAncestorOthersMayWriteIsRefused) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("inner").c_str(), 0700), 0);
  const Fd server = listen_at(dir.file("inner/c.sock"));
  ::chmod(dir.path().c_str(), 0770);
  EXPECT_THAT(failure(dir.file("inner/c.sock")),
              ::testing::HasSubstr(dir.path() + " (mode 0770) is writable by its group, who could swap"));
}

TEST(ConnectControl, ALinkAsTheLastNameIsFollowedAndItsTargetJudged) {
  TempDir dir;
  TempDir open;
  const Fd server = listen_at(dir.file("real.sock"));
  ASSERT_EQ(::symlink("real.sock", dir.file("link.sock").c_str()), 0);
  EXPECT_TRUE(connect_control(dir.file("link.sock"), ::geteuid()));

  const Fd planted = listen_at(open.file("planted.sock"));
  ::chmod(open.path().c_str(), 0777);
  ASSERT_EQ(::symlink(open.file("planted.sock").c_str(), dir.file("away.sock").c_str()), 0);
  EXPECT_EQ(failure_kind(dir.file("away.sock")), ConnectFailure::Kind::untrusted);
  EXPECT_THAT(failure(dir.file("away.sock")),
              ::testing::StartsWith("refusing control socket " + dir.file("away.sock") +
                                    ", since another user could have put it there: control socket directory " +
                                    open.path() + ": "));

  ASSERT_EQ(::symlink("loop.sock", dir.file("loop.sock").c_str()), 0);
  EXPECT_EQ(failure(dir.file("loop.sock")),
            "cannot connect to control socket " + dir.file("loop.sock") + ": Too many levels of symbolic links");
}

// A server that bound its socket as root and called listen() as nobody: SO_PEERCRED says who
// listened, so this is what a socket served by another user looks like to a client.
TEST(ConnectControl, AServerOfAnotherUidIsRefusedInATrustedDirectory) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run a server as another user";
  }
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  int ready[2];
  int done[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(done, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(done[1]);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, dir.file("c.sock").c_str(), sizeof(address.sun_path) - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    char byte = 0;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::setresgid(65534, 65534, 65534) == 0 && ::setresuid(65534, 65534, 65534) == 0 &&
                    ::listen(fd, 8) == 0 && ::write(ready[1], "r", 1) == 1;
    const ssize_t ignored = ::read(done[0], &byte, 1);  // until the test is done with it
    (void)ignored;
    ::_exit(ok ? 0 : 1);
  }
  ::close(ready[1]);
  ::close(done[0]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  const std::string path = dir.file("c.sock");
  EXPECT_EQ(failure(path), "refusing control socket " + path + ": its server (pid " + std::to_string(child) +
                               ") runs as uid 65534, and only a server running as root is believed, since another "
                               "user's program could answer anything (to ask it, run the client as uid 65534)");
  EXPECT_EQ(failure_kind(path), ConnectFailure::Kind::untrusted);
  ::close(done[1]);
  ::close(ready[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FindControlSockets, OnlyInTrustedDirectories) {
  TempDir trusted;
  TempDir planted;
  const Fd one = listen_at(trusted.file("shop.sock"));
  const Fd two = listen_at(planted.file("shop.sock"));
  ::chmod(planted.path().c_str(), 0777);
  const std::string missing = trusted.file("missing");
  const ControlSearch named = find_control_sockets({planted.path(), missing, trusted.path()}, "shop", ::geteuid());
  EXPECT_THAT(named.found, ElementsAre(trusted.file("shop.sock")));
  EXPECT_THAT(named.tried, ElementsAre(missing + "/shop.sock", trusted.file("shop.sock")));
  EXPECT_THAT(named.untrusted,
              ElementsAre("control socket directory " + planted.path() + ": " + planted.path() +
                          " (mode 0777) is writable by its group and by others, who could swap a file in it for a "
                          "link to another (chmod go-w " + planted.path() + ")"));

  const ControlSearch any = find_control_sockets({planted.path(), trusted.path()}, std::nullopt, ::geteuid());
  EXPECT_THAT(any.found, ElementsAre(trusted.file("shop.sock")));
  EXPECT_THAT(any.tried, ElementsAre(trusted.path() + "/*.sock"));
  EXPECT_EQ(any.untrusted.size(), 1u);
}

TEST(FindControlSockets, EverySocketOfATrustedDirectoryInOrderAndNothingElse) {
  TempDir dir;
  const Fd b = listen_at(dir.file("b.sock"));
  const Fd a = listen_at(dir.file("a.sock"));
  testing_support::TempDir other;
  const Fd c = listen_at(other.file("c.sock"));
  ASSERT_EQ(::symlink(other.file("c.sock").c_str(), dir.file("link.sock").c_str()), 0);  // not a socket itself
  ASSERT_EQ(::mkdir(dir.file("d.sock").c_str(), 0700), 0);
  const ControlSearch search = find_control_sockets({dir.path()}, std::nullopt, ::geteuid());
  EXPECT_THAT(search.found, ElementsAre(dir.file("a.sock"), dir.file("b.sock")));
  EXPECT_THAT(search.untrusted, IsEmpty());
}

}  // namespace
}  // namespace clusterd
