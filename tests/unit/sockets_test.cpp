// Listening sockets on loopback and in private temp dirs: binding, options, unix socket files,
// listening again, at the same address, after a worker's shutdown(); per-slot SO_REUSEPORT groups.
#include "sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "address.h"
#include "listener_sockets.h"

namespace clusterd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A deadline for events that must already have happened; reaching it fails the test.
constexpr int event_timeout_ms = 10'000;

// A shared listener unless a test says otherwise (left unset, a TCP listener is per-slot where
// clusterd can steer: UnsetReuseport below).
ListenerConfig listener_config(std::string_view address_text, std::string name = "fd3") {
  ListenerConfig config;
  config.name = std::move(name);
  config.reuseport = ReusePort::shared;
  auto address = parse_address(address_text);
  EXPECT_TRUE(address.has_value()) << address_text;
  config.address = address.value_or(Address{});
  config.ipv6_only = config.address.family == AddressFamily::ipv6 && !config.address.any_dual_stack;
  return config;
}

Listener open_one(const ListenerConfig& config) {
  std::vector<Listener> listeners = open_listeners({config});
  EXPECT_EQ(listeners.size(), 1u);
  return std::move(listeners.front());
}

// Short, private path: sun_path holds 107 bytes (style §8).
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/cd-sock-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

// A client connection to `bound_address` as Listener::bound_address() writes it; -1 on failure.
Fd connect_to(const std::string& bound_address, bool via_ipv4_loopback = false) {
  const auto address = parse_address(bound_address);
  if (!address) {
    ADD_FAILURE() << address.error();
    return Fd();
  }
  if (address->family == AddressFamily::unix_path) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_un target = unix_address(address->path);
    return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0 ? std::move(fd)
                                                                                                   : Fd();
  }
  if (address->family == AddressFamily::ipv4 || via_ipv4_loopback) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(address->port);
    ::inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
    return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0 ? std::move(fd)
                                                                                                   : Fd();
  }
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 target{};
  target.sin6_family = AF_INET6;
  target.sin6_port = htons(address->port);
  ::inet_pton(AF_INET6, "::1", &target.sin6_addr);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0 ? std::move(fd)
                                                                                                 : Fd();
}

// Waits for a queued connection on the listener and accepts it.
Fd accept_one(const Listener& listener) {
  pollfd ready{listener.fd(), POLLIN, 0};
  if (::poll(&ready, 1, event_timeout_ms) != 1) {
    ADD_FAILURE() << "no connection arrived on " << listener.bound_address();
    return Fd();
  }
  return Fd(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
}

int int_option(int fd, int level, int option) {
  int value = -1;
  socklen_t length = sizeof(value);
  EXPECT_EQ(::getsockopt(fd, level, option, &value, &length), 0) << std::strerror(errno);
  return value;
}

bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

bool ipv6_loopback_available() {
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  return fd && ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
}

std::string listen_error_of(const std::vector<ListenerConfig>& configs) {
  try {
    open_listeners(configs);
  } catch (const ListenError& error) {
    return error.what();
  }
  ADD_FAILURE() << "open_listeners did not fail";
  return {};
}

// A unix socket bound at `path` by someone else; listening or not.
Fd bind_unix(const std::string& path, bool listening) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un address = unix_address(path);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  if (listening) {
    EXPECT_EQ(::listen(fd.get(), 8), 0);
  }
  return fd;
}

// Collects what is logged while it lives ("<level> <message>" lines).
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(text_);
    auto logger = std::make_shared<spdlog::logger>("captured", std::move(sink));
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(std::move(logger));
  }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

