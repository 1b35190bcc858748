// The control socket for real, in private temp dirs: where it goes and the checks on its
// directory, binding (mode, live and stale sockets, removal), and the server's connections in a
// real EventLoop (order, a deferred reply, junk, long lines, idle limit, no deadline when idle).
#include "control_paths.h"
#include "control_server.h"
#include "control_socket.h"
#include "test_support.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_support::EnvGuard;
using testing_support::TempDir;

unsigned mode_of(const std::string& path) {
  struct stat status {};
  EXPECT_EQ(::lstat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

Fd connect_to(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
  return fd;
}

void send_text(const Fd& fd, const std::string& text) {
  ASSERT_EQ(::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// What the client can read without waiting; `closed` set when the server closed.
std::string read_available(const Fd& fd, bool* closed = nullptr) {
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (got > 0) {
      text.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (closed != nullptr) {
      *closed = got == 0 || (got < 0 && errno == ECONNRESET);
    }
    return text;
  }
}

// How many sockets this process holds open (/proc/self/fd): the server's connections show here.
std::size_t open_sockets() {
  std::size_t sockets = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    sockets += !error && target.string().starts_with("socket:[") ? 1 : 0;
  }
  return sockets;
}

// ----- directories

TEST(ControlDirectories, InTheOrderOfTheInterface) {
  EXPECT_THAT(control_directories("/run/shop", "/run/user/1000", 1000, false),
              ElementsAre("/run/shop", "/run/user/1000/clusterd", "/tmp/clusterd-1000"));
  EXPECT_THAT(control_directories(std::nullopt, std::nullopt, 0, false), ElementsAre("/run/clusterd"));
  EXPECT_THAT(control_directories(std::nullopt, std::nullopt, 1000, false), ElementsAre("/tmp/clusterd-1000"));
}

TEST(ControlDirectories, FirstRuntimeDirectoryEntryAndNoRelativePaths) {
  EXPECT_THAT(control_directories("/run/a:/run/b", "relative", 0, false), ElementsAre("/run/a", "/run/clusterd"));
  EXPECT_THAT(control_directories("", "", 0, false), ElementsAre("/run/clusterd"));
}

TEST(ControlDirectories, AClientLooksEverywhereOnce) {
  EXPECT_THAT(control_directories("/run/clusterd", std::nullopt, 0, true),
              ElementsAre("/run/clusterd", "/tmp/clusterd-0"));
  EXPECT_THAT(control_directories(std::nullopt, "/run/user/7", 7, true),
              ElementsAre("/run/user/7/clusterd", "/run/clusterd", "/tmp/clusterd-7"));
}

TEST(ControlSocketPath, NoneIsNoSocket) {
  ControlConfig control;
  control.enabled = false;
  const auto path = control_socket_path(control, "shop", true);
  ASSERT_TRUE(path) << path.error();
  EXPECT_EQ(*path, std::nullopt);
}

TEST(ControlSocketPath, DefaultDirectoryIsCreated0700) {
  TempDir xdg;
  const EnvGuard env{{"RUNTIME_DIRECTORY", std::nullopt}, {"XDG_RUNTIME_DIR", xdg.path()}};
  const mode_t old_umask = ::umask(0);  // a wide umask must not widen it
  const auto path = control_socket_path({}, "shop", true);
  ::umask(old_umask);
  ASSERT_TRUE(path) << path.error();
  EXPECT_EQ(*path, xdg.path() + "/clusterd/shop.sock");
  EXPECT_EQ(mode_of(xdg.path() + "/clusterd"), 0700u);
}

TEST(ControlSocketPath, CheckCreatesNothing) {
  TempDir xdg;
  const EnvGuard env{{"RUNTIME_DIRECTORY", std::nullopt}, {"XDG_RUNTIME_DIR", xdg.path()}};
  const auto path = control_socket_path({}, "shop", false);
  ASSERT_TRUE(path) << path.error();
  EXPECT_FALSE(std::filesystem::exists(xdg.path() + "/clusterd"));
}

TEST(ControlSocketPath, ADirectoryOthersMayWriteIsRefused) {
  TempDir runtime;
  ::chmod(runtime.path().c_str(), 0777);
  const EnvGuard env{{"RUNTIME_DIRECTORY", runtime.path()}};
  const auto path = control_socket_path({}, "shop", true);
  ASSERT_FALSE(path);
  EXPECT_EQ(path.error(), "control socket directory " + runtime.path() +
                              " is writable by other users (mode 0777); set control.socket (or --control) to "
                              "another path, or none");
  ::chmod(runtime.path().c_str(), 0720);
  EXPECT_THAT(control_socket_path({}, "shop", false).error(), HasSubstr("is writable by other users (mode 0720)"));
}

TEST(ControlSocketPath, ADirectoryOfAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a directory away";
  }
  TempDir runtime;
  ASSERT_EQ(::chown(runtime.path().c_str(), 65534, 65534), 0);
  const EnvGuard env{{"RUNTIME_DIRECTORY", runtime.path()}};
  EXPECT_THAT(control_socket_path({}, "shop", true).error(),
              StartsWith("control socket directory " + runtime.path() + " is owned by uid 65534, not by clusterd's uid 0"));
}

TEST(ControlSocketPath, ADefaultPathTooLongForSunPath) {
  const std::string deep = "/tmp/" + std::string(60, 'd');
  const EnvGuard env{{"RUNTIME_DIRECTORY", deep}};
  EXPECT_EQ(control_socket_path({}, std::string(50, 'n'), true).error(),
            "control socket path " + deep + "/" + std::string(50, 'n') +
                ".sock is 121 bytes, the limit is 107; set control.socket (or --control) to a shorter path");
}

TEST(ControlSocketPath, AnExplicitPathNeedsAnExistingDirectoryOnly) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0777);  // the operator's choice: not judged
  ControlConfig control;
  control.socket = dir.path() + "/ctl.sock";
  EXPECT_EQ(control_socket_path(control, "shop", true).value(), dir.path() + "/ctl.sock");
  control.socket = dir.path() + "/missing/ctl.sock";
  EXPECT_EQ(control_socket_path(control, "shop", true).error(),
            "control.socket " + dir.path() + "/missing/ctl.sock: cannot use directory " + dir.path() +
                "/missing: No such file or directory");
}

