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
  const int first_fd = first.fd();
  sockets_.emplace(0, std::move(first));
  changed();
  if (!per_slot()) {
    if (!config_.reuseport && config_.address.family != AddressFamily::unix_path && reuseport_steering_problem()) {
      spdlog::info("one shared socket name={} address={}: per-slot sockets, the default for TCP, need the steering "
                   "program: {}",
                   name_, bound_address_, *reuseport_steering_problem());
    }
    return;
  }
  auto steering = ReuseportSteering::create(max_steered_slots);
  auto attached = steering ? steering->attach(first_fd) : tl::make_unexpected(steering.error());
  if (attached) {
    steering_ = std::move(*steering);
  } else {
    spdlog::warn("per-slot listener without steering name={} address={}: {}; connections are hashed over "
                 "every slot's socket, one whose worker is in backoff included",
                 name_, bound_address_, attached.error());
  }
}

void ListenerSockets::adopt_slot_socket(int slot, Listener socket) {
  if (steering_) {
    // The group's program is attached once, to the group; attaching it again on every new
    // socket keeps it on a group that was emptied and formed anew.
    static_cast<void>(steering_->attach(socket.fd()));
  }
  sockets_.emplace(slot, std::move(socket));
  changed();
}

std::optional<ReuseportSteering::Handover> ListenerSockets::steering_handover() const {
  if (!steering_) {
    return std::nullopt;
  }
  return steering_->handover();
}

void ListenerSockets::adopt_steering(const ReuseportSteering::Handover& handed) {
  ReuseportSteering adopted = ReuseportSteering::adopt(handed);
  // The program made at construction replaced the group's: the one whose maps hold the sockets
  // takes its place again.
  if (auto attached = adopted.attach(sockets_.begin()->second.fd()); !attached) {
    spdlog::warn("per-slot listener name={} address={}: {}; connections are hashed over every slot's socket", name_,
                 bound_address_, attached.error());
  }
  steering_ = std::move(adopted);
  accepting_.assign(static_cast<std::size_t>(handed.capacity), false);
  for (const auto& [slot, fd] : handed.targets) {
    if (slot >= 0 && static_cast<std::size_t>(slot) < accepting_.size()) {
      accepting_[static_cast<std::size_t>(slot)] = true;
    }
  }
}

std::vector<int> ListenerSockets::open_slots() const {
  std::vector<int> slots;
  for (const auto& [slot, socket] : sockets_) {
    slots.push_back(slot);
  }
  return slots;
}

const std::vector<std::uint64_t>& ListenerSockets::socket_inodes() const {
  if (!inodes_) {
    inodes_.emplace();
    for (const auto& [slot, socket] : sockets_) {
      struct stat status {};
      if (::fstat(socket.fd(), &status) == 0) {
        inodes_->push_back(status.st_ino);
      }
    }
  }
  return *inodes_;
}

void ListenerSockets::changed() {
  static std::uint64_t last_version = 0;  // one loop thread: no two listeners change at once
  version_ = ++last_version;
  inodes_.reset();
}

void ListenerSockets::open_slots(int count) {
  if (!per_slot()) {
    return;
  }
  for (int slot = 0; slot < count; ++slot) {
    if (!sockets_.contains(slot)) {
      adopt_slot_socket(slot, open_slot_socket(config_, bound_address_));
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
    adopt_slot_socket(slot, open_slot_socket(config_, bound_address_));
    spdlog::info("per-slot socket opened name={} slot={} address={}", name_, slot, bound_address_);
    return sockets_.at(slot).fd();
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
    if (needed(entry->first) || sockets_.size() == 1) {
      ++entry;
      continue;
    }
    closed.push_back(entry->first);
    spdlog::info("per-slot socket closed name={} slot={} address={}", name_, entry->first, bound_address_);
    entry = sockets_.erase(entry);
    changed();
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
        changed();  // a unix listener is a new socket now
      }
    }
    return;
  }
  for (const int slot : slots) {
    const auto found = sockets_.find(slot);
    if (found != sockets_.end() && found->second.ensure_listening()) {
      spdlog::error("listener stopped by a worker; listening again name={} address={} slot={}", name_,
                    bound_address_, slot);
      changed();
      if (steering_) {
        // The kernel took it out of the steering when it stopped; and when every socket of the
        // group had stopped, the group it listens in now is a new one, without the program.
        static_cast<void>(steering_->attach(found->second.fd()));
        steering_->remove(slot);
        if (static_cast<std::size_t>(slot) < accepting_.size()) {
          accepting_[static_cast<std::size_t>(slot)] = false;  // so the next steer() adds it again
        }
      }
    }
  }
}