// What a worker does to the socket it inherited: shutdown() on its own copy, which stops the
// one socket every holder shares. The copy stays open, as in a worker that lives on.
Fd shut_down_as_a_worker(const Listener& listener, int how = SHUT_RDWR) {
  Fd worker_copy(::fcntl(listener.fd(), F_DUPFD_CLOEXEC, 0));
  EXPECT_EQ(::shutdown(worker_copy.get(), how), 0) << std::strerror(errno);
  return worker_copy;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(OpenListeners, PortZeroGetsARealPortThatAcceptsConnections) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  EXPECT_THAT(listener.bound_address(), StartsWith("127.0.0.1:"));
  EXPECT_NE(listener.bound_address(), "127.0.0.1:0");
  EXPECT_EQ(listener.name(), "fd3");
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(OpenListeners, TcpListenersHaveReuseAddrAndAreListening) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  EXPECT_EQ(int_option(listener.fd(), SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(int_option(listener.fd(), SOL_SOCKET, SO_ACCEPTCONN), 1);
}

TEST(OpenListeners, Ipv6ListenersSetV6OnlyFromTheConfig) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  // Only the any address shows the flag as configured: binding a specific IPv6 address
  // makes the kernel set IPV6_V6ONLY by itself, since it can never see IPv4 traffic.
  ListenerConfig v6_only = listener_config("[::]:0");
  v6_only.ipv6_only = true;
  ListenerConfig both = listener_config("[::]:0");
  both.ipv6_only = false;
  std::vector<Listener> listeners = open_listeners({v6_only, both});
  EXPECT_EQ(int_option(listeners[0].fd(), IPPROTO_IPV6, IPV6_V6ONLY), 1);
  EXPECT_EQ(int_option(listeners[1].fd(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
}

TEST(OpenListeners, Ipv6LoopbackAcceptsConnections) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  Listener listener = open_one(listener_config("[::1]:0"));
  EXPECT_THAT(listener.bound_address(), StartsWith("[::1]:"));
  EXPECT_NE(listener.bound_address(), "[::1]:0");
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(OpenListeners, DualStackAnyAddressAcceptsIpv4Connections) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "no IPv6 here";
  }
  Listener listener = open_one(listener_config(":0"));
  EXPECT_THAT(listener.bound_address(), StartsWith("[::]:"));
  EXPECT_EQ(int_option(listener.fd(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
  Fd client = connect_to(listener.bound_address(), /*via_ipv4_loopback=*/true);
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(OpenListeners, ASecondBindOfTheSamePortFailsNamingTheAddress) {
  Listener first = open_one(listener_config("127.0.0.1:0"));
  EXPECT_EQ(listen_error_of({listener_config(first.bound_address())}),
            "listener \"fd3\": bind " + first.bound_address() + ": Address already in use");
}

TEST(OpenListeners, CapsTheBacklogAtSomaxconn) {
  std::ifstream file("/proc/sys/net/core/somaxconn");
  int somaxconn = 0;
  ASSERT_TRUE(file >> somaxconn);
  ListenerConfig huge = listener_config("127.0.0.1:0");
  huge.backlog = somaxconn + 1000;
  ListenerConfig small = listener_config("127.0.0.1:0");
  small.backlog = 7;
  std::vector<Listener> listeners = open_listeners({huge, small});
  EXPECT_EQ(listeners[0].backlog(), somaxconn);
  EXPECT_EQ(listeners[1].backlog(), 7);
}

TEST(OpenListeners, EveryListenerIsCloseOnExec) {
  TempDir dir;
  std::vector<Listener> listeners =
      open_listeners({listener_config("127.0.0.1:0"), listener_config("unix:" + dir.file("a.sock"))});
  for (const Listener& listener : listeners) {
    EXPECT_TRUE(is_cloexec(listener.fd())) << listener.bound_address();
  }
}

TEST(OpenListeners, AUnixSocketGetsTheConfiguredMode) {
  TempDir dir;
  ListenerConfig private_socket = listener_config("unix:" + dir.file("private.sock"));
  private_socket.mode = 0600;
  ListenerConfig group_socket = listener_config("unix:" + dir.file("group.sock"));
  std::vector<Listener> listeners = open_listeners({private_socket, group_socket});
  struct stat status {};
  ASSERT_EQ(::stat(dir.file("private.sock").c_str(), &status), 0);
  EXPECT_TRUE(S_ISSOCK(status.st_mode));
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(dir.file("group.sock").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0660u);
  EXPECT_EQ(listeners[0].bound_address(), "unix:" + dir.file("private.sock"));
}

TEST(OpenListeners, AUnixListenerAcceptsConnections) {
  TempDir dir;
  Listener listener = open_one(listener_config("unix:" + dir.file("a.sock")));
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(OpenListeners, AStaleUnixSocketFileIsReplaced) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  bind_unix(path, /*listening=*/false);  // closed at once: the file stays, nobody listens
  ASSERT_TRUE(std::filesystem::exists(path));
  Listener listener = open_one(listener_config("unix:" + path));
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(OpenListeners, ALiveUnixSocketIsRefusedAndLeftAlone) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  Fd other = bind_unix(path, /*listening=*/true);
  EXPECT_EQ(listen_error_of({listener_config("unix:" + path)}),
            "listener \"fd3\": unix:" + path + ": address in use (another process is listening)");
  Fd client = connect_to("unix:" + path);
  EXPECT_TRUE(client);
}

TEST(OpenListeners, ARegularFileAtTheUnixPathIsRefused) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  std::ofstream(path) << "data";
  EXPECT_EQ(listen_error_of({listener_config("unix:" + path)}),
            "listener \"fd3\": unix:" + path +
                ": the path exists and is not a socket; remove it or choose another path");
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(OpenListeners, AUnixBindErrorNamesTheAddress) {
  // /proc is root's and writable by no one, so trusted; procfs refuses to create any file.
  const std::string path = "/proc/clusterd-unit-test.sock";
  EXPECT_EQ(listen_error_of({listener_config("unix:" + path)}),
            "listener \"fd3\": bind unix:" + path + ": No such file or directory");
}

TEST(OpenListeners, AMissingUnixSocketDirectoryIsNamed) {
  TempDir dir;
  const std::string path = dir.file("missing/a.sock");
  EXPECT_EQ(listen_error_of({listener_config("unix:" + path)}),
            "listener \"fd3\": unix:" + path + ": unix socket directory " + dir.file("missing") + ": cannot open " +
                dir.file("missing") + ": No such file or directory");
}

TEST(OpenListeners, AUnixSocketDirectoryOthersCanWriteIsRefusedBeforeAnythingIsDoneThere) {
  TempDir dir;
  const std::string sockets = dir.file("sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(sockets.c_str(), 0777), 0);
  // A stale socket file there is left alone too: its unlink() is one of the calls refused.
  const std::string path = sockets + "/a.sock";
  bind_unix(path, false).reset();  // closed: a stale file
  EXPECT_EQ(listen_error_of({listener_config("unix:" + path)}),
            "listener \"fd3\": unix:" + path + ": unix socket directory " + sockets + ": " + sockets +
                " (mode 0777) is writable by its group and by others, who could swap a file in it for a link to another (chmod go-w " +
                sockets + ")");
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(OpenListeners, AUnixSocketDirectoryOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another user needs root";
  }
  TempDir dir;
  const std::string sockets = dir.file("sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0755), 0);
  ASSERT_EQ(::chown(sockets.c_str(), 65534, 65534), 0);
  EXPECT_THAT(listen_error_of({listener_config("unix:" + sockets + "/a.sock")}),
              HasSubstr(sockets + " is owned by uid 65534, who could swap a file in it for a link to another; "
                                  "only root may own it (chown root " + sockets + ")"));
}

TEST(OpenListeners, AUnixSocketFileIsBornWithItsModeWhateverTheUmask) {
  TempDir dir;
  const mode_t previous = ::umask(0);  // the widest umask: the mode alone decides
  ListenerConfig config = listener_config("unix:" + dir.file("a.sock"));
  config.mode = 0640;
  Listener listener = open_one(config);
  EXPECT_EQ(::umask(previous), 0u);  // and the process umask is back as it was
  struct stat status {};
  ASSERT_EQ(::lstat(dir.file("a.sock").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0640u);
}

TEST(Listener, UnixDirectoryProblemSaysWhenTheDirectoryWasOpenedToOthers) {
  TempDir dir;
  Listener tcp = open_one(listener_config("127.0.0.1:0"));
  EXPECT_EQ(tcp.unix_directory_problem(), std::nullopt);
  const std::string sockets = dir.file("sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0700), 0);
  Listener listener = open_one(listener_config("unix:" + sockets + "/a.sock"));
  EXPECT_EQ(listener.unix_directory_problem(), std::nullopt);
  ASSERT_EQ(::chmod(sockets.c_str(), 0777), 0);
  EXPECT_THAT(listener.unix_directory_problem().value_or(""),
              StartsWith("unix:" + sockets + "/a.sock: unix socket directory " + sockets + ": "));
}

TEST(Listener, EnsureListeningDoesNotReplaceAUnixSocketInADirectoryOpenedToOthers) {
  TempDir dir;
  const std::string sockets = dir.file("sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0700), 0);
  const std::string path = sockets + "/a.sock";
  Listener listener = open_one(listener_config("unix:" + path));
  struct stat before {};
  ASSERT_EQ(::lstat(path.c_str(), &before), 0);
  Fd worker_copy = shut_down_as_a_worker(listener);
  ASSERT_EQ(::chmod(sockets.c_str(), 0777), 0);
  std::string log;
  {
    CapturedLog captured;
    EXPECT_FALSE(listener.ensure_listening());
    log = captured.text();
  }
  EXPECT_THAT(log, HasSubstr("error listener stopped by a worker and cannot listen again name=fd3 address=unix:" +
                             path + " error=\"unix socket directory " + sockets + ": "));
  EXPECT_THAT(log, HasSubstr("the socket stays stopped until the directory is fixed and a worker exits again"));
  struct stat after {};
  ASSERT_EQ(::lstat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // neither unlinked nor bound again
  ASSERT_EQ(::chmod(sockets.c_str(), 0700), 0);
  EXPECT_TRUE(listener.ensure_listening());  // fixed: replaced at the next chance
}

TEST(OpenListeners, AFailureClosesTheListenersAlreadyOpened) {
  TempDir dir;
  Listener taken = open_one(listener_config("127.0.0.1:0"));
  const std::string path = dir.file("a.sock");
  EXPECT_THAT(listen_error_of({listener_config("unix:" + path), listener_config(taken.bound_address())}),
              StartsWith("listener \"fd3\": bind " + taken.bound_address() + ": "));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Listener, RemovesItsUnixSocketFileOnDestruction) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  {
    Listener listener = open_one(listener_config("unix:" + path));
    EXPECT_TRUE(std::filesystem::is_socket(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Listener, LeavesAFileThatReplacedItsSocket) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  {
    Listener listener = open_one(listener_config("unix:" + path));
    ASSERT_EQ(::unlink(path.c_str()), 0);
    std::ofstream(path) << "someone else's";
  }
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(Listener, LeavesASocketThatAnotherProcessBoundInItsPlace) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  Fd other;
  {
    Listener listener = open_one(listener_config("unix:" + path));
    ASSERT_EQ(::unlink(path.c_str()), 0);
    other = bind_unix(path, /*listening=*/true);
  }
  EXPECT_TRUE(std::filesystem::is_socket(path));
}

TEST(Listener, AMovedFromListenerLeavesTheFileToItsSuccessor) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  std::vector<Listener> listeners = open_listeners({listener_config("unix:" + path)});
  {
    Listener moved_from = std::move(listeners.front());
    Listener successor(std::move(moved_from));
    listeners.clear();
    EXPECT_TRUE(std::filesystem::is_socket(path));
    Listener assigned = open_one(listener_config("127.0.0.1:0"));
    assigned = std::move(successor);
    EXPECT_TRUE(std::filesystem::is_socket(path));
    EXPECT_EQ(assigned.bound_address(), "unix:" + path);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Listener, EnsureListeningDoesNothingWhileListening) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  const std::string before = listener.bound_address();
  EXPECT_FALSE(listener.ensure_listening());
  EXPECT_EQ(listener.bound_address(), before);
}

TEST(Listener, EnsureListeningListensAgainAfterAWorkersShutdown) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  // What a worker's shutdown() on its inherited copy does to the shared socket.
  ASSERT_EQ(::shutdown(listener.fd(), SHUT_RD), 0);
  ASSERT_EQ(int_option(listener.fd(), SOL_SOCKET, SO_ACCEPTCONN), 0);
  EXPECT_TRUE(listener.ensure_listening());
  EXPECT_EQ(int_option(listener.fd(), SOL_SOCKET, SO_ACCEPTCONN), 1);
  EXPECT_THAT(listener.bound_address(), StartsWith("127.0.0.1:"));
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
  EXPECT_FALSE(listener.ensure_listening());
}

TEST(Listener, EnsureListeningKeepsThePortTheKernelPickedForPortZero) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  const std::string logged = listener.bound_address();
  Fd worker_copy = shut_down_as_a_worker(listener);
  ASSERT_FALSE(connect_to(logged));
  EXPECT_TRUE(listener.ensure_listening());
  EXPECT_EQ(listener.bound_address(), logged);
  Fd client = connect_to(logged);
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(Listener, EnsureListeningKeepsThePortAfterASecondShutdown) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  const std::string logged = listener.bound_address();
  shut_down_as_a_worker(listener);
  ASSERT_TRUE(listener.ensure_listening());
  shut_down_as_a_worker(listener);  // now bound by number: the kernel keeps the port
  EXPECT_TRUE(listener.ensure_listening());
  EXPECT_EQ(listener.bound_address(), logged);
  Fd client = connect_to(logged);
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(Listener, EnsureListeningReportsAPortTakenMeanwhileAndRetriesLater) {
  Listener listener = open_one(listener_config("127.0.0.1:0"));
  const std::string logged = listener.bound_address();
  shut_down_as_a_worker(listener);
  // Another process grabs the port the kernel took back.
  std::vector<Listener> others = open_listeners({listener_config(logged, "other")});
  {
    CapturedLog log;
    EXPECT_FALSE(listener.ensure_listening());
    EXPECT_THAT(log.text(), HasSubstr("error listener stopped by a worker and cannot listen again name=fd3 address=" +
                                      logged + " error=\"bind: Address already in use\""));
  }
  others.clear();
  EXPECT_TRUE(listener.ensure_listening());
  Fd client = connect_to(logged);
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(Listener, EnsureListeningLeavesAUnixListenerWithQueuedConnectionsAlone) {
  TempDir dir;
  Listener listener = open_one(listener_config("unix:" + dir.file("a.sock")));
  const int fd = listener.fd();
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_FALSE(listener.ensure_listening());
  EXPECT_EQ(listener.fd(), fd);
  EXPECT_TRUE(accept_one(listener));
}

TEST(Listener, EnsureListeningReplacesAUnixListenerAWorkerShutDown) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  ListenerConfig config = listener_config("unix:" + path, "web");
  config.mode = 0600;
  Listener listener = open_one(config);
  const int stopped = listener.fd();
  Fd worker_copy = shut_down_as_a_worker(listener);
  // The socket still says it accepts connections, but refuses them all.
  ASSERT_EQ(int_option(stopped, SOL_SOCKET, SO_ACCEPTCONN), 1);
  ASSERT_FALSE(connect_to(listener.bound_address()));
  {
    CapturedLog log;
    EXPECT_TRUE(listener.ensure_listening());
    EXPECT_THAT(log.text(), HasSubstr("warning unix listener replaced by a new socket at the same path name=web "
                                      "address=unix:" + path + " "));
  }
  EXPECT_EQ(listener.bound_address(), "unix:" + path);
  EXPECT_TRUE(is_cloexec(listener.fd()));
  EXPECT_TRUE(is_open(worker_copy.get()));  // a worker's copy is the worker's business
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_TRUE(S_ISSOCK(status.st_mode));
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
  EXPECT_FALSE(listener.ensure_listening());
}

TEST(Listener, EnsureListeningNoticesAUnixListenerShutDownForReadingOnly) {
  TempDir dir;
  Listener listener = open_one(listener_config("unix:" + dir.file("a.sock")));
  shut_down_as_a_worker(listener, SHUT_RD);
  ASSERT_FALSE(connect_to(listener.bound_address()));
  EXPECT_TRUE(listener.ensure_listening());
  Fd client = connect_to(listener.bound_address());
  ASSERT_TRUE(client);
  EXPECT_TRUE(accept_one(listener));
}

TEST(Listener, AReplacedUnixSocketFileIsStillRemovedOnDestruction) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  {
    Listener listener = open_one(listener_config("unix:" + path));
    shut_down_as_a_worker(listener);
    ASSERT_TRUE(listener.ensure_listening());
    EXPECT_TRUE(std::filesystem::is_socket(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Listener, EnsureListeningLeavesAFileThatTookTheStoppedUnixSocketsPlace) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  Listener listener = open_one(listener_config("unix:" + path));
  shut_down_as_a_worker(listener);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  std::ofstream(path) << "someone else's";
  CapturedLog log;
  EXPECT_FALSE(listener.ensure_listening());
  EXPECT_THAT(log.text(), HasSubstr("error listener stopped by a worker and cannot listen again name=fd3 "
                                    "address=unix:" + path +
                                    " error=\"the path no longer names clusterd's socket file; left alone\""));
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(Listener, EnsureListeningCannotReplaceAUnixSocketWhoseFileIsNotOurs) {
  TempDir dir;
  const std::string path = dir.file("a.sock");
  // As adopt_listeners builds it from systemd's socket: no file of ours to replace.
  Listener listener("web", "unix:" + path, bind_unix(path, /*listening=*/true), 16, "");
  shut_down_as_a_worker(listener);
  CapturedLog log;
  EXPECT_FALSE(listener.ensure_listening());
  EXPECT_THAT(log.text(), HasSubstr("error listener stopped by a worker and cannot listen again name=web "
                                    "address=unix:" + path +
                                    " error=\"a unix socket cannot listen again after shutdown()"));
  EXPECT_TRUE(std::filesystem::is_socket(path));
}

// ----- per-slot listeners (reuseport = "per-slot")

ListenerConfig per_slot_config(std::string_view address_text, std::string name = "http") {
  ListenerConfig config = listener_config(address_text, std::move(name));
  config.reuseport = ReusePort::per_slot;
  return config;
}

ListenerSockets per_slot_group(const ListenerConfig& config, int slots) {
  ListenerSockets group(config, open_one(config));
  group.open_slots(slots);
  return group;
}

std::uint16_t local_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0) << std::strerror(errno);
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

ino_t inode_of(int fd) {
  struct stat status {};
  EXPECT_EQ(::fstat(fd, &status), 0) << std::strerror(errno);
  return status.st_ino;
}

int fd_of(ListenerSockets& group, int slot) {
  const auto fd = group.fd_for(slot);
  EXPECT_TRUE(fd.has_value()) << (fd ? "" : fd.error().message);
  return fd.value_or(-1);
}

bool has_a_queued_connection(int fd) {
  pollfd ready{fd, POLLIN, 0};
  return ::poll(&ready, 1, 0) == 1;
}

TEST(OpenListeners, OnlyAPerSlotListenerSetsReusePort) {
  Listener shared = open_one(listener_config("127.0.0.1:0"));
  EXPECT_EQ(int_option(shared.fd(), SOL_SOCKET, SO_REUSEPORT), 0);
  Listener first = open_one(per_slot_config("127.0.0.1:0"));
  EXPECT_EQ(int_option(first.fd(), SOL_SOCKET, SO_REUSEPORT), 1);
  EXPECT_EQ(int_option(first.fd(), SOL_SOCKET, SO_REUSEADDR), 1);
}

TEST(OpenListeners, NoSocketCanJoinTheGroupOfASharedListenersPort) {
  // Without SO_REUSEPORT on clusterd's socket, not even a process of the same user can bind
  // beside it and take a share of its connections.
  Listener shared = open_one(listener_config("127.0.0.1:0"));
  try {
    open_slot_socket(per_slot_config("127.0.0.1:0"), shared.bound_address());
    ADD_FAILURE() << "a second socket joined the port of a shared listener";
  } catch (const ListenError& error) {
    EXPECT_EQ(std::string(error.what()),
              "listener \"http\": bind " + shared.bound_address() + ": Address already in use");
    EXPECT_EQ(error.error(), EADDRINUSE);
  }
}

TEST(OpenListeners, APerSlotListenerCannotBindAPortASharedSocketHolds) {
  Listener plain = open_one(listener_config("127.0.0.1:0", "other"));
  EXPECT_EQ(listen_error_of({per_slot_config(plain.bound_address())}),
            "listener \"http\": bind " + plain.bound_address() + ": Address already in use");
}

TEST(OpenListeners, APerSlotListenerCannotJoinAnotherPerSlotGroupOnItsPort) {
  // A second clusterd of the same user on the same port: SO_REUSEPORT would let it join the
  // first one's group and split its connections, so the group's first socket binds without it.
  ListenerSockets first = per_slot_group(per_slot_config("127.0.0.1:0", "first"), 2);
  EXPECT_EQ(listen_error_of({per_slot_config(first.bound_address())}),
            "listener \"http\": bind " + first.bound_address() + ": Address already in use");
}

TEST(ListenerSockets, APerSlotGroupBindsOneReusePortSocketPerSlotOnOnePort) {
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 4);
  ASSERT_EQ(group.socket_count(), 4u);
  EXPECT_EQ(group.open_slots(), (std::vector<int>{0, 1, 2, 3}));
  const std::uint16_t port = local_port(fd_of(group, 0));
  EXPECT_NE(port, 0);  // port 0: the kernel's port, the same for every slot
  EXPECT_EQ(group.bound_address(), "127.0.0.1:" + std::to_string(port));
  std::set<ino_t> sockets;
  for (int slot = 0; slot < 4; ++slot) {
    const int fd = fd_of(group, slot);
    EXPECT_EQ(local_port(fd), port) << "slot " << slot;
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEPORT), 1) << "slot " << slot;
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEADDR), 1) << "slot " << slot;
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 1) << "slot " << slot;
    EXPECT_TRUE(is_cloexec(fd)) << "slot " << slot;
    sockets.insert(inode_of(fd));
  }
  EXPECT_EQ(sockets.size(), 4u);  // four sockets, not four fds of one
}

TEST(ListenerSockets, TheKernelSpreadsConnectionsOverTheSlotsSockets) {
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 2);
  const std::array<int, 2> fds{fd_of(group, 0), fd_of(group, 1)};
  // Each new connection lands in one socket's own queue, by a hash of its addresses: a few
  // hundred connections from different source ports reach both (a miss is 2^-400 likely).
  std::array<int, 2> accepted{0, 0};
  std::vector<Fd> connections;
  for (int attempt = 0; attempt < 400 && (accepted[0] == 0 || accepted[1] == 0); ++attempt) {
    Fd client = connect_to(group.bound_address());
    ASSERT_TRUE(client);
    connections.push_back(std::move(client));
    for (std::size_t slot = 0; slot < fds.size(); ++slot) {
      // Accepted at once, so no queue fills up whatever the backlog.
      if (has_a_queued_connection(fds[slot])) {
        connections.emplace_back(::accept4(fds[slot], nullptr, nullptr, SOCK_CLOEXEC));
        ++accepted[slot];
      }
    }
  }
  EXPECT_GT(accepted[0], 0);
  EXPECT_GT(accepted[1], 0);
}

TEST(ListenerSockets, ASharedListenerGivesEverySlotItsOneSocket) {
  ListenerSockets shared(listener_config("127.0.0.1:0"), open_one(listener_config("127.0.0.1:0")));
  shared.open_slots(4);
  EXPECT_EQ(shared.socket_count(), 1u);
  EXPECT_FALSE(shared.per_slot());
  const int fd = fd_of(shared, 0);
  EXPECT_EQ(fd_of(shared, 3), fd);
  EXPECT_EQ(fd_of(shared, 17), fd);
  EXPECT_THAT(shared.close_unneeded([](int) { return false; }), ::testing::IsEmpty());
  EXPECT_TRUE(is_open(fd));
}

TEST(ListenerSockets, ASlotAddedLaterGetsASocketOfItsOwnOnTheSamePort) {
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 2);
  CapturedLog log;
  const int fd = fd_of(group, 2);
  EXPECT_EQ(group.socket_count(), 3u);
  EXPECT_EQ(local_port(fd), local_port(fd_of(group, 0)));
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEPORT), 1);
  EXPECT_NE(inode_of(fd), inode_of(fd_of(group, 1)));
  EXPECT_EQ(fd_of(group, 2), fd);  // kept: asked again, the same socket
  EXPECT_THAT(log.text(), HasSubstr("info per-slot socket opened name=http slot=2 address=" + group.bound_address()));
}

TEST(ListenerSockets, CloseUnneededClosesOnlyTheSlotsNoLongerNeeded) {
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 3);
  const int kept = fd_of(group, 0);
  const ino_t kept_inode = inode_of(kept);
  CapturedLog log;
  EXPECT_EQ(group.close_unneeded([](int slot) { return slot == 0; }), (std::vector<int>{1, 2}));
  EXPECT_EQ(group.open_slots(), (std::vector<int>{0}));
  EXPECT_EQ(inode_of(fd_of(group, 0)), kept_inode);
  EXPECT_THAT(log.text(), HasSubstr("info per-slot socket closed name=http slot=1 address=" + group.bound_address()));
  EXPECT_THAT(log.text(), HasSubstr("info per-slot socket closed name=http slot=2 address=" + group.bound_address()));
  // The port stays the group's: slot 0 holds it, and a slot added again joins it.
  EXPECT_EQ(local_port(fd_of(group, 1)), local_port(kept));
}

// How many connections each of the group's sockets has queued, by accepting them all.
std::vector<int> accept_all(ListenerSockets& group, int slots) {
  std::vector<int> counts;
  for (int slot = 0; slot < slots; ++slot) {
    const int fd = fd_of(group, slot);
    int accepted = 0;
    while (has_a_queued_connection(fd)) {
      Fd(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
      ++accepted;
    }
    counts.push_back(accepted);
  }
  return counts;
}

TEST(ListenerSockets, ASteeredGroupWhoseEverySocketStoppedIsSteeredAgain) {
  if (reuseport_steering_problem()) {
    GTEST_SKIP() << "this kernel or user cannot steer: " << *reuseport_steering_problem();
  }
  // Every worker shut its socket down (a server that does so on SIGTERM, in a reload of all at
  // once): the sockets that listen again form a new kernel group, which has no program.
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 2);
  ASSERT_TRUE(group.steered());
  for (int slot = 0; slot < 2; ++slot) {
    ASSERT_EQ(::shutdown(fd_of(group, slot), SHUT_RDWR), 0);
  }
  CapturedLog log;
  group.ensure_listening(std::vector<int>{0, 1});
  group.steer({SlotActivity{.accepting = false, .running = true}, SlotActivity{.accepting = true, .running = true}});

  std::vector<Fd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(connect_to(group.bound_address()));
  }
  EXPECT_EQ(accept_all(group, 2), (std::vector<int>{0, 10}));  // hashed, 2^-10 likely
}