// ----- the listening socket

TEST(ControlSocketOpen, Mode0600AndRemovedOnDestruction) {
  TempDir dir;
  const std::string path = dir.path() + "/c.sock";
  {
    const mode_t old_umask = ::umask(0);
    auto socket = ControlSocket::open(path);
    ::umask(old_umask);
    ASSERT_TRUE(socket) << socket.error();
    EXPECT_EQ(mode_of(path), 0600u);
    ControlSocket moved = std::move(*socket);  // the moved-from one must not remove it
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ControlSocketOpen, ALiveSocketMeansAnotherInstance) {
  TempDir dir;
  const std::string path = dir.path() + "/c.sock";
  auto first = ControlSocket::open(path);
  ASSERT_TRUE(first);
  const auto second = ControlSocket::open(path);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), "another clusterd is running (control socket " + path + " answers)");
  EXPECT_TRUE(std::filesystem::exists(path));  // the refused one removed nothing
}

TEST(ControlSocketOpen, AStaleSocketIsReplacedAndOnlyOurFileIsRemoved) {
  TempDir dir;
  const std::string path = dir.path() + "/c.sock";
  {
    // Bound, never listening: what a killed instance leaves behind answers ECONNREFUSED.
    Fd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  auto replaced = ControlSocket::open(path);
  ASSERT_TRUE(replaced) << replaced.error();
  // Someone else's file at the path now: not ours to remove.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  std::ofstream(path) << "theirs";
  replaced = tl::make_unexpected(std::string("dropped"));
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(ControlSocketOpen, AnotherKindOfFileIsAnError) {
  TempDir dir;
  const std::string path = dir.path() + "/c.sock";
  std::ofstream(path) << "x";
  EXPECT_EQ(ControlSocket::open(path).error(),
            "control socket path " + path + " exists and is not a socket; remove it or set control.socket");
}

// ----- the server

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : path_(dir_.path() + "/c.sock") {
    auto socket = ControlSocket::open(path_);
    EXPECT_TRUE(socket);
    server_.emplace(std::move(*socket), loop_, [this](RequestId id, const Request& request) {
      requests_.push_back({id, request});
      if (std::holds_alternative<StatusRequest>(request)) {
        server_->reply(id, R"({"ok":true,"n":)" + std::to_string(requests_.size()) + "}");
      } else if (std::holds_alternative<StopRequest>(request)) {
        server_->reply(id, ok_reply());
      }
      // reload and scale: answered by the test, later.
    });
  }

  // Runs the loop until `done` or a bound on rounds (each round is one epoll_wait with an event
  // the test has caused, so it never blocks for long). The timer bounds a round that waits for an
  // event the server wrongly never asked for, so such a bug fails the test instead of hanging it.
  template <typename Done>
  void run_until(Done done, int rounds = 20) {
    for (int round = 0; round < rounds && !done(); ++round) {
      loop_.arm_timer(Clock::now() + 500ms);
      loop_.run_once();
    }
  }

  TempDir dir_;
  std::string path_;
  EventLoop loop_;
  std::vector<std::pair<RequestId, Request>> requests_;
  std::optional<ControlServer> server_;
};

// The idle limit exists only while a connection does: 10 s after it was accepted, then none again
// once it closed.
TEST_F(ServerTest, NoDeadlineWithoutConnections) {
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
  const TimePoint before = Clock::now();
  std::optional<Fd> client = connect_to(path_);
  run_until([&] { return server_->next_deadline().has_value(); });
  const TimePoint after = Clock::now();
  const auto deadline = server_->next_deadline();
  ASSERT_TRUE(deadline);
  EXPECT_GE(*deadline, before + ControlServer::idle_limit);
  EXPECT_LE(*deadline, after + ControlServer::idle_limit);
  client.reset();
  run_until([&] { return !server_->next_deadline().has_value(); });
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
  EXPECT_TRUE(requests_.empty());
}

TEST_F(ServerTest, SeveralRequestsOnOneConnectionAnsweredInOrder) {
  const Fd client = connect_to(path_);
  send_text(client, "status\nstatus\nbogus\nstatus\n");
  std::string got;
  run_until([&] {
    got += read_available(client);
    return std::count(got.begin(), got.end(), '\n') >= 4;
  });
  EXPECT_EQ(got,
            "{\"ok\":true,\"n\":1}\n{\"ok\":true,\"n\":2}\n"
            "{\"ok\":false,\"error\":\"unknown request \\\"bogus\\\"; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade\"}\n"
            "{\"ok\":true,\"n\":3}\n");
  EXPECT_TRUE(server_->next_deadline().has_value());  // a connection: its idle limit
}

TEST_F(ServerTest, APendingReloadHoldsTheRepliesBehindIt) {
  const Fd client = connect_to(path_);
  send_text(client, "reload\nstatus\n");
  run_until([&] { return requests_.size() == 1; });
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(read_available(client), "");
  // While the reload is pending, its connection has no idle limit.
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
  server_->reply(requests_[0].first, reload_reply(true, 2, ""));
  std::string got;
  run_until([&] {
    got += read_available(client);
    return std::count(got.begin(), got.end(), '\n') >= 2;
  });
  EXPECT_EQ(got, "{\"ok\":true,\"generation\":2}\n{\"ok\":true,\"n\":2}\n");
}

// The client leaves while its request is pending: its connection stays until the answer (the
// request is still carried out), the answer closes it and goes nowhere, and the server goes on.
TEST_F(ServerTest, AReplyToAClientThatLeftIsDropped) {
  const std::size_t listening = open_sockets();
  {
    const Fd client = connect_to(path_);
    send_text(client, "scale 3\n");
    run_until([&] { return requests_.size() == 1; });
    EXPECT_EQ(open_sockets(), listening + 2);  // the client's end and the server's
  }
  loop_.run_once();  // the server sees the hang-up (EPOLLHUP is reported even with no events asked)
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(std::get<ScaleRequest>(requests_[0].second).workers, 3);
  EXPECT_EQ(open_sockets(), listening + 1);  // held for the pending answer
  EXPECT_EQ(server_->next_deadline(), std::nullopt);  // with no idle limit while pending
  server_->reply(requests_[0].first, scale_reply(3));
  EXPECT_EQ(open_sockets(), listening);  // answered: closed
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
  server_->reply(requests_[0].first, scale_reply(3));  // answered twice: ignored

  const Fd next = connect_to(path_);
  send_text(next, "status\n");
  std::string got;
  run_until([&] {
    got += read_available(next);
    return got.find('\n') != std::string::npos;
  });
  EXPECT_EQ(got, "{\"ok\":true,\"n\":2}\n");
  EXPECT_EQ(requests_.size(), 2u);
}

// A client that sends and closes at once (`printf 'scale 3\nstop\n' | nc -U`) still gets every
// request carried out: the hang-up comes with its bytes still unread in the server's socket.
TEST_F(ServerTest, EveryRequestSentBeforeTheClientClosedReachesTheHandler) {
  {
    const Fd client = connect_to(path_);
    send_text(client, "status\nbogus\nstatus\nscale 2\nstatus\nscale 3\nstatus");
    ::shutdown(client.get(), SHUT_RDWR);
  }
  // The replies have nobody to go to; the scales are answered by the test, after the client
  // left, as the daemon answers a reload.
  std::size_t answered = 0;
  run_until([&] {
    for (; answered < requests_.size(); ++answered) {
      if (const auto* scale = std::get_if<ScaleRequest>(&requests_[answered].second)) {
        server_->reply(requests_[answered].first, scale_reply(scale->workers));
      }
    }
    return requests_.size() == 6 && server_->next_deadline() == std::nullopt;
  });
  ASSERT_EQ(requests_.size(), 6u);
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(requests_[0].second));
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(requests_[1].second));
  EXPECT_EQ(std::get<ScaleRequest>(requests_[2].second).workers, 2);
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(requests_[3].second));
  EXPECT_EQ(std::get<ScaleRequest>(requests_[4].second).workers, 3);
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(requests_[5].second));  // no newline: taken at EOF
  EXPECT_EQ(server_->next_deadline(), std::nullopt);  // and the connection is closed
}

