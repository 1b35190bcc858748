// The steering program with real sockets on loopback, no processes: which socket of a reuseport
// group each connection is queued on, and where a closed socket's queue goes.
#include "reuseport_steering.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A reuseport group of `count` listening sockets on one kernel-chosen loopback port.
struct Group {
  std::vector<Fd> sockets;
  sockaddr_in address{};
};

Fd reuseport_socket(const sockaddr_in& address) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const int on = 1;
  EXPECT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)), 0) << std::strerror(errno);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 64), 0) << std::strerror(errno);
  return fd;
}

Group open_group(int count) {
  Group group;
  group.address.sin_family = AF_INET;
  group.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  group.sockets.push_back(reuseport_socket(group.address));
  socklen_t length = sizeof(group.address);
  ::getsockname(group.sockets[0].get(), reinterpret_cast<sockaddr*>(&group.address), &length);
  for (int slot = 1; slot < count; ++slot) {
    group.sockets.push_back(reuseport_socket(group.address));
  }
  return group;
}

// Connects `count` clients; the handshake completes in the kernel, so each is queued on the
// socket the program (or the hash) chose by the time connect() returns.
std::vector<Fd> connect_clients(const Group& group, int count) {
  std::vector<Fd> clients;
  for (int i = 0; i < count; ++i) {
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&group.address), sizeof(group.address)), 0)
        << std::strerror(errno);
    clients.push_back(std::move(client));
  }
  return clients;
}

// How many connections each socket has queued, by accepting them all.
std::vector<int> accept_all(const Group& group) {
  std::vector<int> counts;
  for (const Fd& socket : group.sockets) {
    int accepted = 0;
    if (socket) {
      while (Fd(::accept4(socket.get(), nullptr, nullptr, SOCK_CLOEXEC))) {
        ++accepted;
      }
    }
    counts.push_back(accepted);
  }
  return counts;
}

// A steering program attached to `group`'s reuseport group; throws (a test failure) if refused.
ReuseportSteering attached_steering(const Group& group) {
  ReuseportSteering steering = ReuseportSteering::create(8).or_else([](const std::string& error) {
    throw std::runtime_error(error);
  }).value();
  if (const auto attached = steering.attach(group.sockets[0].get()); !attached) {
    throw std::runtime_error(attached.error());
  }
  return steering;
}

class ReuseportSteeringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto& problem = reuseport_steering_problem()) {
      GTEST_SKIP() << "this kernel or user cannot steer: " << *problem;
    }
  }
};

// Makes every socket of `group` a target, in slot order.
void add_all(ReuseportSteering& steering, const Group& group) {
  for (std::size_t slot = 0; slot < group.sockets.size(); ++slot) {
    ASSERT_TRUE(steering.add(static_cast<int>(slot), group.sockets[slot].get())) << "slot " << slot;
  }
}

TEST_F(ReuseportSteeringTest, NewConnectionsGoOnlyToTargetsInTurn) {
  Group group = open_group(3);
  auto steering = attached_steering(group);
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));
  EXPECT_TRUE(steering.add(2, group.sockets[2].get()));

  const auto clients = connect_clients(group, 10);
  EXPECT_THAT(accept_all(group), ElementsAre(0, 5, 5));
}

TEST_F(ReuseportSteeringTest, ATargetThatLeavesGetsNothingMoreAndTheOthersKeepTheirPlace) {
  Group group = open_group(3);
  auto steering = attached_steering(group);
  add_all(steering, group);
  EXPECT_THAT(steering.target_slots(), ElementsAre(0, 1, 2));

  steering.remove(0);
  EXPECT_THAT(steering.target_slots(), ElementsAre(2, 1));  // the last filled the hole
  const auto clients = connect_clients(group, 6);
  EXPECT_THAT(accept_all(group), ElementsAre(0, 3, 3));

  EXPECT_TRUE(steering.add(0, group.sockets[0].get()));  // back, at the end
  EXPECT_THAT(steering.target_slots(), ElementsAre(2, 1, 0));
  const auto more = connect_clients(group, 6);
  EXPECT_THAT(accept_all(group), ElementsAre(2, 2, 2));

  steering.remove(0);  // the last one leaves: nothing moves
  steering.remove(0);  // not a target: nothing to do
  EXPECT_THAT(steering.target_slots(), ElementsAre(2, 1));
}

TEST_F(ReuseportSteeringTest, WithoutTargetsTheKernelSpreadsOverTheWholeGroup) {
  Group group = open_group(2);
  auto steering = attached_steering(group);

  const auto clients = connect_clients(group, 64);
  const auto counts = accept_all(group);
  EXPECT_EQ(counts[0] + counts[1], 64);  // none refused, none lost
}

