// Socket activation with real sockets: taking fds 3.. from the environment (in a forked child,
// set up the way systemd does it) and adopting them as listeners by name, by address or in order.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "address.h"
#include "socket_activation.h"
#include "test_support.h"

namespace clusterd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_support::EnvGuard;
using testing_support::TempDir;

// A socket as systemd would pass it: bound, and listening unless `listening` is false.
Fd tcp_socket(const char* host = "127.0.0.1", int backlog = 16, bool listening = true, int type = SOCK_STREAM) {
  Fd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  ::inet_pton(AF_INET, host, &address.sin_addr);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  if (listening) {
    EXPECT_EQ(::listen(fd.get(), backlog), 0);
  }
  return fd;
}

Fd unix_socket(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 16), 0);
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  if (local.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
}

std::string loopback(int fd) { return "127.0.0.1:" + std::to_string(port_of(fd)); }

ListenerConfig listener_config(std::string name, std::string_view address_text) {
  ListenerConfig config;
  config.name = std::move(name);
  auto address = parse_address(address_text);
  EXPECT_TRUE(address.has_value()) << address_text;
  config.address = address.value_or(Address{});
  return config;
}

std::vector<InheritedSocket> inherited(std::vector<std::pair<std::string, Fd*>> sockets) {
  std::vector<InheritedSocket> result;
  for (auto& [name, fd] : sockets) {
    result.push_back({std::move(*fd), name});
  }
  return result;
}

// The ListenError adopt_listeners throws, or "" if it adopted.
std::string adoption_error(std::vector<InheritedSocket> sockets, const std::vector<ListenerConfig>& listeners) {
  try {
    adopt_listeners(std::move(sockets), listeners);
  } catch (const ListenError& error) {
    return error.what();
  }
  return "";
}

// ---- adopt_listeners ------------------------------------------------------------------------

TEST(AdoptListeners, WithoutConfiguredListenersTakesAllInOrderNamedBySystemdOrByPosition) {
  TempDir dir;
  Fd http = tcp_socket();
  Fd plain = tcp_socket();
  Fd unknown = unix_socket(dir.file("app.sock"));
  const std::string http_address = loopback(http.get());
  const std::string plain_address = loopback(plain.get());
  const int http_fd = http.get();
  const auto listeners =
      adopt_listeners(inherited({{"http", &http}, {"", &plain}, {"unknown", &unknown}}), /*listeners=*/{});
  ASSERT_EQ(listeners.size(), 3u);
  EXPECT_EQ(listeners[0].name(), "http");
  EXPECT_EQ(listeners[0].bound_address(), http_address);
  EXPECT_EQ(listeners[0].fd(), http_fd);  // the very socket systemd passed, not a new one
  EXPECT_EQ(listeners[1].name(), "fd4");
  EXPECT_EQ(listeners[1].bound_address(), plain_address);
  EXPECT_EQ(listeners[2].name(), "fd5");
  EXPECT_EQ(listeners[2].bound_address(), "unix:" + dir.file("app.sock"));
}

TEST(AdoptListeners, AConfiguredListenerTakesTheSocketOfItsName) {
  Fd admin = tcp_socket();
  Fd http = tcp_socket();
  const std::string http_address = loopback(http.get());
  const std::string admin_address = loopback(admin.get());
  // The configured addresses differ from what systemd bound: the name decides (and a warning
  // says so), because the socket unit is what the operator runs.
  const auto listeners = adopt_listeners(inherited({{"admin", &admin}, {"http", &http}}),
                                         {listener_config("http", "127.0.0.1:1"), listener_config("admin", "9000")});
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[0].name(), "http");
  EXPECT_EQ(listeners[0].bound_address(), http_address);
  EXPECT_EQ(listeners[1].name(), "admin");
  EXPECT_EQ(listeners[1].bound_address(), admin_address);
}

TEST(AdoptListeners, AConfiguredListenerTakesTheSocketBoundToItsAddress) {
  Fd first = tcp_socket();
  Fd second = tcp_socket();
  const std::string first_address = loopback(first.get());
  const std::string second_address = loopback(second.get());
  // systemd's default name is the unit's; nothing matches by name.
  const auto listeners =
      adopt_listeners(inherited({{"clusterd.socket", &first}, {"clusterd.socket", &second}}),
                      {listener_config("web", second_address), listener_config("api", first_address)});
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[0].name(), "web");
  EXPECT_EQ(listeners[0].bound_address(), second_address);
  EXPECT_EQ(listeners[1].name(), "api");
  EXPECT_EQ(listeners[1].bound_address(), first_address);
}

TEST(AdoptListeners, AUnixListenerMatchesByPathAndItsFileIsNeverRemoved) {
  TempDir dir;
  const std::string path = dir.file("app.sock");
  Fd socket = unix_socket(path);
  {
    const auto listeners =
        adopt_listeners(inherited({{"clusterd.socket", &socket}}), {listener_config("app", "unix:" + path)});
    ASSERT_EQ(listeners.size(), 1u);
    EXPECT_EQ(listeners[0].bound_address(), "unix:" + path);
  }
  EXPECT_TRUE(std::filesystem::exists(path));  // the socket unit owns the file (interface §5)
}

