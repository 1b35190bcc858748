// The pure state machine of clusterd: its events, the deadlines it keeps, and the reconciliation
// of wanted and running workers after each one, graceful and quick stop included.
#include "supervisor.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace clusterd {
namespace {

void consider(std::optional<TimePoint>& nearest, const std::optional<TimePoint>& candidate) {
  if (candidate && (!nearest || *candidate < *nearest)) {
    nearest = candidate;
  }
}

}  // namespace

Supervisor::Supervisor(const Config& config, int worker_count, std::function<double()> uniform01)
    : Supervisor(std::make_shared<const Config>(config), worker_count, std::move(uniform01)) {}

Supervisor::Supervisor(std::shared_ptr<const Config> config, int worker_count, std::function<double()> uniform01)
    : uniform01_(std::move(uniform01)), wanted_(worker_count) {
  configs_.emplace(generation_, std::move(config));
}

std::set<const Config*> Supervisor::configs_in_use() const {
  std::set<const Config*> in_use;
  for (const auto& [generation, config] : configs_) {
    in_use.insert(config.get());
  }
  if (queued_reload_) {
    in_use.insert(queued_reload_->config.get());
  }
  return in_use;
}

const Config& Supervisor::config_of(std::uint64_t generation) const { return *configs_.at(generation); }

std::vector<Action> Supervisor::handle(const Event& event, TimePoint now) {
  actions_.clear();
  std::visit([&](const auto& concrete) { on_event(concrete, now); }, event);
  if (started_) {
    reconcile(now);
  }
  // Only the current generation's config is always in use; with no other there is nothing to drop
  // (the common case, which so costs nothing per event).
  if (configs_.size() > 1) {
    const std::set<std::uint64_t> in_use = generations_in_use();
    std::erase_if(configs_, [&](const auto& entry) { return !in_use.contains(entry.first); });
  }
  return std::exchange(actions_, {});
}

std::optional<TimePoint> Supervisor::next_deadline() const {
  if (exiting_) {
    return std::nullopt;
  }
  std::optional<TimePoint> nearest;
  if (!stopping_) {
    const std::vector<bool> replaced = slots_served_by(Role::replacement);
    for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
      const Slot& slot = slots_[index];
      // A slot whose replacement is starting waits for that worker, not for its backoff.
      if (slot.state == SlotState::backoff && !replaced[index]) {
        consider(nearest, slot.restart_at);
      }
      if (slot.recycle_reason) {
        consider(nearest, slot.recycle_retry_at);
      }
    }
    consider(nearest, next_rss_sample_);
  }
  for (const Worker& worker : workers_) {
    if (worker.killed) {
      continue;
    }
    if (worker.stop_requested) {
      consider(nearest, worker.kill_at);
      continue;
    }
    if (worker.state == WorkerState::starting) {
      consider(nearest, worker.ready_deadline);
      consider(nearest, worker.ready_after);
    } else {
      consider(nearest, worker.watchdog_deadline);
      if (!stopping_ && worker.role == Role::primary) {
        consider(nearest, worker.recycle_at);
      }
    }
  }
  return nearest;
}

std::set<std::uint64_t> Supervisor::generations_in_use() const {
  std::set<std::uint64_t> in_use{generation_};
  if (reload_) {
    in_use.insert(reload_->generation);
  }
  for (const Slot& slot : slots_) {
    in_use.insert(slot.generation);
  }
  for (const Worker& worker : workers_) {
    in_use.insert(worker.id.generation);
  }
  return in_use;
}

StatusSnapshot Supervisor::status(TimePoint now) const {
  StatusSnapshot snapshot;
  snapshot.generation = generation_;
  if (reload_) {
    snapshot.reloading_to = reload_->generation;
  }
  snapshot.workers_wanted = wanted_;
  snapshot.workers_ready = ready_primaries();
  snapshot.stopping = stopping_;
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    const Slot& slot = slots_[index];
    SlotStatus entry;
    entry.slot = static_cast<int>(index);
    entry.state = slot.state;
    entry.restarts = slot.restarts;
    entry.last_exit = slot.last_exit;
    if (slot.state == SlotState::backoff && slot.restart_at) {
      entry.next_restart_in = std::max(Duration{0}, std::chrono::duration_cast<Duration>(*slot.restart_at - now));
    }
    snapshot.slots.push_back(std::move(entry));
  }
  // One pass over the workers, not one per slot: the daemon asks for this after every event
  // when a listener is per-slot.
  for (const Worker& worker : workers_) {
    if (worker.id.slot >= 0 && static_cast<std::size_t>(worker.id.slot) < snapshot.slots.size()) {
      snapshot.slots[static_cast<std::size_t>(worker.id.slot)].workers.push_back(
          {worker.id, worker.pid, worker.state, std::chrono::duration_cast<Duration>(now - worker.started_at),
           worker.notify_status});
    }
  }
  return snapshot;
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
  log(LogSeverity::debug, fmt::format("worker spawned slot={} gen={} pid={}", event.id.slot,
                                      event.id.generation, event.pid));
}

