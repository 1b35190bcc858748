// The daemon's listeners across generations: which sockets are open now, their inodes for the
// readiness probes, the steering and closing of per-slot sockets, and the migration warning.
#include "daemon.h"

#include "socket_activation.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace clusterd {

std::set<ListenerSockets*> Daemon::open_listeners_now() const {
  std::set<ListenerSockets*> open;  // a listener kept by several generations counts once
  for (const auto& [key, generation] : generations_) {
    for (const auto& [listener_config, listener] : generation.listeners) {
      open.insert(listener.get());
    }
  }
  return open;
}

const std::set<std::uint64_t>& Daemon::listener_inodes() {
  // Rebuilt only when a listener's sockets changed: a start of thousands probes every
  // millisecond, and a per-slot listener has a socket per slot.
  const std::set<ListenerSockets*> listeners = open_listeners_now();
  std::vector<std::uint64_t> versions;
  for (const ListenerSockets* listener : listeners) {
    versions.push_back(listener->version());
  }
  if (versions != probe_inodes_versions_) {
    probe_inodes_.clear();
    for (const ListenerSockets* listener : listeners) {
      probe_inodes_.insert(listener->socket_inodes().begin(), listener->socket_inodes().end());
    }
    probe_inodes_versions_ = std::move(versions);
  }
  return probe_inodes_;
}

void Daemon::keep_listeners_in_systemd() {
  // A socket unit's sockets are systemd's already: storing them again would pass them twice.
  if (!systemd_.enabled() || socket_unit_) {
    return;
  }
  std::map<std::string, std::uint64_t> open;
  for (ListenerSockets* listener : open_listeners_now()) {
    if (listener->per_slot()) {
      if (!per_slot_not_stored_said_) {
        per_slot_not_stored_said_ = true;
        spdlog::info("per-slot sockets are not kept in systemd's fd store name={}; with reuseport = \"shared\" "
                     "a listener outlives a clusterd that is killed",
                     listener->name());
      }
      continue;
    }
    const auto fd = listener->fd_for(0);
    if (!fd || listener->socket_inodes().empty()) {
      continue;
    }
    const std::uint64_t inode = listener->socket_inodes().front();
    open.emplace(listener->name(), inode);
    const auto stored = fd_store_.find(listener->name());
    if (stored != fd_store_.end() && stored->second == inode) {
      continue;
    }
    if (stored != fd_store_.end()) {
      (void)systemd_.send("FDSTOREREMOVE=1\nFDNAME=" + std::string(stored_fd_prefix) + listener->name());
    }
    const int fds[] = {*fd};
    if (const auto problem = systemd_.send("FDSTORE=1\nFDNAME=" + std::string(stored_fd_prefix) + listener->name(), fds)) {
      spdlog::warn("cannot keep listener name={} in systemd's fd store: {}", listener->name(), *problem);
      continue;
    }
    fd_store_[listener->name()] = inode;
  }
  for (auto stored = fd_store_.begin(); stored != fd_store_.end();) {
    if (open.contains(stored->first)) {
      ++stored;
      continue;
    }
    (void)systemd_.send("FDSTOREREMOVE=1\nFDNAME=" + std::string(stored_fd_prefix) + stored->first);
    stored = fd_store_.erase(stored);
  }
}

void Daemon::check_listeners(std::span<const int> slots) {
  for (ListenerSockets* listener : open_listeners_now()) {
    listener->ensure_listening(slots);
  }
}

void Daemon::steer_and_close_slot_sockets() {
  for (ListenerSockets* listener : open_listeners_now()) {
    if (!listener->per_slot()) {
      continue;
    }
    // Only the workers of generations that hold this listener have its sockets: after a reload
    // that moved or dropped it, the other generation's ready workers accept none of its
    // connections.
    std::set<std::uint64_t> holders;
    for (const auto& [number, generation] : generations_) {
      for (const auto& entry : generation.listeners) {
        if (entry.second.get() == listener) {
          holders.insert(number);
        }
      }
    }
    const std::vector<SlotActivity> activity =
        supervisor_.slot_activity([&](std::uint64_t generation) { return holders.contains(generation); });
    // Steered away first: a socket closed next hands its queue to the slots that accept.
    listener->steer(activity);
    listener->close_unneeded([&](int slot) {
      return slot_socket_needed(activity, supervisor_.workers_wanted(), slot, listener->steered());
    });
  }
}

void Daemon::warn_about_per_slot_scale_down(const GenerationListeners& listeners) {
  // A steered group's program moves a closed socket's queue whatever the sysctl says.
  const bool any_unsteered = std::any_of(listeners.begin(), listeners.end(), [](const auto& entry) {
    return entry.second->per_slot() && !entry.second->steered();
  });
  if (any_unsteered && !tcp_migrate_req_checked_) {
    tcp_migrate_req_checked_ = true;  // once: it is the system's setting, not the file's
    warn_about_tcp_migrate_req();
  }
}

}  // namespace clusterd
