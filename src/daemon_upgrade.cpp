// `clusterd upgrade`, the Daemon's part: the state handed to the binary executed in this process,
// and the pool taken over on the other side (upgrade_exec.h, upgrade_state.h).
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config.h"
#include "process.h"
#include "control_protocol.h"
#include "daemon.h"
#include "upgrade_exec.h"
#include "version.h"

namespace clusterd {
namespace {

// The answer to the client that asked for the upgrade, written once on its connection (which
// this binary did not accept, so it is not one of the control server's) and closed.
void answer_handed_client(int fd, const std::string& reply) {
  const std::string line = reply + "\n";
  if (::write(fd, line.data(), line.size()) < 0) {
    spdlog::debug("cannot answer the upgrade's client: {}", errno);
  }
  ::close(fd);
}

}  // namespace

UpgradeState Daemon::upgrade_state(RequestId id) {
  const std::uint64_t generation = supervisor_.generation();
  const HandedOverPool pool = supervisor_.hand_over(Clock::now());
  UpgradeState state;
  state.from_version = version;
  state.config = to_toml(supervisor_.config_of(generation));
  state.config_file = config_path_;
  state.executable = generations_.at(generation).executable;
  state.user = generations_.at(generation).user;
  state.generation = generation;
  state.next_instance = pool.next_instance;
  state.counters = pool.counters;
  state.slots = pool.slots;
  for (const auto& [config, sockets] : generations_.at(generation).listeners) {
    HandedListener listener;
    listener.name = sockets->name();
    listener.bound_address = sockets->bound_address();
    listener.backlog = sockets->backlog();
    listener.per_slot = sockets->per_slot();
    for (const auto& [slot, socket] : sockets->sockets()) {
      listener.unix_path = socket.unix_path();
      listener.unix_mode = socket.unix_mode();
      listener.sockets.push_back({slot, socket.fd()});
    }
    listener.steering = sockets->steering_handover();
    state.listeners.push_back(std::move(listener));
  }
  state.socket_unit = socket_unit_;
  for (const auto& [name, inode] : fd_store_) {
    state.fd_store.push_back(name);
  }
  if (control_) {
    state.control_fd = control_->socket_fd();
    state.control_path = control_->path();
    if (const int client = control_->connection_fd(id); client >= 0) {
      state.client_fd = client;
    }
  }
  if (metrics_) {
    state.metrics_fd = metrics_->listener().fd();
    state.metrics_address = metrics_->listener().bound_address();
  }
  if (const auto& cgroups = workers_.cgroups()) {
    state.cgroup_parent = cgroups->parent();
    state.cgroup_parent_fd = cgroups->parent_fd();
    state.cgroup_parent_created = cgroups->created_parent();
  }
  for (const HandedOverWorker& worker : pool.workers) {
    HandedWorker handed;
    handed.id = worker.id;
    handed.pid = worker.pid;
    handed.uptime_s = std::chrono::duration<double>(worker.uptime).count();
    handed.restarts = worker.restarts;
    handed.notify_status = worker.notify_status;
    state.workers.push_back(std::move(handed));
  }
  workers_.hand_over(state);
  return state;
}

void Daemon::upgrade(RequestId id, const std::optional<std::string>& requested) {
  if (const auto blocker = supervisor_.upgrade_blocker()) {
    control_->reply(id, error_reply("upgrade refused: " + *blocker));
    return;
  }
  const auto usable = usable_binary(requested.value_or(installed_binary()));
  // A binary that cannot take the state over would end this process, and every worker with it:
  // it is asked first (bounded by probe_limit_ms).
  const auto problem = usable ? probe_binary(*usable) : usable.error();
  if (problem) {
    spdlog::warn("upgrade refused: {}", *problem);
    control_->reply(id, error_reply("upgrade refused: " + *problem));
    return;
  }
  const std::string& binary = *usable;
  spdlog::info("upgrading in place binary={} by=\"control {}\" workers={}", binary, control_->peer_of(id),
               workers_.size());
  const UpgradeState state = upgrade_state(id);
  workers_.outputs().flush_before_exec();
  spdlog::default_logger()->flush();
  restore_nofile_limit();  // the new binary raises it again, remembering the original for its workers
  const std::string error = exec_upgrade(binary, state);
  raise_nofile_limit();
  spdlog::error("upgrade failed, this binary goes on: {}", error);
  control_->reply(id, error_reply("upgrade failed, the running clusterd goes on: " + error));
}

void Daemon::take_over(const UpgradeState& state, const std::optional<std::string>& refused) {
  taken_over_ = true;
  if (state.notify_directory && state.notify_directory_lock) {
    workers_.adopt_notify_directory(NotifyDirectory::adopt(*state.notify_directory, Fd(*state.notify_directory_lock)));
  }
  HandedOverPool pool{state.generation, state.next_instance, state.counters, state.slots, {}};
  const bool timestamps = supervisor_.config_of(1).output.timestamps;
  std::vector<int> not_taken_over;
  for (const HandedWorker& worker : state.workers) {
    if (auto adopted = workers_.adopt(worker, timestamps); !adopted) {
      spdlog::error("cannot take over worker slot={} pid={}: {}; its slot starts a new one", worker.id.slot, worker.pid,
                    adopted.error());
      not_taken_over.push_back(worker.id.slot);
      continue;
    }
    pool.workers.push_back({worker.id, worker.pid,
                            std::chrono::duration_cast<Duration>(std::chrono::duration<double>(worker.uptime_s)),
                            worker.restarts, worker.notify_status});
  }
  execute(supervisor_.adopt(pool, Clock::now()));
  if (refused) {
    spdlog::error("upgrade refused by the new binary, this one goes on: {}", *refused);
  } else {
    spdlog::info("upgraded in place from_version={} version={} pid={} workers={}", state.from_version, version,
                 ::getpid(), pool.workers.size());
  }
  if (state.client_fd) {
    answer_handed_client(*state.client_fd,
                         refused ? error_reply("upgrade refused by the new binary, the running clusterd goes on: " +
                                               *refused)
                                 : upgrade_reply(::getpid(), version, state.from_version,
                                                 static_cast<int>(pool.workers.size()), not_taken_over));
  }
}

}  // namespace clusterd