void Supervisor::on_event(const SpawnFailed& event, TimePoint now) {
  const std::optional<Worker> worker = take_worker(event.id);
  if (!worker) {
    return;
  }
  log(LogSeverity::error,
      fmt::format("cannot start worker slot={} gen={} step={} error=\"{}\"", event.id.slot,
                  event.id.generation, event.failure.step, std::strerror(event.failure.error)));
  // fork() failing (EAGAIN, ENOMEM) is the system's trouble, not the program's: back off like a
  // crash rather than take the "cannot be executed" path meant for configuration problems.
  worker_ended(*worker, ExitCode{1}, now);
}

void Supervisor::on_event(const Execed& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->state != WorkerState::starting || worker->stop_requested) {
    return;
  }
  if (exec_failure_reported_) {
    exec_failure_reported_ = false;
    log(LogSeverity::info, fmt::format("worker program can be executed again program={}",
                                       config_of(event.id.generation).command.front()));
  }
  const ReadyConfig& ready = config_of(event.id.generation).ready;
  switch (ready.mode) {
    case ReadyMode::exec:
      mark_ready(*worker, now);
      break;
    case ReadyMode::uptime:
      worker->ready_after = now + ready.min_uptime;
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
    log(LogSeverity::debug, fmt::format("worker sent MAINPID=, ignored slot={} pid={}", event.id.slot, worker->pid));
  }
  if (worker->stop_requested) {
    return;
  }
  if (message.extend_timeout && worker->state == WorkerState::starting) {
    worker->ready_deadline = now + std::chrono::duration_cast<Duration>(*message.extend_timeout);
  }
  if (message.ready && worker->state == WorkerState::starting && ready.mode == ReadyMode::notify) {
    mark_ready(*worker, now);
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

void Supervisor::on_event(const RssSampled& event, TimePoint) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->role != Role::primary || worker->stop_requested) {
    return;
  }
  const auto& limit = config_of(event.id.generation).recycle.max_rss;
  Slot& slot = slot_of(event.id);
  if (limit && event.rss_bytes > *limit && !slot.recycle_reason) {
    slot.recycle_reason = "max_rss";
    log(LogSeverity::info, fmt::format("worker over recycle.max_rss slot={} gen={} pid={} rss={} max_rss={}",
                                       event.id.slot, event.id.generation, worker->pid, event.rss_bytes, *limit));
  }
}

void Supervisor::on_event(const StopRequested& event, TimePoint now) {
  if (!started_) {
    return;
  }
  if (reload_) {
    abandon_reload("clusterd is stopping", now);
  }
  for (RequestId request : queued_reload_ ? queued_reload_->requests : std::vector<RequestId>{}) {
    actions_.push_back(ReloadFinished{{request}, false, 0, "clusterd is stopping"});
  }
  queued_reload_.reset();
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
    worker.stop_requested = true;
    worker.state = WorkerState::stopping;
    if (!worker.killed) {
      worker.killed = true;
      actions_.push_back(SendSignal{worker.id, SIGKILL});
    }
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
  const int workers = std::clamp(event.workers, 1, 4096);
  auto config = event.config ? event.config : configs_.at(generation_);
  if (reload_) {
    // At most one reload waits; later requests join it and the newest configuration wins.
    if (queued_reload_) {
      requests.insert(requests.begin(), queued_reload_->requests.begin(), queued_reload_->requests.end());
    }
    queued_reload_ = QueuedReload{std::move(config), workers, std::move(requests)};
    log(LogSeverity::info, fmt::format("reload queued behind generation={}", reload_->generation));
    return;
  }
  start_reload(std::move(config), workers, std::move(requests), now);
}