TEST_F(ReuseportSteeringTest, AClosedSocketsQueuedConnectionsMoveToATarget) {
  Group group = open_group(3);
  auto steering = attached_steering(group);
  EXPECT_TRUE(steering.add(2, group.sockets[2].get()));
  const auto queued = connect_clients(group, 4);  // all on slot 2's socket

  // Slot 2 leaves and its socket closes: without a migration its 4 clients would be reset.
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));
  steering.remove(2);
  group.sockets[2].reset();
  for (const Fd& client : queued) {
    pollfd reset{client.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&reset, 1, 0), 0) << "a migrated client saw its connection end";
  }
  EXPECT_THAT(accept_all(group), ElementsAre(0, 4, 0));
}

TEST_F(ReuseportSteeringTest, ASocketThatDoesNotListenIsRefused) {
  Group group = open_group(2);
  auto steering = attached_steering(group);
  Fd unbound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(steering.add(0, group.sockets[0].get()));
  EXPECT_FALSE(steering.add(1, unbound.get()));
  EXPECT_FALSE(steering.add(8, group.sockets[1].get()));  // beyond the capacity
  EXPECT_THAT(steering.target_slots(), ElementsAre(0));
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));  // already: nothing changes
  EXPECT_THAT(steering.target_slots(), ElementsAre(0, 1));
}

TEST_F(ReuseportSteeringTest, ASlotWithANewSocketTakesItsTurnsWithIt) {
  Group group = open_group(2);
  auto steering = attached_steering(group);
  add_all(steering, group);

  ASSERT_EQ(::shutdown(group.sockets[1].get(), SHUT_RD), 0);  // as a worker may: the kernel drops it
  group.sockets[1] = reuseport_socket(group.address);
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));
  const auto clients = connect_clients(group, 4);
  EXPECT_THAT(accept_all(group), ElementsAre(2, 2));
}

TEST_F(ReuseportSteeringTest, ASocketThatListensAgainOnTheSameFdIsRemovedAndAddedBack) {
  Group group = open_group(3);
  auto steering = attached_steering(group);
  add_all(steering, group);

  // Slot 1 (position 1; bound to the port by number, so it keeps it) stops and listens again on
  // the same fd: the kernel emptied its position.
  ASSERT_EQ(::shutdown(group.sockets[1].get(), SHUT_RD), 0);
  ASSERT_EQ(::listen(group.sockets[1].get(), 64), 0);
  steering.remove(1);
  EXPECT_TRUE(steering.add(1, group.sockets[1].get()));
  EXPECT_THAT(steering.target_slots(), ElementsAre(0, 2, 1));
  const auto clients = connect_clients(group, 9);
  EXPECT_THAT(accept_all(group), ElementsAre(3, 3, 3));
}

TEST_F(ReuseportSteeringTest, AMovedSocketThatStoppedListeningLeavesToo) {
  Group group = open_group(3);
  auto steering = attached_steering(group);
  add_all(steering, group);
  group.sockets[2].reset();  // the kernel empties position 2; the steering does not know yet

  steering.remove(0);  // position 2 would move into 0, but its socket is gone
  EXPECT_THAT(steering.target_slots(), ElementsAre(1));
  const auto clients = connect_clients(group, 4);
  EXPECT_THAT(accept_all(group), ElementsAre(0, 4, 0));
}

TEST(UnsetReuseport, IsPerSlotForTcpWhereClusterdCanSteerElseShared) {
  ListenerConfig tcp;
  tcp.address.host = "127.0.0.1";
  tcp.address.port = 80;
  EXPECT_EQ(reuseport_in_effect(tcp), reuseport_steering_problem() ? ReusePort::shared : ReusePort::per_slot);
  ListenerConfig unix_socket;
  unix_socket.address.family = AddressFamily::unix_path;
  unix_socket.address.path = "/run/app.sock";
  EXPECT_EQ(reuseport_in_effect(unix_socket), ReusePort::shared);
}

TEST(UnsetReuseport, AnExplicitSettingIsKept) {
  ListenerConfig tcp;
  tcp.address.host = "127.0.0.1";
  tcp.address.port = 80;
  tcp.reuseport = ReusePort::shared;
  EXPECT_EQ(reuseport_in_effect(tcp), ReusePort::shared);
  tcp.reuseport = ReusePort::per_slot;
  EXPECT_EQ(reuseport_in_effect(tcp), ReusePort::per_slot);
}

}  // namespace
}  // namespace clusterd
