// The pure state machine of clusterd: its events, and the reconciliation of wanted and running
// workers after each one, graceful and quick stop included.
#include "supervisor.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "errno_text.h"

namespace clusterd {

std::string worker_fields(const WorkerId& id, int pid) {
  return fmt::format("slot={} gen={} pid={}", id.slot, id.generation, pid);
}

Supervisor::Supervisor(const Config& config, int worker_count, std::function<double()> uniform01)
    : Supervisor(std::make_shared<const Config>(config), worker_count, std::move(uniform01)) {}

Supervisor::Supervisor(std::shared_ptr<const Config> config, int worker_count, std::function<double()> uniform01)
    : uniform01_(std::move(uniform01)), wanted_(worker_count) {
  configs_.emplace(generation_, std::move(config));
}

std::vector<Action> Supervisor::handle(const Event& event, TimePoint now) {
  return handle(std::span<const Event>(&event, 1), now);
}

std::vector<Action> Supervisor::handle(std::span<const Event> events, TimePoint now) {
  actions_.clear();
  for (const Event& event : events) {
    std::visit([&](const auto& concrete) { on_event(concrete, now); }, event);
  }
  if (started_) {
    reconcile(now);
  }
  // Only the current generation's config is always in use; with no other there is nothing to drop
  // (the common case, which so costs nothing per event).
  if (configs_.size() > 1) {
    const std::set<std::uint64_t> in_use = generations_in_use();
    std::erase_if(configs_, [&](const auto& entry) { return !in_use.contains(entry.first); });
  }
  next_deadline_ = nearest_deadline();
  return std::exchange(actions_, {});
}

std::set<std::uint64_t> Supervisor::generations_in_use() const {
  std::set<std::uint64_t> in_use{generation_};
  if (reload_) {
    in_use.insert(reload_->generation);
  }
  if (queued_reload_) {
    in_use.insert(queued_reload_->generation);
  }
  for (const Slot& slot : slots_) {
    in_use.insert(slot.generation);
  }
  for (const Worker& worker : workers_) {
    in_use.insert(worker.id.generation);
  }
  return in_use;
}

// ---- events

void Supervisor::on_event(const Start&, TimePoint) {
  started_ = true;
  resize_slots(wanted_);
}

void Supervisor::on_event(const Spawned& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr) {
    return;
  }
  worker->pid = event.pid;
  worker->started_at = now;
  worker->ready_deadline = now + config_of(event.id.generation).ready.timeout;
  log(LogSeverity::debug, "worker spawned " + worker_fields(event.id, event.pid));
  if (spawn_more_at_) {
    spawn_more_at_ = now + spawn_pause;  // the pause counts from the forks' end, not their start
  }
}

void Supervisor::on_event(const SpawnFailed& event, TimePoint now) {
  if (spawn_more_at_) {
    spawn_more_at_ = now + spawn_pause;
  }
  if (const std::optional<Worker> worker = take_worker(event.id)) {
    start_failed(*worker, event.failure, event.lasting, now);
  }
}

void Supervisor::on_event(const Execed& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->state != WorkerState::starting || worker->stopping) {
    return;
  }
  if (start_failure_reported_) {
    start_failure_reported_ = false;
    log(LogSeverity::info, fmt::format("worker program can be executed again program={}",
                                       config_of(event.id.generation).command.front()));
  }
  const Config& config = config_of(event.id.generation);
  worker->execed_at = now;
  switch (config.ready.mode) {
    case ReadyMode::automatic:
      if (config.listeners.empty()) {
        worker->ready_after = now + config.ready.min_uptime;  // a job runner: nothing to wait on
      } else {
        worker->probe_at = now + first_probe_delay;
        worker->probe_interval = first_probe_delay;
      }
      break;
    case ReadyMode::exec:
      mark_ready(*worker, now, "exec");
      break;
    case ReadyMode::uptime:
      worker->ready_after = now + config.ready.min_uptime;
      break;
    case ReadyMode::notify:
      break;  // READY=1 decides
  }
}