TEST(ListenerSockets, ASlotTheKernelRefusedIsSteeredToOnceItCanBe) {
  if (reuseport_steering_problem()) {
    GTEST_SKIP() << "this kernel or user cannot steer: " << *reuseport_steering_problem();
  }
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 2);
  const std::vector<SlotActivity> both{SlotActivity{.accepting = true, .running = true},
                                       SlotActivity{.accepting = true, .running = true}};
  const int fd = fd_of(group, 1);
  ASSERT_EQ(::shutdown(fd, SHUT_RD), 0);  // not listening: the kernel refuses it to the steering
  CapturedLog log;
  group.steer(both);
  EXPECT_THAT(log.text(), HasSubstr("warning per-slot socket not steered to name=http slot=1"));
  ASSERT_EQ(::listen(fd, 16), 0);  // bound by port number: back in the group

  group.steer(both);  // the same readiness as before: slot 1 is still tried again
  std::vector<Fd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(connect_to(group.bound_address()));
  }
  EXPECT_EQ(accept_all(group, 2), (std::vector<int>{5, 5}));
}

TEST(ListenerSockets, EnsureListeningListensAgainOnASlotsSocketAWorkerShutDown) {
  ListenerSockets group = per_slot_group(per_slot_config("127.0.0.1:0"), 2);
  const int fd = fd_of(group, 1);
  const std::uint16_t port = local_port(fd_of(group, 0));
  ASSERT_EQ(::shutdown(fd, SHUT_RDWR), 0);  // as a worker of slot 1 would, on its copy
  ASSERT_EQ(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
  CapturedLog log;
  group.ensure_listening(std::vector<int>{0});  // another slot's worker exited: not its socket
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
  group.ensure_listening(std::vector<int>{1});
  EXPECT_THAT(log.text(), HasSubstr("error listener stopped by a worker; listening again name=http address=" +
                                    group.bound_address() + " slot=1"));
  EXPECT_EQ(fd_of(group, 1), fd);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
  EXPECT_EQ(local_port(fd), port);  // back in the group, on the group's port
}

// ----- which slots keep their per-slot socket

SlotActivity accepting() { return {.accepting = true, .running = true, .may_run = true}; }
SlotActivity starting() { return {.accepting = false, .running = true, .may_run = true}; }
// No worker, or only one asked to stop: in backoff, or about to be restarted or removed.
SlotActivity down() { return {.accepting = false, .running = false, .may_run = true}; }
SlotActivity never_again() { return {.accepting = false, .running = false, .may_run = false}; }

TEST(SlotSocketNeeded, UnsteeredASlotWithinTheCountKeepsItsSocketWhileItsWorkerIsDown) {
  const std::vector<SlotActivity> activity{accepting(), down()};
  EXPECT_TRUE(slot_socket_needed(activity, 2, 0, false));
  EXPECT_TRUE(slot_socket_needed(activity, 2, 1, false));  // its queue waits for the restart
}

TEST(SlotSocketNeeded, SteeredASlotWhoseWorkerIsDownLetsGoSoItsQueueMoves) {
  const std::vector<SlotActivity> activity{accepting(), down(), starting()};
  EXPECT_TRUE(slot_socket_needed(activity, 3, 0, true));
  EXPECT_FALSE(slot_socket_needed(activity, 3, 1, true));  // its next worker gets a new socket
  EXPECT_TRUE(slot_socket_needed(activity, 3, 2, true));
}

TEST(SlotSocketNeeded, ARemovedSlotLetsGoOnceItsWorkerIsStopping) {
  const std::vector<SlotActivity> activity{accepting(), accepting(), down()};
  for (const bool steered : {false, true}) {
    EXPECT_TRUE(slot_socket_needed(activity, 1, 0, steered));
    EXPECT_TRUE(slot_socket_needed(activity, 1, 1, steered));   // not asked to stop yet (a reload to fewer, say)
    EXPECT_FALSE(slot_socket_needed(activity, 1, 2, steered));  // asked to stop: the worker's own copy is enough
    EXPECT_FALSE(slot_socket_needed(activity, 1, 3, steered));  // no such slot
  }
}

TEST(SlotSocketNeeded, ASlotOfTheReloadTargetNotAddedYetKeepsItsSocket) {
  const std::vector<SlotActivity> activity{accepting()};
  EXPECT_TRUE(slot_socket_needed(activity, 3, 2, false));
  EXPECT_TRUE(slot_socket_needed(activity, 3, 2, true));
}

TEST(SlotSocketNeeded, ASlotThatWillNeverRunAgainLetsGo) {
  const std::vector<SlotActivity> activity{accepting(), never_again(), never_again()};
  EXPECT_FALSE(slot_socket_needed(activity, 3, 1, false));
  EXPECT_FALSE(slot_socket_needed(activity, 3, 2, false));
}

// ----- the tcp_migrate_req warning

TEST(TcpMigrateReqWarning, NoneWhenQueuedConnectionsMigrate) {
  EXPECT_EQ(tcp_migrate_req_warning("1\n"), std::nullopt);
}

TEST(TcpMigrateReqWarning, OffSaysWhatHappensAndHowToSetIt) {
  EXPECT_EQ(tcp_migrate_req_warning("0\n"),
            "net.ipv4.tcp_migrate_req = 0: when scaling down closes a removed slot's per-slot socket (reuseport = "
            "\"per-slot\"), the connections queued on it are reset; set it to 1 to move them to the other slots' "
            "sockets (sysctl -w net.ipv4.tcp_migrate_req=1, and a file in /etc/sysctl.d/ to keep it)");
}

TEST(TcpMigrateReqWarning, MissingSaysTheKernelIsTooOld) {
  EXPECT_EQ(tcp_migrate_req_warning(std::nullopt),
            "net.ipv4.tcp_migrate_req is not available (Linux before 5.14): when scaling down closes a removed "
            "slot's per-slot socket (reuseport = \"per-slot\"), the connections queued on it are reset");
}

}  // namespace
}  // namespace clusterd