TEST(AdoptListeners, ADualStackListenerMatchesTheAnyAddressSocket) {
  Fd socket(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) {
    GTEST_SKIP() << "no IPv6 here";
  }
  const int off = 0;
  ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_any;
  ASSERT_EQ(::bind(socket.get(), reinterpret_cast<const sockaddr*>(&any), sizeof(any)), 0);
  ASSERT_EQ(::listen(socket.get(), 16), 0);
  const std::string port = std::to_string(port_of(socket.get()));
  const auto listeners = adopt_listeners(inherited({{"x", &socket}}), {listener_config("web", port)});
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0].bound_address(), "[::]:" + port);
}

TEST(AdoptListeners, NeitherListensAgainNorChangesTheBacklog) {
  Fd socket = tcp_socket("127.0.0.1", /*backlog=*/7);
  const auto listeners = adopt_listeners(inherited({{"http", &socket}}), {});
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0].backlog(), 7);
  tcp_info info{};
  socklen_t length = sizeof(info);
  ASSERT_EQ(::getsockopt(listeners[0].fd(), IPPROTO_TCP, TCP_INFO, &info, &length), 0);
  EXPECT_EQ(info.tcpi_sacked, 7u);  // a listener's sk_max_ack_backlog
}

TEST(AdoptListeners, RefusesAnAcceptYesConnectionSocketClearly) {
  Fd socket = tcp_socket();
  EXPECT_THAT(adoption_error(inherited({{"connection", &socket}}), {}),
              AllOf(HasSubstr("socket activation: inherited fd3 \"connection\""),
                    HasSubstr("a per-connection socket (Accept=yes); clusterd needs the listening socket itself: "
                              "set Accept=no in the socket unit")));
}

TEST(AdoptListeners, RefusesADatagramSocket) {
  Fd socket = tcp_socket("127.0.0.1", 0, /*listening=*/false, SOCK_DGRAM);
  const std::string address = loopback(socket.get());
  EXPECT_EQ(adoption_error(inherited({{"dns", &socket}}), {}),
            "socket activation: inherited fd3 \"dns\" (" + address +
                "): not a stream socket (only ListenStream= sockets can be passed to workers)");
}

TEST(AdoptListeners, RefusesASocketThatIsNotListening) {
  Fd socket = tcp_socket("127.0.0.1", 0, /*listening=*/false);
  const std::string address = loopback(socket.get());
  EXPECT_EQ(adoption_error(inherited({{"http", &socket}}), {listener_config("http", address)}),
            "socket activation: inherited fd3 \"http\" (" + address + "): not listening");
}

TEST(AdoptListeners, AnInheritedSocketNobodyTakesIsAnError) {
  Fd http = tcp_socket();
  Fd extra = tcp_socket();
  const std::string extra_address = loopback(extra.get());
  EXPECT_EQ(
      adoption_error(inherited({{"http", &http}, {"extra", &extra}}), {listener_config("http", loopback(http.get()))}),
      "socket activation: inherited fd4 \"extra\" (" + extra_address + "): no [[listen]] has its name or address");
}

TEST(AdoptListeners, AListenerWithoutAnInheritedSocketIsAnError) {
  Fd http = tcp_socket();
  EXPECT_EQ(adoption_error(inherited({{"http", &http}}),
                           {listener_config("http", "8000"), listener_config("admin", "127.0.0.1:9")}),
            "socket activation: listener \"admin\" (127.0.0.1:9): no inherited socket has its name or address");
}

TEST(AdoptListeners, ReportsEveryProblemAtOnce) {
  Fd connection = tcp_socket();
  Fd stray = tcp_socket();
  const std::string message = adoption_error(inherited({{"connection", &connection}, {"stray", &stray}}),
                                             {listener_config("web", "127.0.0.1:9")});
  EXPECT_THAT(message, HasSubstr("inherited fd3 \"connection\""));
  EXPECT_THAT(message, HasSubstr("listener \"web\" (127.0.0.1:9): no inherited socket"));
  EXPECT_THAT(message, HasSubstr("inherited fd4 \"stray\""));
}

TEST(AdoptListeners, AnFdThatWasNotOpenIsAnError) {
  std::vector<InheritedSocket> sockets;
  sockets.push_back({Fd(), "http"});
  EXPECT_EQ(adoption_error(std::move(sockets), {}),
            "socket activation: inherited fd3 \"http\": not an open file descriptor");
}

// ---- take_inherited_sockets -----------------------------------------------------------------

TEST(TakeInheritedSockets, TakesNothingAndLeavesTheVariablesWhenListenPidIsAnotherProcess) {
  const EnvGuard env{{"LISTEN_PID", std::to_string(::getppid())}, {"LISTEN_FDS", "1"}, {"LISTEN_FDNAMES", "http"}};
  EXPECT_TRUE(take_inherited_sockets().empty());
  EXPECT_NE(std::getenv("LISTEN_PID"), nullptr);
  EXPECT_NE(std::getenv("LISTEN_FDS"), nullptr);
  EXPECT_NE(std::getenv("LISTEN_FDNAMES"), nullptr);
}

