// Steers the connections of a per-slot listener's SO_REUSEPORT group: a reuseport BPF program
// sends each new connection, and each queued connection of a socket clusterd closes, to the next
// socket, in turn, of the slots whose worker accepts. Without it the kernel hashes every
// connection over every socket of the group, a slot in backoff included.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"
#include "fd.h"

namespace clusterd {

// Owns one group's program and its two maps: the sockets to choose from (a
// REUSEPORT_SOCKARRAY, positions 0..count-1) and {turn, count}. The program takes the next turn
// modulo count and selects that position's socket; with no target, or a position whose socket
// the kernel dropped (it stopped listening), it selects nothing and the kernel hashes over the
// group as it would without a program. It is attached as SELECT_OR_MIGRATE, so a socket that
// stops listening hands its queued connections to a target even with net.ipv4.tcp_migrate_req
// = 0. Move-only.
class ReuseportSteering {
  struct SteeringTarget {
    int slot = 0;
    int fd = -1;
  };

 public:
  // Creates the maps and loads the program, for at most `capacity` targets. The error says
  // which step the kernel refused and why (no CAP_BPF or CAP_SYS_ADMIN, Linux before 5.14).
  static tl::expected<ReuseportSteering, std::string> create(int capacity);

  ReuseportSteering(ReuseportSteering&&) noexcept = default;
  ReuseportSteering& operator=(ReuseportSteering&&) noexcept = default;

  // Makes the program the one of `socket_fd`'s reuseport group (any socket of it, before or after
  // listen()). Returns the errno text on failure.
  tl::expected<void, std::string> attach(int socket_fd) const;

  // Makes `slot`'s socket, `fd`, a target: it takes the next position (or, for a slot that is
  // one already with another socket, its place is given up first). False when the kernel
  // refuses the socket (it does not listen) or `slot` is not below the capacity; true at once
  // for a slot that is a target with that socket already. Two map updates.
  bool add(int slot, int fd);

  // `slot` is no longer a target: the last position takes its place. The count shrinks first,
  // so no connection is sent to the last position while it moves; the leaving socket may get
  // one until its place is overwritten. Also what to do when the slot's socket stopped
  // listening (the kernel then already emptied its position). Nothing for a slot that is not a
  // target. At most four map updates.
  void remove(int slot);

  // The slots connections go to now, in position order.
  std::vector<int> target_slots() const;

  // `clusterd upgrade`: the maps and program by fd, and each position's slot and socket fd. The
  // binary executed in clusterd's process takes them over with the same fd numbers (a socket is
  // in one REUSEPORT_SOCKARRAY at a time, so a new map could not take the group's sockets).
  struct Handover {
    int state_fd = -1;
    int sockets_fd = -1;
    int program_fd = -1;
    int capacity = 0;
    std::vector<std::pair<int, int>> targets;  // {slot, socket fd}, by position
  };
  Handover handover() const;
  static ReuseportSteering adopt(const Handover& handed);

 private:
  ReuseportSteering(Fd state, Fd sockets, Fd program, int capacity);
  bool put(std::size_t position, int fd);
  void write_count();

  Fd state_;
  Fd sockets_;
  Fd program_;
  int capacity_ = 0;
  std::vector<SteeringTarget> positions_;  // what the sockets map holds, by position
  std::vector<int> position_of_;           // by slot: its position, or -1
};

// Whether this clusterd can steer at all (probed once, then remembered): nullopt when it can,
// otherwise why not, for the log.
const std::optional<std::string>& reuseport_steering_problem();

// The mode a listener runs in: its reuseport when set; unset, per-slot for a TCP address when
// clusterd can steer (reuseport_steering_problem), shared otherwise and for unix sockets.
ReusePort reuseport_in_effect(const ListenerConfig& config);

}  // namespace clusterd
