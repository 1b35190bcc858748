// The Daemon's answers to operators: SIGHUP and `reload`, SIGTTIN/SIGTTOU and `scale`, `restart`,
// `status` and `stop` over the control socket, and the listeners a reloaded configuration needs.
#include "daemon.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "control_protocol.h"
#include "metrics_text.h"
#include "mount_table.h"
#include "process_tree.h"
#include "version.h"

namespace clusterd {
namespace {

// Two listener configurations stand for the same sockets when they bind the same thing the same
// way. Port 0 binds a different port each time, so such listeners are told apart by their names.
// A wanted reuseport left unset leaves the choice to clusterd, and keeping the sockets that run
// is its choice (sockets systemd passed stay shared).
bool same_socket(const ListenerConfig& running, const ListenerConfig& wanted) {
  const bool kernel_port = running.address.family != AddressFamily::unix_path && running.address.port == 0;
  const bool same_reuseport = !wanted.reuseport || reuseport_in_effect(running) == reuseport_in_effect(wanted);
  return running.address == wanted.address && running.ipv6_only == wanted.ipv6_only && same_reuseport &&
         (!kernel_port || running.name == wanted.name);
}

// What a running clusterd cannot change in place: where it logs (log.level is applied when the
// reload finishes), and how a listening socket it keeps was made.
std::vector<std::string> keys_needing_restart(const Config& running, const Config& next,
                                              const std::optional<OutputRouter::FileSettings>& output_file) {
  std::vector<std::string> keys;
  if (running.log.file != next.log.file) {
    keys.push_back("log.file");
  }
  if (running.cgroup.mode != next.cgroup.mode) {
    keys.push_back("cgroup.mode");
  }
  // output.file is opened at start and written to whatever a reload says (SIGUSR1 reopens it):
  // compared with what is open, not with the last file read.
  const std::optional<std::string> open_path = output_file ? std::optional(output_file->path) : std::nullopt;
  if (open_path != next.output.file) {
    keys.push_back("output.file");
  } else if (output_file) {
    if (output_file->max_size != next.output.max_size) {
      keys.push_back("output.max_size");
    }
    if (output_file->keep != next.output.keep) {
      keys.push_back("output.keep");
    }
  }
  for (std::size_t index = 0; index < next.listeners.size(); ++index) {
    const ListenerConfig& wanted = next.listeners[index];
    for (const ListenerConfig& kept : running.listeners) {
      if (!same_socket(kept, wanted)) {
        continue;
      }
      if (kept.backlog != wanted.backlog) {
        keys.push_back(fmt::format("listen[{}].backlog", index));
      }
      if (kept.address.family == AddressFamily::unix_path && kept.mode != wanted.mode) {
        keys.push_back(fmt::format("listen[{}].mode", index));
      }
    }
  }
  return keys;
}

}  // namespace

std::optional<int> Daemon::accepted_workers_setting() const {
  for (auto entry = generations_.rbegin(); entry != generations_.rend(); ++entry) {
    if (!entry->second.abandoned) {
      return entry->second.workers_setting;
    }
  }
  return std::nullopt;
}

void Daemon::reload(std::optional<RequestId> request) {
  // Read and check everything first: a broken file changes nothing (interface §4.2).
  auto prepared = reload_loader_();
  const Config& current = supervisor_.config_of(supervisor_.generation());
  // `answer`: what the control client is told, when it says more than the log's summary line.
  auto refuse = [this, request](const std::string& why, const std::string& answer = {}) {
    spdlog::error("reload refused: {}; the running workers keep serving", why);
    if (request && control_) {
      control_->reply(*request,
                      reload_reply(false, supervisor_.generation(), "reload refused: " + (answer.empty() ? why : answer)));
    }
  };
  if (!prepared) {
    for (const Diagnostic& diagnostic : prepared.error()) {
      spdlog::error("reload refused: {}", diagnostic.to_string());
    }
    // The reply carries the first few problems themselves; the log has every one.
    const std::string summary = fmt::format("the configuration has {} problem(s)", prepared.error().size());
    std::string answer = summary + ": ";
    constexpr std::size_t shown = 3;
    for (std::size_t index = 0; index < std::min(shown, prepared.error().size()); ++index) {
      answer += (index == 0 ? "" : "; ") + prepared.error()[index].to_string();
    }
    if (prepared.error().size() > shown) {
      answer += "; …";
    }
    refuse(summary, answer);
    return;
  }
  if (prepared->config.name != current.name) {
    refuse(fmt::format("name cannot change in a reload (\"{}\" → \"{}\"); restart clusterd instead", current.name,
                       prepared->config.name));
    return;
  }
  // Clients find the instance by its socket: moving it would lose them (interface §4.2).
  if (prepared->config.control != current.control) {
    refuse("control.socket cannot change in a reload; restart clusterd instead");
    return;
  }
  // The file's `workers` applies only when it changed since it was last loaded, so a count set
  // by scaling survives reloads (interface §4.3); an abandoned reload's file was never loaded.
  std::optional<int> workers;
  if (prepared->config.workers != accepted_workers_setting()) {
    workers = resolve_worker_count_(prepared->config);
  }
  auto listeners = listeners_for(prepared->config, workers.value_or(supervisor_.workers_wanted()));
  if (!listeners) {
    refuse(listeners.error());
    return;
  }
  auto metrics = metrics_change_for(prepared->config);
  if (!metrics) {
    refuse(metrics.error());
    return;
  }
  warn_about_per_slot_scale_down(*listeners);
  for (const std::string& warning : prepared->config.warnings) {
    spdlog::warn("reload: {}", warning);
  }
  std::vector<std::string> restart_needed = keys_needing_restart(current, prepared->config,
                                                                   workers_.outputs().file_settings());
  if (!restart_needed.empty()) {
    spdlog::warn("reload: changed keys that take effect only when clusterd restarts: {}",
                 fmt::join(restart_needed, ", "));
  }
  const std::uint64_t generation = next_generation_++;
  const std::optional<int> setting = prepared->config.workers;
  auto config = std::make_shared<const Config>(std::move(prepared->config));
  const bool may_hang = launch_may_hang(prepared->executable, config->directory);
  generations_.emplace(generation, Generation{{config, std::move(prepared->executable), std::move(prepared->user),
                                               std::move(*listeners), may_hang},
                                              setting, false, std::move(restart_needed)});
  if (metrics->changed) {
    // clusterd's own endpoint, not the workers': it moves when the reload is accepted.
    serve_metrics(config->metrics.listen, std::move(metrics->listener));
  }
  keep_listeners_in_systemd();
  pending_.push_back(ReloadRequested{generation, std::move(config), workers, request});
}

tl::expected<Daemon::MetricsChange, std::string> Daemon::metrics_change_for(const Config& config) {
  const std::optional<Address> now = metrics_ ? std::optional(metrics_->configured()) : std::nullopt;
  MetricsChange change;
  change.changed = config.metrics.listen != now;
  if (!change.changed || !config.metrics.listen) {
    return change;
  }
  try {
    change.listener = MetricsServer::open(*config.metrics.listen);
  } catch (const ListenError& error) {
    return tl::make_unexpected(fmt::format("metrics.listen: {}; the metrics endpoint stays {}", error.what(),
                                           metrics_ ? "at " + metrics_->bound_address() : "off"));
  }
  return change;
}

void Daemon::serve_metrics(std::optional<Address> address, std::optional<Listener> listener) {
  if (metrics_) {
    spdlog::info("metrics endpoint closed address={}", metrics_->bound_address());
    metrics_.reset();
  }
  if (!address || !listener) {
    return;
  }
  metrics_.emplace(std::move(*address), std::move(*listener), loop_,
                   [this] { return metrics_text(instance_status_now(true)); });
  spdlog::info("metrics endpoint listening address={}", metrics_->bound_address());
}

void Daemon::answer_logs(RequestId id, const LogsRequest& request) {
  const Config& config = supervisor_.config_of(supervisor_.generation());
  if (config.output.mode != OutputMode::prefix) {
    control_->reply(id, error_reply("logs: workers write to clusterd's stdout and stderr themselves with output = "
                                    "\"inherit\", so clusterd never sees their lines; set output = \"prefix\" "
                                    "(and reload) to keep and follow them"));
    return;
  }
  if (request.slot && *request.slot >= workers_wanted_after_queued() && !worker_logs_.has_slot(*request.slot)) {
    control_->reply(id, error_reply(fmt::format("logs: no slot {}: the pool has slots 0-{}", *request.slot,
                                                workers_wanted_after_queued() - 1)));
    return;
  }
  worker_logs_.answer(*control_, id, request);
}

void Daemon::on_control_request(RequestId id, const Request& request) {
  if (const auto* status = std::get_if<StatusRequest>(&request)) {
    control_->reply(id, status_reply(instance_status_now(status->pss)));
    return;
  }
  // A scrape is rare next to `status` (progress lines, `watch`): its PSS gauge stays.
  if (std::holds_alternative<MetricsRequest>(request)) {
    control_->reply(id, metrics_reply(metrics_text(instance_status_now(true))));
    return;
  }
  if (const auto* logs = std::get_if<LogsRequest>(&request)) {
    answer_logs(id, *logs);
    return;
  }
  if (const auto* upgrade = std::get_if<UpgradeRequest>(&request)) {
    if (upgrade_wanted_) {
      control_->reply(id, error_reply("upgrade refused: another upgrade is under way"));
    } else {
      upgrade_wanted_.emplace(id, *upgrade);
    }
    return;
  }
  if (std::holds_alternative<ReloadRequest>(request)) {
    spdlog::info("reload requested over the control socket");
    reload(id);  // answered when it finished, was abandoned or was refused
    return;
  }
  const bool stopping = supervisor_.status(Clock::now()).stopping;
  const std::string by = "control " + control_->peer_of(id);
  if (const auto* scale = std::get_if<ScaleRequest>(&request)) {
    if (stopping) {
      control_->reply(id, error_reply("clusterd is stopping"));
      return;
    }
    const int now = workers_wanted_after_queued();
    const int workers = scale->relative ? now + scale->workers : scale->workers;
    if (workers < 1 || workers > 4096) {
      control_->reply(id, error_reply(fmt::format("scale: {} workers now, so {}{} would make {}; the count is 1-4096",
                                                  now, scale->workers < 0 ? "" : "+", scale->workers, workers)));
      return;
    }
    pending_.push_back(ScaleRequested{workers, by});
    control_->reply(id, scale_reply(workers));
    return;
  }
  if (const auto* restart = std::get_if<RestartRequest>(&request)) {
    const int workers = workers_wanted_after_queued();
    if (stopping) {
      control_->reply(id, error_reply("clusterd is stopping"));
    } else if (supervisor_.reloading()) {
      control_->reply(id, error_reply("a reload is under way and replaces every worker; restart after it"));
    } else if (restart->slot && *restart->slot >= workers) {
      control_->reply(id, error_reply(workers == 1 ? fmt::format("restart: no slot {}; the only slot is 0", *restart->slot)
                                                   : fmt::format("restart: no slot {}; the slots are 0-{}",
                                                                 *restart->slot, workers - 1)));
    } else {
      std::vector<int> slots;
      for (int slot = 0; slot < workers; ++slot) {
        if (!restart->slot || *restart->slot == slot) {
          slots.push_back(slot);
        }
      }
      pending_.push_back(RestartRequested{restart->slot, by});
      control_->reply(id, restart_reply(slots));
    }
    return;
  }
  // stop: answered when the stop begins; the connection then stays open until clusterd exits.
  // A second `stop` only waits: unlike a second SIGTERM it does not kill the workers at once.
  control_->reply(id, ok_reply());
  if (!stopping) {
    spdlog::info("stop requested over the control socket");
    pending_.push_back(StopRequested{false});
  }
}

// Requests read in one round of the loop are all answered before the first of their events is
// handled: two `scale +1` on their way must make two workers more, not both the same one, so a
// relative request counts from the last target queued, not from the count the Supervisor has.
int Daemon::workers_wanted_after_queued() const {
  int workers = supervisor_.workers_wanted();
  for (const Event& event : pending_) {
    if (const auto* to = std::get_if<ScaleRequested>(&event)) {
      workers = to->workers;
    } else if (const auto* by = std::get_if<ScaleBy>(&event)) {
      workers = std::clamp(workers + by->delta, 1, 4096);  // as Supervisor::scale_to clamps it
    }
  }
  return workers;
}

InstanceStatus Daemon::instance_status_now(bool pss) {
  InstanceStatus status;
  const Config& config = supervisor_.config_of(supervisor_.generation());
  status.name = config.name;
  status.pid = static_cast<int>(::getpid());
  status.version = version;
  status.config = config_path_;
  const Generation& generation = generations_.at(supervisor_.generation());
  int fd = 3;
  for (const auto& [listener_config, listener] : generation.listeners) {
    status.listeners.push_back({listener_config.name, listener->bound_address(), fd++, listener->per_slot(),
                                static_cast<int>(listener->socket_count()), listener->steered()});
  }
  const TimePoint now = Clock::now();
  status.snapshot = supervisor_.status(now);
  status.now_unix = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::set<int> live;
  ProcessTreeReader trees(pss);
  for (const SlotStatus& slot : status.snapshot.slots) {
    for (const WorkerStatus& worker : slot.workers) {
      if (worker.pid <= 0) {
        continue;
      }
      if (const auto tree = trees.read(worker.pid)) {
        live.insert(worker.pid);
        auto cgroup = workers_.cgroup_cost(worker.pid);
        // The cgroup's count also keeps the CPU of processes that are gone: a steadier rate.
        const double cpu_seconds = cgroup ? cgroup->cpu_seconds : tree->cpu_seconds;
        status.costs[worker.pid] = {cpu_rates_.sample(worker.pid, cpu_seconds, now, worker.uptime), *tree,
                                    std::move(cgroup)};
      }
    }
  }
  cpu_rates_.keep_only(live);
  return status;
}

tl::expected<GenerationListeners, std::string> Daemon::listeners_for(const Config& config, int workers) {
  GenerationListeners listeners;
  for (const ListenerConfig& wanted : config.listeners) {
    std::shared_ptr<ListenerSockets> found;
    for (const auto& [key, generation] : generations_) {
      for (const auto& [listener_config, listener] : generation.listeners) {
        if (same_socket(listener_config, wanted)) {
          found = listener;
        } else if (auto problem = reuseport_change_problem(listener_config, wanted)) {
          return tl::make_unexpected(std::move(*problem));
        }
      }
    }
    if (!found) {
      try {
        found = open_listener_sockets(wanted, workers);
      } catch (const ListenError& error) {
        return tl::make_unexpected(std::string(error.what()));
      }
    } else if (auto problem = found->unix_directory_problem()) {
      // Kept as it is, yet refused: its directory was opened to others since it was bound, and
      // the file there is clusterd's to replace and remove (sockets.h).
      return tl::make_unexpected(std::move(*problem));
    }
    listeners.emplace_back(as_running(wanted, *found), std::move(found));
  }
  if (config.listeners.empty()) {
    // Sockets inherited from systemd with no [[listen]] configured stay what they were.
    const Generation& current = generations_.at(supervisor_.generation());
    if (current.config->listeners.empty()) {
      listeners = current.listeners;
    }
  }
  return listeners;
}

void Daemon::prune_generations() {
  if (generations_.size() == 1) {
    return;  // only the running generation, always in use: nothing to look for in every worker
  }
  const std::set<std::uint64_t> in_use = supervisor_.generations_in_use();
  for (auto entry = generations_.begin(); entry != generations_.end();) {
    if (in_use.contains(entry->first)) {
      ++entry;
      continue;
    }
    // Removed listeners close here, once no generation that uses them is left.
    entry = generations_.erase(entry);
  }
  keep_listeners_in_systemd();
}

}  // namespace clusterd