void Supervisor::on_event(const Notified& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr) {
    return;
  }
  const NotifyMessage& message = event.message;
  const ReadyConfig& ready = config_of(event.id.generation).ready;
  if (message.status) {
    worker->notify_status = message.status;
  }
  if (message.mainpid) {
    log(LogSeverity::debug, "worker sent MAINPID=, ignored " + worker_fields(event.id, worker->pid));
  }
  if (worker->stopping) {
    return;
  }
  if (message.extend_timeout && worker->state == WorkerState::starting) {
    // An extension only ever extends: a smaller value than what is left changes nothing.
    const TimePoint extended = now + std::chrono::duration_cast<Duration>(*message.extend_timeout);
    if (!worker->ready_deadline || extended > *worker->ready_deadline) {
      worker->ready_deadline = extended;
    }
  }
  if (message.ready && worker->state == WorkerState::starting) {
    if (ready.mode == ReadyMode::notify) {
      mark_ready(*worker, now, "READY=1");
    } else if (ready.mode == ReadyMode::automatic) {
      ready_message_in_auto_mode(*worker, now);
    }
  }
  if (message.watchdog && ready.watchdog && worker->watchdog_deadline) {
    worker->watchdog_deadline = now + *ready.watchdog;
  }
  if (message.watchdog_trigger && ready.mode == ReadyMode::notify) {
    worker->watchdog_deadline = now;  // expires in this reconcile
  }
  if (message.stopping && worker->state == WorkerState::ready) {
    worker->state = WorkerState::stopping;
  }
}

void Supervisor::on_event(const Exited& event, TimePoint now) {
  if (const std::optional<Worker> worker = take_worker(event.id)) {
    worker_ended(*worker, event.exit, now);
  }
}

// READY=1 in auto mode. A server master (gunicorn's arbiter, uWSGI's and php-fpm's masters)
// sends it before the child that serves has loaded the application: had it counted, a reload to
// a release whose application cannot load would stop the old workers. So while a worker has
// listening sockets, only its wait on one counts, and READY=1 only where that cannot be seen.
void Supervisor::ready_message_in_auto_mode(Worker& worker, TimePoint now) {
  const bool has_sockets = !config_of(worker.id.generation).listeners.empty();
  if (!has_sockets || worker.blind) {
    mark_ready(worker, now, "READY=1");
    return;
  }
  if (!worker.said_ready) {
    worker.said_ready = true;
    log(LogSeverity::debug, "worker sent READY=1; ready once seen waiting on its socket " +
                                worker_fields(worker.id, worker.pid));
  }
}

void Supervisor::on_event(const Probed& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->state != WorkerState::starting || worker->stopping) {
    return;
  }
  if (event.sign) {
    mark_ready(*worker, now, *event.sign);
    return;
  }
  if (!event.blind) {
    return;  // not waiting yet
  }
  if (worker->said_ready) {
    mark_ready(*worker, now, "READY=1");
    return;
  }
  worker->blind = true;
  if (worker->ready_after || !worker->execed_at) {
    return;  // said already for this worker
  }
  // Unseen is not unready: the worker is taken as ready after the minimum uptime, unless a sign
  // (READY=1 among them) comes first.
  const Duration min_uptime = config_of(event.id.generation).ready.min_uptime;
  worker->ready_after = std::max(now, *worker->execed_at + min_uptime);
  log(blind_reported_ ? LogSeverity::debug : LogSeverity::warn,
      fmt::format("cannot see whether the worker waits for connections {} reason=\"{}\"; it counts as ready "
                  "after ready.min_uptime={} unless it sends READY=1 (set ready.mode = \"notify\" or a "
                  "duration to choose)",
                  worker_fields(worker->id, worker->pid), *event.blind, format_duration(min_uptime)));
  blind_reported_ = true;
}

void Supervisor::on_event(const RssSampled& event, TimePoint) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->role != Role::primary || worker->stopping) {
    return;
  }
  const auto& limit = config_of(event.id.generation).recycle.max_rss;
  Slot& slot = slot_of(event.id);
  if (limit && event.rss_bytes > *limit && !slot.recycle_reason) {
    slot.recycle_reason = "max_rss";
    log(LogSeverity::info, fmt::format("worker over recycle.max_rss {} rss={} max_rss={}",
                                       worker_fields(event.id, worker->pid), event.rss_bytes, *limit));
  }
}

