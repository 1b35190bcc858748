// The readings behind ready.mode = "auto": epoll fdinfo, fd links, blocked system calls, and what
// a blocked accept, poll or select waits on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/select.h>
#include <sys/syscall.h>

#include <cstring>

#include "listen_probe.h"

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// As Linux 6.1 writes /proc/PID/fdinfo of an epoll fd: pos, flags, mnt_id, ino, then one tfd
// line per watched file. The first watches for input (EPOLLIN|EPOLLERR|EPOLLHUP), the second
// only for output (EPOLLOUT), the third with Go's EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET.
constexpr const char* epoll_fdinfo =
    "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n"
    "tfd:        3 events:       19 data:                3  pos:0 ino:1f2e3 sdev:8\n"
    "tfd:        7 events:        4 data:                7  pos:0 ino:abc sdev:8\n"
    "tfd:        9 events: 80002005 data:     7f0000000009  pos:0 ino:10 sdev:8\n";

TEST(ListenProbe, EpollFdinfoGivesTheInodesWatchedForInput) {
  EXPECT_THAT(epoll_input_inodes(epoll_fdinfo), ElementsAre(0x1f2e3u, 0x10u));
}

TEST(ListenProbe, EpollFdinfoWithoutTargetsGivesNothing) {
  EXPECT_THAT(epoll_input_inodes("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n"), IsEmpty());
  EXPECT_THAT(epoll_input_inodes("tfd: 3 events: zz ino:12\n"), IsEmpty());
}

TEST(ListenProbe, SocketLinksGiveTheirInode) {
  EXPECT_EQ(socket_inode("socket:[4711]"), 4711u);
  EXPECT_EQ(socket_inode("socket:[12x]"), std::nullopt);
  EXPECT_EQ(socket_inode("anon_inode:[eventpoll]"), std::nullopt);
  EXPECT_EQ(socket_inode("/dev/null"), std::nullopt);
  EXPECT_EQ(socket_inode("socket:[]"), std::nullopt);
}

TEST(ListenProbe, BlockedCallIsParsedRunningOrUserSpaceIsNot) {
  const auto call = parse_blocked_call("288 0x3 0x7ffd1 0x7ffd2 0x80800 0x0 0x0 0x7ffd0 0x7f12\n");
  ASSERT_TRUE(call.has_value());
  EXPECT_EQ(call->number, 288);
  EXPECT_EQ(call->args[0], 3u);
  EXPECT_EQ(call->args[3], 0x80800u);
  EXPECT_EQ(parse_blocked_call("running\n"), std::nullopt);
  EXPECT_EQ(parse_blocked_call("-1 0x7ffd0 0x7f12\n"), std::nullopt);
  EXPECT_EQ(parse_blocked_call("7 0x1 0x2\n"), std::nullopt);  // cut short
}

MemoryReader no_memory() {
  return [](std::uint64_t, std::size_t) { return std::string(); };
}

TEST(ListenProbe, AcceptOnAListeningFdIsAWait) {
  BlockedCall call;
  call.number = SYS_accept4;
  call.args[0] = 3;
  EXPECT_EQ(waits_on(call, {3}, no_memory()), "accept");
  EXPECT_EQ(waits_on(call, {4}, no_memory()), std::nullopt);  // another socket of the worker's own
}

TEST(ListenProbe, PollWithTheListeningFdForInputIsAWait) {
  pollfd set[2] = {{5, POLLIN, 0}, {3, POLLIN, 0}};
  std::string memory(reinterpret_cast<const char*>(set), sizeof set);
  const MemoryReader reader = [&](std::uint64_t address, std::size_t length) {
    return address == 0x1000 && length == sizeof set ? memory : std::string();
  };
  BlockedCall call;
  call.number = SYS_ppoll;
  call.args[0] = 0x1000;
  call.args[1] = 2;
  EXPECT_EQ(waits_on(call, {3}, reader), "poll");
  set[1].events = POLLOUT;
  memory.assign(reinterpret_cast<const char*>(set), sizeof set);
  EXPECT_EQ(waits_on(call, {3}, reader), std::nullopt);
  EXPECT_EQ(waits_on(call, {3}, no_memory()), std::nullopt);  // unreadable: no sign
}

TEST(ListenProbe, SelectWithTheListeningFdInTheReadSetIsAWait) {
  fd_set read_set;
  FD_ZERO(&read_set);
  FD_SET(6, &read_set);
  const std::string memory(reinterpret_cast<const char*>(&read_set), sizeof(long));
  const MemoryReader reader = [&](std::uint64_t address, std::size_t length) {
    return address == 0x2000 && length == sizeof(long) ? memory : std::string();
  };
  BlockedCall call;
  call.number = SYS_pselect6;
  call.args[0] = 7;  // nfds: the highest fd + 1
  call.args[1] = 0x2000;
  EXPECT_EQ(waits_on(call, {6}, reader), "select");
  EXPECT_EQ(waits_on(call, {5}, reader), std::nullopt);
  call.args[0] = 6;  // the fd is beyond nfds: not looked at by the kernel either
  EXPECT_EQ(waits_on(call, {6}, reader), std::nullopt);
}

TEST(ListenProbe, OtherCallsAreNoWait) {
  BlockedCall call;
  call.number = SYS_read;
  call.args[0] = 3;
  EXPECT_EQ(waits_on(call, {3}, no_memory()), std::nullopt);
}

}  // namespace
}  // namespace clusterd
