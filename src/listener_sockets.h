// The open sockets of one configured listener, as the daemon hands them to workers: the one
// socket every worker inherits (reuseport = "shared"), or one SO_REUSEPORT socket per slot
// (reuseport = "per-slot": interface §7, protocols §4.1 model B).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"
#include "reuseport_steering.h"
#include "sockets.h"
#include "supervisor.h"

namespace clusterd {

// Why a slot's socket could not be opened: the message for the log and the errno.
struct SlotSocketFailure {
  std::string message;
  int error = 0;
};

// Owns the sockets of one listener. A per-slot listener keeps slot k's socket while slot k
// needs it, whoever runs in it: the worker that crashed and the one that restarts it, the old and
// the new worker of a reload, all get the same socket. A slot's socket is bound when the slot
// first needs it and closed when the daemon says the slot no longer does (close_unneeded); every
// socket of a group is bound to the address the first one got (the kernel's port, for port 0).
// When the kernel lets clusterd steer (reuseport_steering.h), new connections go only to the
// sockets of slots whose worker accepts, in turn, and a closed socket's queued connections move
// to those. Move-only; the daemon shares one between the generations that keep the listener
// (std::shared_ptr).
class ListenerSockets {
 public:
  // `first`: the listener's socket as open_listeners or socket activation opened it. For a
  // per-slot listener it is slot 0's (open_listeners set SO_REUSEPORT on it).
  ListenerSockets(ListenerConfig config, Listener first);
  ListenerSockets(ListenerSockets&&) noexcept = default;
  ListenerSockets& operator=(ListenerSockets&&) noexcept = default;
  ListenerSockets(const ListenerSockets&) = delete;
  ListenerSockets& operator=(const ListenerSockets&) = delete;

  const ListenerConfig& config() const { return config_; }
  const std::string& name() const { return name_; }
  bool per_slot() const { return reuseport_in_effect(config_) == ReusePort::per_slot; }
  // Per-slot, with the steering program attached: connections go to accepting slots only.
  bool steered() const { return steering_.has_value(); }
  // What every socket of the listener is bound to, as logged at start ("127.0.0.1:43121").
  const std::string& bound_address() const { return bound_address_; }
  int backlog() const { return backlog_; }
  // The open sockets by slot (a shared listener's at 0), for `clusterd upgrade` to hand over.
  const std::map<int, Listener>& sockets() const { return sockets_; }
  // A socket of `slot` an earlier clusterd of this process held (`clusterd upgrade`).
  void adopt_slot(int slot, Listener socket) { adopt_slot_socket(slot, std::move(socket)); }
  // Its steering, for `clusterd upgrade`; nullopt when not steered.
  std::optional<ReuseportSteering::Handover> steering_handover() const;
  // The steering an earlier clusterd of this process attached to the group, in place of the one
  // made at construction (`clusterd upgrade`).
  void adopt_steering(const ReuseportSteering::Handover& handed);
  // Sockets open now: 1 for a shared listener; one per slot that has its socket, per-slot.
  std::size_t socket_count() const { return sockets_.size(); }
  // The slots that have a socket (per-slot), in order; {0} for a shared listener.
  std::vector<int> open_slots() const;

  // Per-slot: binds the sockets of slots 0..count-1 that are not open yet, then logs
  // `listening per slot name= address= sockets=N`. Throws ListenError naming the listener and the
  // address; the sockets bound before the failure stay open. A shared listener has nothing to do.
  void open_slots(int count);

  // The fd a worker of `slot` gets at this listener's position: the shared socket; or the slot's
  // own, bound now if the slot has none (a slot added by scaling or a reload, or one whose
  // socket was closed). Opening and failing to open are logged. Never throws.
  tl::expected<int, SlotSocketFailure> fd_for(int slot);

  // Steered: new connections go to the sockets of the slots whose activity says accepting, and
  // to every socket, hashed, while there is none. Changes only what differs from the last call.
  void steer(const std::vector<SlotActivity>& activity);

  // Per-slot: closes the socket of every slot for which `needed(slot)` is false, logging each
  // (clusterd's copy only: a worker still running keeps its own until it exits), but never the
  // last one: it holds the port, and new connections wait in its queue for a worker. Returns
  // the slots closed. A shared listener is never closed here.
  std::vector<int> close_unneeded(const std::function<bool(int)>& needed);

