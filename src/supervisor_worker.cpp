// The Supervisor's view of one worker's life: spawn, readiness, stop, and what its exit means
// for its slot (restart with backoff, a configuration problem, or a failed replacement).
#include <cstring>

#include <fmt/format.h>

#include "supervisor.h"

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

// ---- one worker's life

WorkerId Supervisor::spawn(int slot, std::uint64_t generation, Role role, TimePoint now) {
  Worker worker;
  worker.id = WorkerId{slot, generation, next_instance_++};
  worker.role = role;
  worker.started_at = now;
  workers_.push_back(worker);
  const int workers = reload_ && generation == reload_->generation ? reload_->target : wanted_;
  actions_.push_back(Spawn{worker.id, workers});
  return worker.id;
}

void Supervisor::mark_ready(Worker& worker, TimePoint now) {
  worker.state = WorkerState::ready;
  worker.ready_deadline.reset();
  worker.ready_after.reset();
  const Config& config = config_of(worker.id.generation);
  if (config.ready.watchdog) {
    worker.watchdog_deadline = now + *config.ready.watchdog;
  }
  if (config.recycle.max_lifetime) {
    // Up to 10 % more, so workers started together do not all recycle at once (interface §2.5).
    const auto lifetime = std::chrono::duration<double, std::milli>(*config.recycle.max_lifetime);
    worker.recycle_at = worker.started_at + std::chrono::duration_cast<Duration>(lifetime * (1.0 + 0.1 * uniform01_()));
  }
  log(LogSeverity::info, fmt::format("worker ready slot={} gen={} pid={}", worker.id.slot,
                                     worker.id.generation, worker.pid));
  if (worker.role == Role::replacement) {
    promote(worker, now);
  }
}

void Supervisor::stop_worker(Worker& worker, TimePoint now) {
  if (worker.stop_requested) {
    return;
  }
  const StopConfig& stop = config_of(worker.id.generation).stop;
  worker.stop_requested = true;
  worker.state = WorkerState::stopping;
  worker.kill_at = now + stop.grace;
  actions_.push_back(SendSignal{worker.id, stop.signal});
}

void Supervisor::not_ready_in_time(Worker& worker, TimePoint now) {
  const std::string reason = fmt::format("slot={} gen={} not ready within {}", worker.id.slot, worker.id.generation,
                                         format_duration(config_of(worker.id.generation).ready.timeout));
  log(LogSeverity::warn, fmt::format("worker not ready in time {} pid={}", reason, worker.pid));
  if (worker.role == Role::replacement) {
    worker.role = Role::retiring;
    stop_worker(worker, now);
    replacement_failed(worker, reason, now);
    return;
  }
  worker.failed_start = true;  // its exit restarts the slot as a failure
  stop_worker(worker, now);
}

void Supervisor::worker_ended(const Worker& worker, const WorkerExit& exit, TimePoint now) {
  const auto uptime = std::chrono::duration_cast<Duration>(now - worker.started_at);
  const std::string fields = fmt::format("slot={} gen={} pid={} status={} uptime={}", worker.id.slot,
                                         worker.id.generation, worker.pid, describe_exit(exit), seconds(uptime));
  if (worker.role == Role::retiring || (worker.stop_requested && !worker.failed_start)) {
    log(LogSeverity::info, fmt::format("worker stopped {}", fields));
    return;
  }
  if (worker.role == Role::replacement) {
    log(LogSeverity::warn, fmt::format("worker exited before it was ready {}", fields));
    replacement_failed(worker,
                       fmt::format("slot={} gen={} exited status={} before it was ready", worker.id.slot,
                                   worker.id.generation, describe_exit(exit)),
                       now);
    return;
  }
  primary_ended(worker, exit, uptime, fields, now);
}

void Supervisor::primary_ended(const Worker& worker, const WorkerExit& exit, Duration uptime,
                               const std::string& fields, TimePoint now) {
  Slot& slot = slot_of(worker.id);
  const Config& config = config_of(worker.id.generation);
  slot.last_exit = exit;

  if (const auto* failure = std::get_if<ExecFailure>(&exit)) {
    slot.state = SlotState::backoff;
    slot.restart_at = now + config.restart.max_delay;
    const std::string message = fmt::format(
        "worker program cannot be executed {} program={} step={} error=\"{}\" retry_every={} "
        "(configuration problem: check command, directory and user)",
        fields, config.command.front(), failure->step, std::strerror(failure->error),
        format_duration(config.restart.max_delay));
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
  if (!policy_restarts(config.restart.policy, exit)) {
    slot.state = SlotState::done;
    log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
        fmt::format("worker exited {} restart=no{}", fields, hint));
    return;
  }
  const RestartVerdict verdict = slot.backoff.on_failure(now, uptime, uniform01_());
  if (verdict.failed_for_good) {
    slot.state = SlotState::failed;
    slot.restart_at.reset();
    log(LogSeverity::warn, fmt::format("worker exited {}{}", fields, hint));
    log(LogSeverity::error, fmt::format("worker slot failed for good slot={} burst={} interval={}", worker.id.slot,
                                        config.restart.burst.value_or(0), format_duration(config.restart.interval)));
    return;
  }
  slot.state = SlotState::backoff;
  slot.restart_at = now + verdict.delay;
  log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
      fmt::format("worker exited {} next_restart_in={}{}", fields, seconds(verdict.delay), hint));
}

}  // namespace clusterd