TEST(TakeInheritedSockets, TakesNothingWithoutListenPid) {
  const EnvGuard env{{"LISTEN_PID", std::nullopt}, {"LISTEN_FDS", "1"}};
  EXPECT_TRUE(take_inherited_sockets().empty());
}

std::string pidfd_id_of_self() {
  const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0U)));
  struct stat status {};
  if (!pidfd || ::fstat(pidfd.get(), &status) != 0) {
    return "0";
  }
  return std::to_string(status.st_ino);
}

// In a forked child: two listening sockets at fds 3 and 4 without close-on-exec and the
// variables set for the child's pid, as systemd's exec does (protocols §1.2); then
// take_inherited_sockets(). Returns the child's report, one line per finding.
std::string take_in_child(const char* names, bool wrong_pidfd_id = false) {
  int ends[2] = {-1, -1};
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2";
    return {};
  }
  Fd read_end(ends[0]);
  Fd write_end(ends[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Out of the way of 3 and 4, where the sockets go.
    const int report_fd = ::fcntl(write_end.get(), F_DUPFD_CLOEXEC, 100);
    std::string report;
    Fd first = tcp_socket();
    Fd second = tcp_socket();
    const std::uint16_t first_port = port_of(first.get());
    const std::uint16_t second_port = port_of(second.get());
    ::dup2(first.get(), 3);
    ::dup2(second.get(), 4);
    first.reset();
    second.reset();
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    if (names != nullptr) {
      ::setenv("LISTEN_FDNAMES", names, 1);
    }
    ::setenv("LISTEN_PIDFDID", wrong_pidfd_id ? "1" : pidfd_id_of_self().c_str(), 1);
    std::vector<InheritedSocket> taken = take_inherited_sockets();
    report += "count=" + std::to_string(taken.size()) + "\n";
    for (std::size_t i = 0; i < taken.size(); ++i) {
      const int fd = taken[i].fd.get();
      const bool cloexec = (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
      const std::uint16_t expected_port = i == 0 ? first_port : second_port;
      report += "name=" + taken[i].name + " above=" + (fd >= 5 ? "yes" : "no") +
                " cloexec=" + (cloexec ? "yes" : "no") +
                " same_socket=" + (port_of(fd) == expected_port ? "yes" : "no") + "\n";
    }
    for (const int original : {3, 4}) {
      const bool open = ::fcntl(original, F_GETFD) != -1;
      report += "fd" + std::to_string(original) + "=" + (open ? "open" : "closed") + "\n";
    }
    for (const char* variable : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID"}) {
      report += std::string(variable) + "=" + (std::getenv(variable) == nullptr ? "unset" : "set") + "\n";
    }
    const bool written = ::write(report_fd, report.data(), report.size()) == static_cast<ssize_t>(report.size());
    ::_exit(written ? 0 : 1);
  }
  write_end.reset();
  return testing_support::read_child_report(read_end, pid);
}

TEST(TakeInheritedSockets, MovesTheSocketsAboveTheRangeClosesTheOriginalsAndUnsetsTheVariables) {
  EXPECT_EQ(take_in_child("http:admin"),
            "count=2\n"
            "name=http above=yes cloexec=yes same_socket=yes\n"
            "name=admin above=yes cloexec=yes same_socket=yes\n"
            "fd3=closed\nfd4=closed\n"
            "LISTEN_PID=unset\nLISTEN_FDS=unset\nLISTEN_FDNAMES=unset\nLISTEN_PIDFDID=unset\n");
}

TEST(TakeInheritedSockets, WithoutNamesOrWithTheWrongCountOfNamesTheNamesAreEmpty) {
  const std::string expected =
      "count=2\n"
      "name= above=yes cloexec=yes same_socket=yes\n"
      "name= above=yes cloexec=yes same_socket=yes\n"
      "fd3=closed\nfd4=closed\n"
      "LISTEN_PID=unset\nLISTEN_FDS=unset\nLISTEN_FDNAMES=unset\nLISTEN_PIDFDID=unset\n";
  EXPECT_EQ(take_in_child(nullptr), expected);
  EXPECT_EQ(take_in_child("only-one"), expected);
}

TEST(TakeInheritedSockets, APidfdIdOfAnotherProcessTakesNothing) {
  const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0U)));
  struct stat self {};
  struct stat other {};
  const Fd parent_pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getppid(), 0U)));
  if (!pidfd || !parent_pidfd || ::fstat(pidfd.get(), &self) != 0 || ::fstat(parent_pidfd.get(), &other) != 0 ||
      self.st_ino == other.st_ino) {
    GTEST_SKIP() << "pidfds have no ids of their own on this kernel (no pidfs)";
  }
  EXPECT_EQ(take_in_child("http:admin", /*wrong_pidfd_id=*/true),
            "count=0\nfd3=open\nfd4=open\n"
            "LISTEN_PID=unset\nLISTEN_FDS=unset\nLISTEN_FDNAMES=unset\nLISTEN_PIDFDID=unset\n");
}

}  // namespace
}  // namespace clusterd
