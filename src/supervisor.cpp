// The pure state machine of clusterd: slots, restarts with backoff, graceful and quick stop.
#include "supervisor.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace clusterd {
namespace {

// `exit:1`, `signal:KILL`, `exec-failed`: the status= field of the log lines.
std::string describe_exit(const WorkerExit& exit) {
  if (const auto* code = std::get_if<ExitCode>(&exit)) {
    return fmt::format("exit:{}", code->code);
  }
  if (const auto* killed = std::get_if<KilledBySignal>(&exit)) {
    return fmt::format("signal:{}", signal_name(killed->signal));
  }
  return "exec-failed";
}

std::string seconds(Duration duration) {
  return format_duration_human(std::chrono::duration<double>(duration));
}

bool killed_by(const WorkerExit& exit, int signal) {
  const auto* killed = std::get_if<KilledBySignal>(&exit);
  return killed != nullptr && killed->signal == signal;
}

bool is_command_not_runnable(const WorkerExit& exit) {
  // A shell reports a command it cannot find or run as 127 / 126 (POSIX, "Exit Status").
  const auto* code = std::get_if<ExitCode>(&exit);
  return code != nullptr && (code->code == 126 || code->code == 127);
}

}  // namespace

Supervisor::Supervisor(const Config& config, int worker_count, std::function<double()> uniform01)
    : config_(config), uniform01_(std::move(uniform01)), wanted_(worker_count) {}

std::vector<Action> Supervisor::handle(const Event& event, TimePoint now) {
  actions_.clear();
  std::visit([&](const auto& concrete) { on_event(concrete, now); }, event);
  if (started_) {
    reconcile(now);
  }
  return std::exchange(actions_, {});
}

std::optional<TimePoint> Supervisor::next_deadline() const {
  std::optional<TimePoint> nearest;
  auto consider = [&](std::optional<TimePoint> candidate) {
    if (candidate && (!nearest || *candidate < *nearest)) {
      nearest = candidate;
    }
  };
  if (exiting_) {
    return std::nullopt;
  }
  if (!stopping_) {
    for (const Slot& slot : slots_) {
      if (slot.state == SlotState::backoff) {
        consider(slot.restart_at);
      }
    }
  }
  for (const Worker& worker : workers_) {
    if (!worker.killed) {
      consider(worker.kill_at);
    }
  }
  return nearest;
}

StatusSnapshot Supervisor::status(TimePoint now) const {
  StatusSnapshot snapshot;
  snapshot.generation = generation_;
  snapshot.workers_wanted = wanted_;
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
    for (const Worker& worker : workers_) {
      if (worker.id.slot == entry.slot) {
        entry.workers.push_back({worker.id, worker.pid, worker.state,
                                 std::chrono::duration_cast<Duration>(now - worker.started_at)});
      }
    }
    snapshot.slots.push_back(std::move(entry));
  }
  return snapshot;
}

void Supervisor::on_event(const Start&, TimePoint) {
  started_ = true;
  slots_.assign(static_cast<std::size_t>(wanted_), Slot(config_.restart));
}

void Supervisor::on_event(const Spawned& event, TimePoint now) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr) {
    return;
  }
  worker->pid = event.pid;
  worker->started_at = now;
  log(LogSeverity::debug, fmt::format("worker spawned slot={} gen={} pid={}", event.id.slot,
                                      event.id.generation, event.pid));
}

void Supervisor::on_event(const SpawnFailed& event, TimePoint now) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id == event.id; });
  if (found == workers_.end()) {
    return;
  }
  Worker worker = *found;
  workers_.erase(found);
  log(LogSeverity::error,
      fmt::format("cannot start worker slot={} gen={} step={} error=\"{}\"", event.id.slot,
                  event.id.generation, event.failure.step, std::strerror(event.failure.error)));
  // fork() failing (EAGAIN, ENOMEM) is the system's trouble, not the program's: back off like a
  // crash rather than take the "cannot be executed" path meant for configuration problems.
  worker_ended(worker, ExitCode{1}, now);
}