// More requests than one read takes, from a client that closed without reading a reply: each
// reply is dropped and every request is still taken, in order.
TEST_F(ServerTest, ManyRequestsFromAClientThatClosedWithoutReading) {
  std::string text;
  for (int workers = 2; workers <= 1001; ++workers) {
    text += "status\nscale " + std::to_string(workers) + "\n";
  }
  {
    const Fd client = connect_to(path_);
    send_text(client, text);
    ::shutdown(client.get(), SHUT_RDWR);
  }
  std::size_t answered = 0;
  run_until([&] {
    for (; answered < requests_.size(); ++answered) {
      if (const auto* scale = std::get_if<ScaleRequest>(&requests_[answered].second)) {
        server_->reply(requests_[answered].first, scale_reply(scale->workers));
      }
    }
    return requests_.size() == 2000 && server_->next_deadline() == std::nullopt;
  });
  ASSERT_EQ(requests_.size(), 2000u);
  for (int workers = 2; workers <= 1001; ++workers) {
    const auto& request = requests_[static_cast<std::size_t>(2 * (workers - 2) + 1)].second;
    ASSERT_TRUE(std::holds_alternative<ScaleRequest>(request)) << workers;
    EXPECT_EQ(std::get<ScaleRequest>(request).workers, workers);
  }
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
}