void ListenerSockets::steer(const std::vector<SlotActivity>& activity) {
  if (!steering_) {
    return;
  }
  std::vector<bool> accepting(activity.size());
  for (std::size_t slot = 0; slot < activity.size(); ++slot) {
    accepting[slot] = activity[slot].accepting;
  }
  if (accepting == accepting_) {
    return;
  }
  // Only the slots that changed: a restart in a pool of thousands costs a few map updates.
  const std::size_t slots = std::max(accepting.size(), accepting_.size());
  const auto was = [&](std::size_t slot) { return slot < accepting_.size() && accepting_[slot]; };
  const auto now = [&](std::size_t slot) { return slot < accepting.size() && accepting[slot]; };
  for (std::size_t slot = 0; slot < slots; ++slot) {
    if (was(slot) && !now(slot)) {
      steering_->remove(static_cast<int>(slot));
    }
  }
  std::vector<int> refused;
  for (std::size_t slot = 0; slot < slots; ++slot) {
    if (now(slot) && !was(slot)) {
      const auto found = sockets_.find(static_cast<int>(slot));
      if (found == sockets_.end() || !steering_->add(static_cast<int>(slot), found->second.fd())) {
        refused.push_back(static_cast<int>(slot));
      }
    }
  }
  accepting_ = std::move(accepting);
  for (const int slot : refused) {
    accepting_[static_cast<std::size_t>(slot)] = false;  // tried again at the next steer()
    if (unsteered_slots_.insert(slot).second) {
      spdlog::warn("per-slot socket not steered to name={} slot={} address={}: the kernel refused it; tried again "
                   "at every event until it takes it",
                   name_, slot, bound_address_);
    }
  }
  std::erase_if(unsteered_slots_, [&](int slot) { return std::find(refused.begin(), refused.end(), slot) == refused.end(); });
}

void ListenerSockets::ensure_every_socket_listening() {
  std::vector<int> slots;
  for (const auto& entry : sockets_) {
    slots.push_back(entry.first);
  }
  ensure_listening(slots);
}

ListenerConfig as_running(ListenerConfig config, const ListenerSockets& sockets) {
  config.reuseport = sockets.per_slot() ? ReusePort::per_slot : ReusePort::shared;
  return config;
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
  if (kernel_port || running.address != wanted.address || !wanted.reuseport ||
      reuseport_in_effect(running) == reuseport_in_effect(wanted)) {
    return std::nullopt;  // port 0 binds a port of its own each time
  }
  const auto mode = [](ReusePort reuseport) { return reuseport == ReusePort::per_slot ? "per-slot" : "shared"; };
  return "listener \"" + wanted.name + "\" (" + format_address(wanted.address) + "): reuseport cannot change from \"" +
         mode(reuseport_in_effect(running)) + "\" to \"" + mode(reuseport_in_effect(wanted)) +
         "\" in a reload while the old socket holds the port; restart clusterd instead";
}

bool slot_socket_needed(const std::vector<SlotActivity>& activity, int workers_wanted, int slot, bool steered) {
  if (slot < 0 || static_cast<std::size_t>(slot) >= activity.size()) {
    return slot < workers_wanted;  // a slot the Supervisor is about to add
  }
  const SlotActivity& entry = activity[static_cast<std::size_t>(slot)];
  return entry.running || (!steered && slot < workers_wanted && entry.may_run);
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
