// What one clusterd hands to the binary it re-executes in its place (`clusterd upgrade`): the
// configuration it runs, the sockets it holds and the workers it supervises, as one JSON
// document the new binary reads from an inherited memfd. The fds named here are inherited too
// (FD_CLOEXEC cleared for the exec). Pure: no I/O.
//
// The format is versioned (`format`): a binary reads every format up to its own, and refuses a
// newer one, which makes it start afresh on the handed sockets (docs/operations.md, Upgrading).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "credentials.h"
#include "reuseport_steering.h"
#include "supervisor.h"

namespace clusterd {

// One socket of a listener: the slot's own (per-slot), or the one every worker shares (slot 0).
struct HandedSocket {
  int slot = 0;
  int fd = -1;
};

struct HandedListener {
  std::string name;
  std::string bound_address;  // as logged at start: "127.0.0.1:43121", "unix:/run/shop.sock"
  int backlog = 0;
  std::string unix_path;      // the socket file clusterd made (removed at exit); empty otherwise
  unsigned unix_mode = 0;
  bool per_slot = false;
  std::vector<HandedSocket> sockets;
  std::optional<ReuseportSteering::Handover> steering;  // per-slot, steered
};

struct HandedWorker {
  WorkerId id;
  int pid = 0;
  double uptime_s = 0;
  int restarts = 0;  // its slot's
  std::optional<std::string> notify_status;
  std::optional<int> notify_fd;  // its NOTIFY_SOCKET, read by clusterd
  std::optional<std::string> notify_path;
  std::optional<int> stdout_fd;  // output = "prefix": the read ends of its output pipes
  std::optional<int> stderr_fd;
  std::optional<std::string> cgroup;  // its cgroup's name in the parent (cgroup.mode)
};

// Every slot, in order: the running ones' workers are in `workers`.
using HandedSlot = HandedOverSlot;

struct UpgradeState {
  static constexpr int current_format = 1;
  int format = current_format;
  std::string from_version;
  std::string config;                      // the running configuration, as to_toml writes it
  std::optional<std::string> config_file;  // absolute; what a reload reads again
  // The program and the workers' ids as resolved at the start or reload of this generation: a
  // restart after the upgrade runs what one before it would, the program or user gone meanwhile
  // or not.
  std::string executable;
  WorkerUser user;
  std::uint64_t generation = 1;
  std::uint64_t next_instance = 1;
  Counters counters;
  std::vector<HandedListener> listeners;
  bool socket_unit = false;  // the listeners came from a socket unit (LISTEN_FDS)
  std::vector<std::string> fd_store;  // the listeners' names kept in systemd's fd store
  std::optional<int> control_fd;
  std::optional<std::string> control_path;
  std::optional<int> client_fd;  // the control connection that asked for the upgrade: answered by the new binary
  std::optional<int> metrics_fd;
  std::string metrics_address;  // as bound
  std::optional<std::string> notify_directory;
  std::optional<int> notify_directory_lock;
  std::optional<std::string> cgroup_parent;
  std::optional<int> cgroup_parent_fd;
  bool cgroup_parent_created = false;  // clusterd made it (clusterd.PID at the root): removed at exit
  std::vector<HandedSlot> slots;
  std::vector<HandedWorker> workers;
};

std::string write_upgrade_state(const UpgradeState& state);
// The error says what is wrong ("format 2 is newer than this clusterd reads (1)").
tl::expected<UpgradeState, std::string> read_upgrade_state(std::string_view text);
// Every fd the state names, for the exec to keep open.
std::vector<int> handed_fds(const UpgradeState& state);

}  // namespace clusterd