// A reply that cannot be written (EPIPE: the client shut its reading side, so no hang-up is
// reported) drops that reply only: the requests sent before and after are still taken.
TEST_F(ServerTest, AReplyFailingWithEpipeDropsOnlyTheReplies) {
  const Fd client = connect_to(path_);
  ASSERT_EQ(::shutdown(client.get(), SHUT_RD), 0);
  send_text(client, "status\nstatus\n");
  run_until([&] { return requests_.size() == 2; });
  send_text(client, "status\n");
  run_until([&] { return requests_.size() == 3; });
  EXPECT_EQ(requests_.size(), 3u);
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  run_until([&] { return server_->next_deadline() == std::nullopt; });
  EXPECT_EQ(server_->next_deadline(), std::nullopt);  // EOF with everything taken: closed
}

// A stop sent just before the client closed is still a stop.
TEST_F(ServerTest, AStopSentJustBeforeTheClientClosedIsTaken) {
  {
    const Fd client = connect_to(path_);
    send_text(client, "stop\n");
  }
  run_until([&] { return !requests_.empty(); });
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<StopRequest>(requests_[0].second));
}

TEST_F(ServerTest, ALineOver4KiBIsAnErrorAndClosed) {
  const Fd client = connect_to(path_);
  send_text(client, std::string(10000, 'x'));
  std::string got;
  bool closed = false;
  run_until([&] {
    got += read_available(client, &closed);
    return closed;
  });
  EXPECT_EQ(got, "{\"ok\":false,\"error\":\"request line longer than 4096 bytes\"}\n");
  EXPECT_TRUE(closed);
  EXPECT_TRUE(requests_.empty());
}