  // Why a reload must not keep this listener: its unix socket file's directory is no longer
  // trusted (Listener::unix_directory_problem), named with the listener as at start. nullopt
  // when it is, and for TCP and sockets passed by systemd.
  std::optional<std::string> unix_directory_problem() const;

  // The sockfs inode number of each socket open now, as /proc/PID/fd shows them ("socket:[N]"):
  // how a worker's waits on them are recognised (listen_probe.h). Kept from one change of the
  // sockets to the next: a pool of thousands of slots is probed many times a second while it
  // starts.
  const std::vector<std::uint64_t>& socket_inodes() const;
  // Changes whenever a socket is opened, closed or listens again; unique among all listeners of
  // the process, so a cache of several listeners' inodes can tell whether it is still right.
  std::uint64_t version() const { return version_; }

  // Listener::ensure_listening after workers of `slots` exited: a worker's shutdown() stops a
  // socket for every holder (interface §7). A shared listener checks its one socket; a per-slot
  // one only those slots' sockets (a worker holds only its slot's), so a restart does not cost a
  // system call per slot of the pool. Each one that listens again is logged as an error naming
  // the listener (and the slot, per-slot). Never throws.
  void ensure_listening(std::span<const int> slots);
  // The same for every socket: after an orphan, which may hold any slot's, was reaped.
  void ensure_every_socket_listening();

 private:
  static constexpr int max_steered_slots = 4096;  // the most workers a pool can have
  void adopt_slot_socket(int slot, Listener socket);

  ListenerConfig config_;
  std::string name_;
  std::string bound_address_;
  int backlog_ = 0;
  std::map<int, Listener> sockets_;  // by slot; a shared listener has one, at 0
  std::optional<ReuseportSteering> steering_;
  std::vector<bool> accepting_;  // by slot, as steer() was last told
  std::set<int> unsteered_slots_;  // refused by the kernel, warned about once
  std::uint64_t version_ = 0;
  mutable std::optional<std::vector<std::uint64_t>> inodes_;  // socket_inodes(), until a change
  void changed();
};

// `config` as a generation keeps it beside `sockets`: with the reuseport its sockets really have,
// so a later reload compares with that, not with what an unset reuseport would mean then.
ListenerConfig as_running(ListenerConfig config, const ListenerSockets& sockets);

// Opens a listener a reload added: its first socket (open_listeners), logged as `listening name=
// address= backlog=`, and for a per-slot listener the sockets of slots 0..workers-1. Throws
// ListenError.
std::shared_ptr<ListenerSockets> open_listener_sockets(const ListenerConfig& config, int workers);

// Why a reload cannot keep `wanted` beside `running`, the configuration of a listener of a
// generation still running: the same fixed address with another reuseport. The old sockets hold
// the port until their generation is gone, and a shared socket (no SO_REUSEPORT) and a per-slot
// group cannot bind one port side by side. nullopt when they can.
std::optional<std::string> reuseport_change_problem(const ListenerConfig& running, const ListenerConfig& wanted);

// Whether slot `slot` still needs its per-slot socket, by the Supervisor's status and the worker
// count wanted (a reload's target while one is under way). A slot needs it while a worker of it
// runs that is not stopping. Unsteered, also while it is within the wanted count and may run one
// again (not failed for good, not done: a socket no worker will ever accept on would hold its
// share of new connections forever), so a crashed slot in backoff keeps its socket, with its
// queue, for the restart. Steered, a slot in backoff needs none: closing it hands its queued
// connections to the slots that accept, and its next worker gets a new socket. Either way
// scale-down closes a removed slot's socket once its worker is asked to stop.
bool slot_socket_needed(const std::vector<SlotActivity>& activity, int workers_wanted, int slot, bool steered);

// The warning for a start with a per-slot listener, by the content of
// /proc/sys/net/ipv4/tcp_migrate_req (nullopt: the file is missing, before Linux 5.14): without
// that setting, closing a removed slot's socket resets the connections queued on it
// (protocols §4.1). nullopt when it is set.
std::optional<std::string> tcp_migrate_req_warning(const std::optional<std::string>& sysctl_value);

// Reads /proc/sys/net/ipv4/tcp_migrate_req (this network namespace's) and logs the warning, if any.
void warn_about_tcp_migrate_req();

}  // namespace clusterd