void Supervisor::on_event(const Execed& event, TimePoint) {
  Worker* worker = find_worker(event.id);
  if (worker == nullptr || worker->state != WorkerState::starting) {
    return;
  }
  worker->state = WorkerState::ready;
  if (exec_failure_reported_) {
    exec_failure_reported_ = false;
    log(LogSeverity::info, fmt::format("worker program can be executed again program={}",
                                       config_.command.front()));
  }
  log(LogSeverity::info, fmt::format("worker ready slot={} gen={} pid={}", event.id.slot,
                                     event.id.generation, worker->pid));
}

void Supervisor::on_event(const Exited& event, TimePoint now) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id == event.id; });
  if (found == workers_.end()) {
    return;
  }
  Worker worker = *found;
  workers_.erase(found);
  worker_ended(worker, event.exit, now);
}

void Supervisor::on_event(const StopRequested& event, TimePoint) {
  if (!started_) {
    return;
  }
  if (!stopping_ && !event.quick) {
    stopping_ = true;
    log(LogSeverity::info,
        fmt::format("stopping workers={} signal={} grace={}", workers_.size(),
                    signal_name(config_.stop.signal), format_duration(config_.stop.grace)));
    return;  // reconcile_shutdown sends the stop signals
  }
  // SIGQUIT, or a second SIGTERM/SIGINT: no more waiting.
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

void Supervisor::on_event(const Tick&, TimePoint) {
  // Nothing to record: reconcile() acts on every deadline that has passed.
}

void Supervisor::reconcile(TimePoint now) {
  if (exiting_) {
    return;
  }
  if (stopping_) {
    reconcile_shutdown(now);
    return;
  }
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    Slot& slot = slots_[index];
    const int slot_number = static_cast<int>(index);
    if (slot_number >= wanted_ || live_worker_of(slot_number) != nullptr) {
      continue;
    }
    if (slot.state == SlotState::backoff && slot.restart_at && *slot.restart_at <= now) {
      slot.state = SlotState::running;
      slot.restart_at.reset();
      ++slot.restarts;
      spawn(slot_number, now);
    } else if (slot.state == SlotState::running) {
      spawn(slot_number, now);
    }
  }

  if (!workers_.empty()) {
    return;
  }
  const bool any_pending = std::any_of(slots_.begin(), slots_.end(), [](const Slot& slot) {
    return slot.state == SlotState::running || slot.state == SlotState::backoff;
  });
  if (any_pending) {
    return;
  }
  const bool all_failed = std::all_of(slots_.begin(), slots_.end(),
                                      [](const Slot& slot) { return slot.state == SlotState::failed; });
  const bool all_clean = std::all_of(slots_.begin(), slots_.end(), [](const Slot& slot) {
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
    if (!worker.stop_requested) {
      worker.stop_requested = true;
      worker.state = WorkerState::stopping;
      worker.kill_at = now + config_.stop.grace;
      actions_.push_back(SendSignal{worker.id, config_.stop.signal});
    } else if (!worker.killed && worker.kill_at && *worker.kill_at <= now) {
      worker.killed = true;
      log(LogSeverity::warn, fmt::format("worker did not stop within grace; killing slot={} gen={} pid={} grace={}",
                                         worker.id.slot, worker.id.generation, worker.pid,
                                         format_duration(config_.stop.grace)));
      actions_.push_back(SendSignal{worker.id, SIGKILL});
    }
  }
  if (workers_.empty()) {
    exiting_ = true;
    log(LogSeverity::info, "stopped code=0");
    actions_.push_back(ExitDaemon{0});
  }
}

void Supervisor::spawn(int slot, TimePoint now) {
  Worker worker;
  worker.id = WorkerId{slot, generation_, next_instance_++};
  worker.started_at = now;
  workers_.push_back(worker);
  actions_.push_back(Spawn{worker.id, wanted_});
}

void Supervisor::worker_ended(Worker worker, const WorkerExit& exit, TimePoint now) {
  Slot& slot = slots_.at(static_cast<std::size_t>(worker.id.slot));
  slot.last_exit = exit;
  const auto uptime = std::chrono::duration_cast<Duration>(now - worker.started_at);
  const std::string fields = fmt::format("slot={} gen={} pid={} status={} uptime={}", worker.id.slot,
                                         worker.id.generation, worker.pid, describe_exit(exit),
                                         seconds(uptime));

  if (worker.stop_requested) {
    log(LogSeverity::info, fmt::format("worker stopped {}", fields));
    return;
  }

  if (const auto* failure = std::get_if<ExecFailure>(&exit)) {
    slot.state = SlotState::backoff;
    slot.restart_at = now + config_.restart.max_delay;
    const std::string message = fmt::format(
        "worker program cannot be executed {} program={} step={} error=\"{}\" retry_every={} "
        "(configuration problem: check command, directory and user)",
        fields, config_.command.front(), failure->step, std::strerror(failure->error),
        format_duration(config_.restart.max_delay));
    // Reported once: every other slot fails the same way until the program is fixed.
    log(exec_failure_reported_ ? LogSeverity::debug : LogSeverity::error, message);
    exec_failure_reported_ = true;
    return;
  }

  std::string hint;
  if (killed_by(exit, SIGKILL) && !worker.killed) {
    hint = " (killed by SIGKILL that clusterd did not send: possibly out of memory)";
  } else if (is_command_not_runnable(exit)) {
    hint = " (a shell could not find or run a command: check command and PATH)";
  }

  if (stopping_) {
    log(LogSeverity::info, fmt::format("worker exited {}{}", fields, hint));
    return;
  }
  if (!policy_restarts(config_.restart.policy, exit)) {
    slot.state = SlotState::done;
    log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
        fmt::format("worker exited {} restart=no{}", fields, hint));
    return;
  }
  schedule_restart(worker.id.slot, uptime, now);
  const Slot& updated = slots_.at(static_cast<std::size_t>(worker.id.slot));
  if (updated.state == SlotState::failed) {
    log(LogSeverity::warn, fmt::format("worker exited {}{}", fields, hint));
    log(LogSeverity::error,
        fmt::format("worker slot failed for good slot={} burst={} interval={}", worker.id.slot,
                    config_.restart.burst.value_or(0), format_duration(config_.restart.interval)));
    return;
  }
  const auto delay = std::chrono::duration_cast<Duration>(*updated.restart_at - now);
  log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
      fmt::format("worker exited {} next_restart_in={}{}", fields, seconds(delay), hint));
}

void Supervisor::schedule_restart(int slot_number, Duration uptime, TimePoint now) {
  Slot& slot = slots_.at(static_cast<std::size_t>(slot_number));
  const RestartVerdict verdict = slot.backoff.on_failure(now, uptime, uniform01_());
  if (verdict.failed_for_good) {
    slot.state = SlotState::failed;
    slot.restart_at.reset();
    return;
  }
  slot.state = SlotState::backoff;
  slot.restart_at = now + verdict.delay;
}

Supervisor::Worker* Supervisor::find_worker(const WorkerId& id) {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id == id; });
  return found == workers_.end() ? nullptr : &*found;
}

const Supervisor::Worker* Supervisor::live_worker_of(int slot) const {
  auto found = std::find_if(workers_.begin(), workers_.end(),
                            [&](const Worker& worker) { return worker.id.slot == slot; });
  return found == workers_.end() ? nullptr : &*found;
}

void Supervisor::log(LogSeverity severity, std::string message) {
  actions_.push_back(Log{severity, std::move(message)});
}

}  // namespace clusterd