void Supervisor::on_event(const StopRequested& event, TimePoint now) {
  if (!started_) {
    return;
  }
  if (reload_) {
    abandon_reload("clusterd is stopping", now);
  }
  if (queued_reload_) {
    actions_.push_back(ReloadFinished{queued_reload_->requests, false, queued_reload_->generation,
                                      "clusterd is stopping"});
    queued_reload_.reset();
  }
  if (!stopping_ && !event.quick) {
    stopping_ = true;
    const StopConfig& stop = config_of(generation_).stop;
    actions_.push_back(NotifySystemd{"STOPPING=1"});
    log(LogSeverity::info, fmt::format("stopping workers={} signal={} grace={}", workers_.size(),
                                       signal_name(stop.signal), format_duration(stop.grace)));
    return;  // reconcile_shutdown sends the stop signals
  }
  // SIGQUIT, or a second SIGTERM/SIGINT: no more waiting.
  if (!stopping_) {
    actions_.push_back(NotifySystemd{"STOPPING=1"});
  }
  stopping_ = true;
  log(LogSeverity::info, fmt::format("stopping now workers={} signal=KILL", workers_.size()));
  for (Worker& worker : workers_) {
    kill_worker(worker, StopReason::shutdown);
  }
}

void Supervisor::on_event(const ReloadRequested& event, TimePoint now) {
  std::vector<RequestId> requests;
  if (event.request) {
    requests.push_back(*event.request);
  }
  if (stopping_ || !started_) {
    actions_.push_back(ReloadFinished{requests, false, 0, "clusterd is stopping"});
    return;
  }
  configs_[event.generation] = event.config ? event.config : configs_.at(generation_);
  if (reload_) {
    // At most one reload waits; later requests join it and the newest configuration wins. A
    // count the newest file does not change is the count the waiting one asked for.
    std::optional<int> workers = event.workers;
    if (queued_reload_) {
      requests.insert(requests.begin(), queued_reload_->requests.begin(), queued_reload_->requests.end());
      if (!workers) {
        workers = queued_reload_->workers;
      }
    }
    queued_reload_ = QueuedReload{event.generation, workers, std::move(requests)};
    log(LogSeverity::info, fmt::format("reload queued behind generation={} as generation={}", reload_->generation,
                                       event.generation));
    return;
  }
  start_reload(event.generation, event.workers, std::move(requests), now);
}

void Supervisor::on_event(const ScaleRequested& event, TimePoint) { scale_to(event.workers, event.by); }

void Supervisor::on_event(const ScaleBy& event, TimePoint) { scale_to(workers_wanted() + event.delta, event.by); }

void Supervisor::on_event(const RestartRequested& event, TimePoint) {
  if (stopping_ || !started_ || reload_) {
    return;  // a reload replaces every worker anyway
  }
  const std::string by = event.by.empty() ? "" : " by=" + event.by;
  for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
    if (event.slot && *event.slot != static_cast<int>(index)) {
      continue;
    }
    Slot& slot = slots_[index];
    const char* was = slot.state == SlotState::backoff  ? "backoff"
                      : slot.state == SlotState::failed ? "failed"
                      : slot.state == SlotState::done   ? "exited"
                                                        : nullptr;
    slot.restarts = 0;
    slot.last_exit.reset();
    slot.backoff.forget();
    slot.recycle_retry_at.reset();
    if (was != nullptr) {
      // replenish_slots starts it in this round.
      slot.state = SlotState::running;
      activity_changed_ = true;
      slot.restart_at.reset();
      log(LogSeverity::info, fmt::format("slot restart requested slot={} was={}{}", index, was, by));
    } else {
      slot.recycle_reason = "restart";
      log(LogSeverity::info, fmt::format("slot restart requested slot={}{}", index, by));
    }
  }
}

void Supervisor::on_event(const Tick&, TimePoint) {
  // Nothing to record: reconcile() acts on every deadline that has passed.
}

// The count wanted from now on, and after any reload: one under way heads for it, one waiting
// will, and one abandoned leaves it in place.
void Supervisor::scale_to(int requested, const std::string& by) {
  if (stopping_ || !started_) {
    return;
  }
  const int from = workers_wanted();
  const int workers = std::clamp(requested, 1, 4096);
  if (reload_) {
    reload_->target = workers;
  }
  if (queued_reload_) {
    queued_reload_->workers = workers;
  }
  resize_slots(std::max<int>(static_cast<int>(slots_.size()), workers));
  wanted_ = workers;
  log(LogSeverity::info, fmt::format("scaling workers={} from={}{}", workers, from, by.empty() ? "" : " by=" + by));
}

// ---- reconciliation

void Supervisor::reconcile(TimePoint now) {
  if (exiting_) {
    return;
  }
  act_on_due(now);
  if (stopping_) {
    reconcile_shutdown(now);
    return;
  }
  if (reload_) {
    advance_reload(now);
  }
  replenish_slots(now);
  scale_down(now);
  recycle_one(now);
  arm_rss_sample(now);
  report_readiness();
  check_exit();
}

