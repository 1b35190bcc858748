// The sockets of one configured listener: one shared by every worker, or one SO_REUSEPORT socket
// per slot, opened when a slot needs it and closed when the slot is gone.
#include "listener_sockets.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <sstream>

#include <spdlog/spdlog.h>

#include "text_file.h"

namespace clusterd {

ListenerSockets::ListenerSockets(ListenerConfig config, Listener first)
    : config_(std::move(config)),
      name_(first.name()),
      bound_address_(first.bound_address()),
      backlog_(first.backlog()) {
  sockets_.emplace(0, std::move(first));
}

std::vector<int> ListenerSockets::open_slots() const {
  std::vector<int> slots;
  for (const auto& [slot, socket] : sockets_) {
    slots.push_back(slot);
  }
  return slots;
}

std::vector<std::uint64_t> ListenerSockets::socket_inodes() const {
  std::vector<std::uint64_t> inodes;
  for (const auto& [slot, socket] : sockets_) {
    struct stat status {};
    if (::fstat(socket.fd(), &status) == 0) {
      inodes.push_back(status.st_ino);
    }
  }
  return inodes;
}

void ListenerSockets::open_slots(int count) {
  if (!per_slot()) {
    return;
  }
  for (int slot = 0; slot < count; ++slot) {
    if (!sockets_.contains(slot)) {
      sockets_.emplace(slot, open_slot_socket(config_, bound_address_));
    }
  }
  spdlog::info("listening per slot name={} address={} sockets={}", name_, bound_address_, sockets_.size());
}

tl::expected<int, SlotSocketFailure> ListenerSockets::fd_for(int slot) {
  if (!per_slot()) {
    return sockets_.begin()->second.fd();
  }
  if (const auto found = sockets_.find(slot); found != sockets_.end()) {
    return found->second.fd();
  }
  try {
    const auto [entry, inserted] = sockets_.emplace(slot, open_slot_socket(config_, bound_address_));
    spdlog::info("per-slot socket opened name={} slot={} address={}", name_, slot, bound_address_);
    return entry->second.fd();
  } catch (const ListenError& error) {
    spdlog::error("cannot open the per-slot socket of a worker name={} slot={} address={} error=\"{}\"", name_,
                  slot, bound_address_, error.what());
    // No errno means the address itself is wrong, which open_listeners would have refused at
    // start; EINVAL says as much to the Supervisor's log line.
    return tl::make_unexpected(SlotSocketFailure{error.what(), error.error() != 0 ? error.error() : EINVAL});
  }
}

std::vector<int> ListenerSockets::close_unneeded(const std::function<bool(int)>& needed) {
  std::vector<int> closed;
  if (!per_slot()) {
    return closed;
  }
  for (auto entry = sockets_.begin(); entry != sockets_.end();) {
    if (needed(entry->first)) {
      ++entry;
      continue;
    }
    closed.push_back(entry->first);
    spdlog::info("per-slot socket closed name={} slot={} address={}", name_, entry->first, bound_address_);
    entry = sockets_.erase(entry);
  }
  return closed;
}

std::optional<std::string> ListenerSockets::unix_directory_problem() const {
  for (const auto& [slot, socket] : sockets_) {
    if (auto problem = socket.unix_directory_problem()) {
      return "listener \"" + name_ + "\": " + *problem;
    }
  }
  return std::nullopt;
}

void ListenerSockets::ensure_listening(std::span<const int> slots) {
  if (!per_slot()) {
    for (auto& [slot, socket] : sockets_) {
      if (socket.ensure_listening()) {
        spdlog::error("listener stopped by a worker; listening again name={} address={}", name_,
                      socket.bound_address());
      }
    }
    return;
  }
  for (const int slot : slots) {
    const auto found = sockets_.find(slot);
    if (found != sockets_.end() && found->second.ensure_listening()) {
      spdlog::error("listener stopped by a worker; listening again name={} address={} slot={}", name_,
                    bound_address_, slot);
    }
  }
}

void ListenerSockets::ensure_every_socket_listening() {
  std::vector<int> slots;
  for (const auto& entry : sockets_) {
    slots.push_back(entry.first);
  }
  ensure_listening(slots);
}

std::shared_ptr<ListenerSockets> open_listener_sockets(const ListenerConfig& config, int workers) {
  std::vector<Listener> opened = open_listeners({config});
  auto sockets = std::make_shared<ListenerSockets>(config, std::move(opened.front()));
  spdlog::info("listening name={} address={} backlog={}", sockets->name(), sockets->bound_address(),
               sockets->backlog());
  sockets->open_slots(workers);
  return sockets;
}

std::optional<std::string> reuseport_change_problem(const ListenerConfig& running, const ListenerConfig& wanted) {
  const bool kernel_port = wanted.address.family != AddressFamily::unix_path && wanted.address.port == 0;
  if (kernel_port || running.address != wanted.address || running.reuseport == wanted.reuseport) {
    return std::nullopt;  // port 0 binds a port of its own each time
  }
  const auto mode = [](ReusePort reuseport) { return reuseport == ReusePort::per_slot ? "per-slot" : "shared"; };
  return "listener \"" + wanted.name + "\" (" + format_address(wanted.address) + "): reuseport cannot change from \"" +
         mode(running.reuseport) + "\" to \"" + mode(wanted.reuseport) +
         "\" in a reload while the old socket holds the port; restart clusterd instead";
}

bool slot_socket_needed(const StatusSnapshot& status, int workers_wanted, int slot) {
  if (slot < 0 || static_cast<std::size_t>(slot) >= status.slots.size()) {
    return slot < workers_wanted;  // a slot the Supervisor is about to add
  }
  const SlotStatus& entry = status.slots[static_cast<std::size_t>(slot)];
  const bool serving = std::any_of(entry.workers.begin(), entry.workers.end(), [](const WorkerStatus& worker) {
    return worker.state != WorkerState::stopping;
  });
  if (serving) {
    return true;
  }
  return slot < workers_wanted && entry.state != SlotState::failed && entry.state != SlotState::done;
}

std::optional<std::string> tcp_migrate_req_warning(const std::optional<std::string>& sysctl_value) {
  const std::string consequence =
      "when scaling down closes a removed slot's per-slot socket (reuseport = \"per-slot\"), the connections "
      "queued on it are reset";
  if (!sysctl_value) {
    return "net.ipv4.tcp_migrate_req is not available (Linux before 5.14): " + consequence;
  }
  std::istringstream text(*sysctl_value);
  int value = 0;
  if (text >> value && value != 0) {
    return std::nullopt;
  }
  return "net.ipv4.tcp_migrate_req = 0: " + consequence +
         "; set it to 1 to move them to the other slots' sockets (sysctl -w net.ipv4.tcp_migrate_req=1, and a "
         "file in /etc/sysctl.d/ to keep it)";
}

void warn_about_tcp_migrate_req() {
  if (const auto warning = tcp_migrate_req_warning(read_text_file("/proc/sys/net/ipv4/tcp_migrate_req"))) {
    spdlog::warn("{}", *warning);
  }
}

}  // namespace clusterd