TEST_F(ServerTest, TheLastLineWithoutANewlineCountsAtEof) {
  const Fd client = connect_to(path_);
  send_text(client, "status");
  ::shutdown(client.get(), SHUT_WR);
  std::string got;
  bool closed = false;
  run_until([&] {
    got += read_available(client, &closed);
    return closed;
  });
  EXPECT_EQ(got, "{\"ok\":true,\"n\":1}\n");
}

TEST_F(ServerTest, IdleWithoutAFullLineIsAnErrorAndClosed) {
  const Fd client = connect_to(path_);
  send_text(client, "sta");
  run_until([&] { return server_->next_deadline().has_value(); });
  loop_.run_once();  // the partial line is read
  const auto deadline = server_->next_deadline();
  ASSERT_TRUE(deadline);
  server_->on_deadline(*deadline - 1ms);
  EXPECT_EQ(read_available(client), "");
  server_->on_deadline(*deadline);
  bool closed = false;
  EXPECT_EQ(read_available(client, &closed), "{\"ok\":false,\"error\":\"no complete request line within 10s\"}\n");
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->next_deadline(), std::nullopt);
}

TEST_F(ServerTest, AfterStopTheConnectionStaysUntilTheServerGoes) {
  const Fd client = connect_to(path_);
  send_text(client, "stop\nstatus\n");
  std::string got;
  run_until([&] {
    got += read_available(client);
    return !got.empty();
  });
  EXPECT_EQ(got, "{\"ok\":true}\n");
  EXPECT_EQ(server_->next_deadline(), std::nullopt);  // held: no idle limit
  EXPECT_EQ(requests_.size(), 1u);                    // nothing more is read
  server_.reset();
  bool closed = false;
  EXPECT_EQ(read_available(client, &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

// `logs follow`: records go out as the client reads them; at the server's end a last record says
// the stream is over.
TEST_F(ServerTest, AStreamSendsRecordsUntilTheServerGoes) {
  const Fd client = connect_to(path_);
  send_text(client, "logs follow\n");
  run_until([&] { return !requests_.empty(); });
  ASSERT_EQ(requests_.size(), 1u);
  const std::uint64_t stream = server_->start_stream(requests_[0].first, R"({"ok":true,"lines":[]})");
  ASSERT_NE(stream, 0u);
  EXPECT_TRUE(server_->stream_record(stream, R"({"text":"a"})"));
  EXPECT_TRUE(server_->stream_record(stream, R"({"text":"b"})"));
  std::string got;
  run_until([&] {
    got += read_available(client);
    return std::count(got.begin(), got.end(), '\n') >= 3;
  });
  EXPECT_EQ(got, "{\"ok\":true,\"lines\":[]}\n{\"text\":\"a\"}\n{\"text\":\"b\"}\n");
  EXPECT_EQ(server_->next_deadline(), std::nullopt);  // a follower may wait for lines for ever
  server_.reset();
  bool closed = false;
  EXPECT_EQ(read_available(client, &closed), "{\"ok\":true,\"end\":\"clusterd stopped\"}\n");
  EXPECT_TRUE(closed);
}

// A follower that reads nothing is cut off when its queue would pass stream_limit: the record
// being written is finished, the rest dropped, and the reason is the last thing it reads.
TEST_F(ServerTest, AStreamNobodyReadsIsCutOffAtItsLimit) {
  const Fd client = connect_to(path_);
  send_text(client, "logs follow\n");
  run_until([&] { return !requests_.empty(); });
  const std::uint64_t stream = server_->start_stream(requests_[0].first, R"({"ok":true,"lines":[]})");
  ASSERT_NE(stream, 0u);
  const std::string record = R"({"text":")" + std::string(1000, 'x') + R"("})";
  std::size_t accepted = 0;
  while (server_->stream_record(stream, record)) {
    ++accepted;
    ASSERT_LT(accepted, 100000u) << "never cut off";
    if (accepted % 64 == 0) {
      loop_.arm_timer(Clock::now() + 1ms);
      loop_.run_once();  // writes what the socket takes, until it takes no more
    }
  }
  EXPECT_FALSE(server_->stream_record(stream, record));  // gone for good
  std::string got;
  bool closed = false;
  for (int round = 0; round < 100000 && !closed; ++round) {
    got += read_available(client, &closed);
    loop_.arm_timer(Clock::now() + 1ms);
    loop_.run_once();
  }
  ASSERT_TRUE(closed);
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < got.size();) {
    const std::size_t end = got.find('\n', at);
    ASSERT_NE(end, std::string::npos) << "a record cut in half";
    lines.push_back(got.substr(at, end - at));
    at = end + 1;
  }
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines.front(), R"({"ok":true,"lines":[]})");
  for (std::size_t index = 1; index + 1 < lines.size(); ++index) {
    ASSERT_EQ(lines[index], record);
  }
  EXPECT_THAT(lines.back(), ::testing::HasSubstr("this follower was cut off: it left more than 1024 KiB unread"));
  EXPECT_LT(lines.size() - 2, accepted);  // what was queued past the one being written was dropped
}

TEST_F(ServerTest, ManyClientsAtOnce) {
  std::vector<Fd> clients;
  for (int index = 0; index < 50; ++index) {
    clients.push_back(connect_to(path_));
    send_text(clients.back(), "status\n");
  }
  std::size_t answered = 0;
  std::vector<std::string> got(clients.size());
  run_until(
      [&] {
        answered = 0;
        for (std::size_t index = 0; index < clients.size(); ++index) {
          got[index] += read_available(clients[index]);
          answered += got[index].empty() ? 0 : 1;
        }
        return answered == clients.size();
      },
      400);
  ASSERT_EQ(answered, clients.size());
  // Each client got one whole reply, its own: the handler numbered the 50 requests 1..50, in
  // whichever order the server took them, and each number went to exactly one client.
  std::vector<std::string> expected;
  for (std::size_t n = 1; n <= clients.size(); ++n) {
    expected.push_back("{\"ok\":true,\"n\":" + std::to_string(n) + "}\n");
  }
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
  ASSERT_EQ(requests_.size(), clients.size());
  for (const auto& [id, request] : requests_) {
    EXPECT_TRUE(std::holds_alternative<StatusRequest>(request)) << id;
  }
  // Every connection is still open, waiting for its next request: 50 idle limits, none expired.
  EXPECT_TRUE(server_->next_deadline().has_value());
  for (const Fd& client : clients) {
    bool closed = false;
    EXPECT_EQ(read_available(client, &closed), "");
    EXPECT_FALSE(closed);
  }
}

// ----- connection limits: shedding the oldest idle connection instead of queueing new ones

class LimitedServerTest : public ::testing::Test {
 protected:
  void start(ConnectionLimits limits) {
    auto socket = ControlSocket::open(path_);
    ASSERT_TRUE(socket);
    server_.emplace(std::move(*socket), loop_,
                    [this](RequestId id, const Request& request) {
                      ++requests_;
                      if (std::holds_alternative<StatusRequest>(request)) {
                        server_->reply(id, R"({"ok":true})");
                      } else if (std::holds_alternative<StopRequest>(request)) {
                        server_->reply(id, ok_reply());
                      }
                      // reload: left pending.
                    },
                    limits);
  }

  template <typename Done>
  void run_until(Done done, int rounds = 50) {
    for (int round = 0; round < rounds && !done(); ++round) {
      loop_.arm_timer(Clock::now() + 500ms);
      loop_.run_once();
    }
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/c.sock";
  EventLoop loop_;
  int requests_ = 0;
  std::optional<ControlServer> server_;
};

const std::string shed_line =
    "{\"ok\":false,\"error\":\"too many control connections (at most 3 per user, 5 in all); this idle one was "
    "closed to make room\"}\n";

TEST_F(LimitedServerTest, ANewConnectionAtTheCapShedsTheOldestIdleOne) {
  start(ConnectionLimits{3, 5});
  std::vector<Fd> idle;
  for (int index = 0; index < 3; ++index) {
    idle.push_back(connect_to(path_));
  }
  const Fd client = connect_to(path_);
  send_text(client, "status\n");
  std::string got;
  run_until([&] {
    got += read_available(client);
    return !got.empty();
  });
  EXPECT_EQ(got, "{\"ok\":true}\n");
  bool closed = false;
  EXPECT_EQ(read_available(idle[0], &closed), shed_line);
  EXPECT_TRUE(closed);
  for (std::size_t index = 1; index < idle.size(); ++index) {
    EXPECT_EQ(read_available(idle[index], &closed), "");
    EXPECT_FALSE(closed) << index;
  }
}

// The oldest connection's request is in its socket but not read yet (epoll reports it a round
// later): it is answered, and the next oldest idle one is shed instead.
TEST_F(LimitedServerTest, AConnectionWhoseRequestArrivedIsServedNotShed) {
  start(ConnectionLimits{2, 5});
  const Fd oldest = connect_to(path_);
  const Fd older = connect_to(path_);
  run_until([&] { return server_->next_deadline().has_value(); });  // both accepted, idle
  send_text(oldest, "status\n");
  const Fd client = connect_to(path_);
  send_text(client, "status\n");
  std::string got;
  run_until([&] {
    got += read_available(client);
    return !got.empty();
  });
  EXPECT_EQ(got, "{\"ok\":true}\n");
  bool closed = false;
  EXPECT_EQ(read_available(oldest, &closed), "{\"ok\":true}\n");
  EXPECT_FALSE(closed);
  const std::string two_per_user =
      "{\"ok\":false,\"error\":\"too many control connections (at most 2 per user, 5 in all); this idle one was "
      "closed to make room\"}\n";
  EXPECT_EQ(read_available(older, &closed), two_per_user);
  EXPECT_TRUE(closed);
  EXPECT_EQ(requests_, 2);
}

TEST_F(LimitedServerTest, BusyConnectionsAreNeverShedTheNewOneIsRefused) {
  start(ConnectionLimits{2, 5});
  const Fd reloading = connect_to(path_);
  send_text(reloading, "reload\n");
  const Fd stopping = connect_to(path_);
  send_text(stopping, "stop\n");
  std::string stop_reply;
  run_until([&] {
    stop_reply += read_available(stopping);
    return requests_ == 2 && !stop_reply.empty();
  });
  ASSERT_EQ(requests_, 2);
  const Fd late = connect_to(path_);
  send_text(late, "status\n");
  std::string got;
  bool closed = false;
  run_until([&] {
    got += read_available(late, &closed);
    return closed;
  });
  EXPECT_EQ(got,
            "{\"ok\":false,\"error\":\"too many control connections (at most 2 per user, 5 in all) and none of "
            "them idle; try again later\"}\n");
  EXPECT_TRUE(closed);
  EXPECT_EQ(requests_, 2);
  EXPECT_EQ(read_available(reloading, &closed), "");
  EXPECT_FALSE(closed);
}

// A flood of idle connections from one uid costs it its own oldest ones; a new request is still
// answered, and what is left open is the per-uid cap.
TEST_F(LimitedServerTest, AFloodOfIdleConnectionsLeavesRoomForANewRequest) {
  start(ConnectionLimits{});
  const std::size_t per_uid = ConnectionLimits{}.per_uid;
  std::vector<Fd> flood;
  for (int index = 0; index < 300; ++index) {
    flood.push_back(connect_to(path_));
  }
  const Fd client = connect_to(path_);
  send_text(client, "status\n");
  std::string got;
  run_until([&] {
    got += read_available(client);
    return !got.empty();
  });
  EXPECT_EQ(got, "{\"ok\":true}\n");
  std::size_t shed = 0;
  for (std::size_t index = 0; index < flood.size(); ++index) {
    bool closed = false;
    const std::string text = read_available(flood[index], &closed);
    if (closed) {
      ++shed;
      EXPECT_THAT(text, HasSubstr("too many control connections")) << index;
      EXPECT_LT(index, flood.size() - (per_uid - 1)) << "the newest are kept";
    } else {
      EXPECT_EQ(text, "") << index;
    }
  }
  EXPECT_EQ(shed, flood.size() + 1 - per_uid);  // the status client holds one place
}

}  // namespace
}  // namespace clusterd