void Supervisor::replenish_slots(TimePoint now) {
  if (spawn_more_at_) {
    return;  // the loop's turn first
  }
  const std::vector<bool> served = slots_served();
  int budget = spawn_budget;
  for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
    if (!served[index] && slots_[index].state == SlotState::running) {
      if (budget == 0) {
        spawn_more_at_ = now + spawn_pause;
        return;
      }
      spawn(static_cast<int>(index), slots_[index].generation, Role::primary, now);
      --budget;
    }
  }
}

void Supervisor::check_exit() {
  if (!workers_.empty() || reload_) {
    return;
  }
  const auto active_end = slots_.begin() + std::min<std::ptrdiff_t>(wanted_, static_cast<std::ptrdiff_t>(slots_.size()));
  const bool any_pending = std::any_of(slots_.begin(), active_end, [](const Slot& slot) {
    return slot.state == SlotState::running || slot.state == SlotState::backoff;
  });
  if (any_pending) {
    return;
  }
  const bool all_failed =
      std::all_of(slots_.begin(), active_end, [](const Slot& slot) { return slot.state == SlotState::failed; });
  const bool all_clean = std::all_of(slots_.begin(), active_end, [](const Slot& slot) {
    return slot.last_exit && is_clean_exit(*slot.last_exit);
  });
  exiting_ = true;
  if (all_failed) {
    log(LogSeverity::error, "every worker slot failed for good; exiting code=1");
    actions_.push_back(ExitDaemon{1});
    return;
  }
  const int code = all_clean ? 0 : 1;
  log(code == 0 ? LogSeverity::info : LogSeverity::error,
      fmt::format("no worker runs and none will be restarted; exiting code={}", code));
  actions_.push_back(ExitDaemon{code});
}

void Supervisor::reconcile_shutdown(TimePoint now) {
  for (Worker& worker : workers_) {
    stop_worker(worker, StopReason::shutdown, now);
  }
  if (workers_.empty()) {
    exiting_ = true;
    log(LogSeverity::info, "stopped code=0");
    actions_.push_back(ExitDaemon{0});
  }
}

void Supervisor::report_readiness() {
  const int ready = ready_primaries();
  std::string message;
  if (!ready_reported_ && ready >= wanted_) {
    ready_reported_ = true;
    message += "READY=1\n";
    log(LogSeverity::info, fmt::format("all workers ready workers={}", wanted_));
  }
  std::string status = fmt::format("{}/{} workers ready", ready, wanted_);
  if (reload_) {
    status += fmt::format(", reloading to generation {}", reload_->generation);
  }
  if (status != last_status_) {
    message += "STATUS=" + status + "\n";
    last_status_ = std::move(status);
  }
  if (!message.empty()) {
    message.pop_back();
    actions_.push_back(NotifySystemd{std::move(message)});
  }
}

// ---- lookups

Supervisor::Worker* Supervisor::find_worker(const WorkerId& id) {
  auto found = std::find_if(workers_.begin(), workers_.end(), [&](const Worker& worker) { return worker.id == id; });
  return found == workers_.end() ? nullptr : &*found;
}

Supervisor::Worker* Supervisor::find_instance(std::uint64_t instance) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id.instance == instance; });
  return found == workers_.end() ? nullptr : &*found;
}

std::optional<Supervisor::Worker> Supervisor::take_worker(const WorkerId& id) {
  auto found = std::find_if(workers_.begin(), workers_.end(), [&](const Worker& worker) { return worker.id == id; });
  if (found == workers_.end()) {
    return std::nullopt;
  }
  Worker worker = *found;
  workers_.erase(found);
  activity_changed_ = true;
  return worker;
}

Supervisor::Worker* Supervisor::worker_in(int slot, Role role) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id.slot == slot && worker.role == role; });
  return found == workers_.end() ? nullptr : &*found;
}

std::vector<bool> Supervisor::slots_served() const {
  std::vector<bool> served(slots_.size(), false);
  for (const Worker& worker : workers_) {
    if (worker.role != Role::retiring && worker.id.slot >= 0 && static_cast<std::size_t>(worker.id.slot) < served.size()) {
      served[static_cast<std::size_t>(worker.id.slot)] = true;
    }
  }
  return served;
}

int Supervisor::ready_primaries() const {
  return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [&](const Worker& worker) {
    return worker.role == Role::primary && worker.state == WorkerState::ready && worker.id.slot < wanted_;
  }));
}

void Supervisor::log(LogSeverity severity, std::string message) {
  actions_.push_back(Log{severity, std::move(message)});
}

}  // namespace clusterd