void Supervisor::on_event(const ScaleRequested& event, TimePoint) {
  if (stopping_ || !started_) {
    return;
  }
  const int workers = std::clamp(event.workers, 1, 4096);
  if (reload_) {
    // Scaling during a reload sets the new generation's target.
    const int old_target = reload_->target;
    std::erase_if(reload_->queue, [&](int slot) { return slot >= workers; });
    for (int slot = old_target; slot < workers; ++slot) {
      reload_->queue.push_back(slot);
    }
    reload_->target = workers;
    resize_slots(std::max<int>(static_cast<int>(slots_.size()), workers));
  } else {
    resize_slots(std::max<int>(static_cast<int>(slots_.size()), workers));
    wanted_ = workers;
  }
  log(LogSeverity::info, fmt::format("scaling workers={}", workers));
}

void Supervisor::on_event(const Tick&, TimePoint) {
  // Nothing to record: reconcile() acts on every deadline that has passed.
}

// ---- reconciliation

void Supervisor::reconcile(TimePoint now) {
  if (exiting_) {
    return;
  }
  check_worker_deadlines(now);
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
  sample_rss(now);
  report_readiness();
  check_exit();
}

// One pass, by index: what a deadline triggers may spawn a worker (appended, which can move the
// others in memory) but never removes one, so the index of each worker seen so far stays valid.
// Workers spawned here have no deadline passed yet and are not visited.
void Supervisor::check_worker_deadlines(TimePoint now) {
  const std::size_t count = workers_.size();
  for (std::size_t index = 0; index < count; ++index) {
    Worker* worker = &workers_[index];
    const WorkerId id = worker->id;
    if (worker->killed) {
      continue;
    }
    if (worker->stop_requested) {
      if (worker->kill_at && *worker->kill_at <= now) {
        worker->killed = true;
        log(LogSeverity::warn, fmt::format("worker did not stop within grace; killing slot={} gen={} pid={} grace={}",
                                           id.slot, id.generation, worker->pid,
                                           format_duration(config_of(id.generation).stop.grace)));
        actions_.push_back(SendSignal{id, SIGKILL});
      }
      continue;
    }
    if (worker->state == WorkerState::starting) {
      if (worker->ready_after && *worker->ready_after <= now) {
        mark_ready(*worker, now);
      } else if (worker->ready_deadline && *worker->ready_deadline <= now) {
        not_ready_in_time(*worker, now);
      }
      continue;
    }
    if (worker->watchdog_deadline && *worker->watchdog_deadline <= now) {
      worker->watchdog_deadline.reset();
      worker->killed = true;
      log(LogSeverity::error, fmt::format("worker watchdog expired slot={} gen={} pid={}", id.slot,
                                          id.generation, worker->pid));
      actions_.push_back(SendSignal{id, SIGKILL});
      continue;
    }
    if (worker->role == Role::primary && worker->recycle_at && *worker->recycle_at <= now) {
      worker->recycle_at.reset();
      Slot& slot = slot_of(id);
      if (!slot.recycle_reason) {
        slot.recycle_reason = "max_lifetime";
      }
    }
  }
}

void Supervisor::replenish_slots(TimePoint now) {
  const std::vector<bool> primary = slots_served_by(Role::primary);
  const std::vector<bool> replacement = slots_served_by(Role::replacement);
  for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
    const int slot_number = static_cast<int>(index);
    if (primary[index] || replacement[index]) {
      continue;
    }
    Slot& slot = slots_[index];
    if (slot.state == SlotState::backoff && slot.restart_at && *slot.restart_at <= now) {
      slot.state = SlotState::running;
      slot.restart_at.reset();
      ++slot.restarts;
      spawn(slot_number, slot.generation, Role::primary, now);
    } else if (slot.state == SlotState::running) {
      spawn(slot_number, slot.generation, Role::primary, now);
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
    stop_worker(worker, now);
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

std::optional<Supervisor::Worker> Supervisor::take_worker(const WorkerId& id) {
  auto found = std::find_if(workers_.begin(), workers_.end(), [&](const Worker& worker) { return worker.id == id; });
  if (found == workers_.end()) {
    return std::nullopt;
  }
  Worker worker = *found;
  workers_.erase(found);
  return worker;
}

Supervisor::Worker* Supervisor::worker_in(int slot, Role role) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id.slot == slot && worker.role == role; });
  return found == workers_.end() ? nullptr : &*found;
}

const Supervisor::Worker* Supervisor::worker_in(int slot, Role role) const {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id.slot == slot && worker.role == role; });
  return found == workers_.end() ? nullptr : &*found;
}

std::vector<bool> Supervisor::slots_served_by(Role role) const {
  std::vector<bool> served(slots_.size(), false);
  for (const Worker& worker : workers_) {
    if (worker.role == role && worker.id.slot >= 0 && static_cast<std::size_t>(worker.id.slot) < served.size()) {
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
