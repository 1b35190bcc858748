// The Supervisor's view of one worker's life: spawn, readiness, stop, and what its end means
// for its slot (restart with backoff, a lasting start problem, or a failed replacement).
#include <fmt/format.h>

#include "errno_text.h"
#include "supervisor.h"

namespace clusterd {
namespace {

// `exit:1`, `signal:KILL`, `start-failed`: the status= field of the log lines.
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

// `step=exec error="No such file or directory"`, or `step="notify socket" detail="bind …: …"`
// when the step's own words (the errno's text among them) say more.
std::string describe_failure(const StartFailure& failure) {
  std::string text = failure.step.find(' ') == std::string::npos ? "step=" + failure.step
                                                                  : fmt::format("step=\"{}\"", failure.step);
  if (failure.error != 0) {
    text += fmt::format(" error=\"{}\"", errno_text(failure.error));
  }
  if (!failure.detail.empty()) {
    text += fmt::format(" detail=\"{}\"", failure.detail);
  }
  return text;
}

}  // namespace

// ---- one worker's life

WorkerId Supervisor::spawn(int slot, std::uint64_t generation, Role role, TimePoint now) {
  Worker worker;
  worker.id = WorkerId{slot, generation, next_instance_++};
  worker.role = role;
  worker.started_at = now;
  workers_.push_back(worker);
  activity_changed_ = true;
  const int workers = reload_ && generation == reload_->generation ? reload_->target : wanted_;
  actions_.push_back(Spawn{worker.id, workers});
  return worker.id;
}

void Supervisor::mark_ready(Worker& worker, TimePoint now, const std::string& sign) {
  worker.state = WorkerState::ready;
  activity_changed_ = true;
  worker.ready_deadline.reset();
  worker.ready_after.reset();
  worker.probe_at.reset();
  const Config& config = config_of(worker.id.generation);
  if (config.ready.watchdog) {
    worker.watchdog_deadline = now + *config.ready.watchdog;
  }
  if (config.recycle.max_lifetime) {
    // Up to 10 % more, so workers started together do not all recycle at once (interface §2.5).
    const auto lifetime = std::chrono::duration<double, std::milli>(*config.recycle.max_lifetime);
    worker.recycle_at = worker.started_at + std::chrono::duration_cast<Duration>(lifetime * (1.0 + 0.1 * uniform01_()));
  }
  log(LogSeverity::info, fmt::format("worker ready {} sign={}", worker_fields(worker.id, worker.pid),
                                     sign.find(' ') == std::string::npos ? sign : "\"" + sign + "\""));
  if (worker.role == Role::replacement) {
    promote(worker, now);
  }
}

// One look at a starting worker (answered by Probed), and the time of the next, later each time.
void Supervisor::probe(Worker& worker, TimePoint now) {
  if (!actions_.empty() && std::holds_alternative<ProbeListening>(actions_.back())) {
    std::get<ProbeListening>(actions_.back()).ids.push_back(worker.id);
  } else {
    actions_.push_back(ProbeListening{{worker.id}});
  }
  const auto probed = std::count_if(workers_.begin(), workers_.end(), [](const Worker& other) {
    return other.probe_at.has_value();
  });
  const Duration floor(static_cast<Duration::rep>(probed / probed_workers_per_millisecond));
  const bool eager = worker.execed_at && now - *worker.execed_at < eager_probing;
  const Duration next = eager ? first_probe_delay : std::max(worker.probe_interval * 2, 2 * first_probe_delay);
  worker.probe_interval = std::max(floor, eager ? next : std::min(next, max_probe_interval));
  worker.probe_at = now + worker.probe_interval;
}

// The stop signal now, SIGKILL at the end of the grace period: once per worker, whatever asks.
void Supervisor::stop_worker(Worker& worker, StopReason reason, TimePoint now) {
  if (worker.stopping) {
    return;
  }
  const StopConfig& stop = config_of(worker.id.generation).stop;
  worker.stopping = Stopping{reason, now + stop.grace, std::nullopt, false};
  if (stop.dump_signal && stop.dump_lead() > Duration{0}) {
    worker.stopping->dump_at = now + stop.grace - stop.dump_lead();
  }
  worker.state = WorkerState::stopping;
  activity_changed_ = true;
  actions_.push_back(SendSignal{worker.id, stop.signal});
}

// SIGKILL now, once; a worker already being stopped keeps the reason it was stopped for.
void Supervisor::kill_worker(Worker& worker, StopReason reason) {
  if (worker.stopping && worker.stopping->killed) {
    return;
  }
  if (!worker.stopping) {
    worker.stopping = Stopping{reason, std::nullopt, std::nullopt, false};
  }
  worker.stopping->kill_at.reset();
  worker.stopping->dump_at.reset();
  worker.stopping->killed = true;
  worker.state = WorkerState::stopping;
  activity_changed_ = true;
  actions_.push_back(SendSignal{worker.id, SIGKILL});
}

void Supervisor::not_ready_in_time(Worker& worker, TimePoint now) {
  const ReadyConfig& ready = config_of(worker.id.generation).ready;
  std::string reason = fmt::format("slot={} gen={} not ready within {}", worker.id.slot, worker.id.generation,
                                   format_duration(ready.timeout));
  if (ready.mode == ReadyMode::automatic && worker.probe_at) {
    // The common cause: a server that bound a socket of its own instead of using clusterd's.
    reason += " (ready.mode = auto: it sent no READY=1 and never waited for connections on clusterd's "
              "listening sockets; make it use the inherited socket (LISTEN_FDS, fd 3), or set ready.mode)";
  }
  log(LogSeverity::warn, fmt::format("worker not ready in time {} pid={}", reason, worker.pid));
  if (worker.role == Role::replacement) {
    worker.role = Role::retiring;
    stop_worker(worker, StopReason::retire, now);
    replacement_failed(worker, reason, now);
    return;
  }
  stop_worker(worker, StopReason::not_ready, now);  // its exit restarts the slot as a failure
}

// No process ran (SpawnFailed): there is no exit to report, only why it could not start.
void Supervisor::start_failed(const Worker& worker, const StartFailure& failure, bool lasting, TimePoint now) {
  const std::string what = fmt::format("slot={} gen={} {}", worker.id.slot, worker.id.generation,
                                       describe_failure(failure));
  if (worker.role == Role::replacement) {
    log(LogSeverity::error, "cannot start worker " + what);
    replacement_failed(worker, "cannot start worker " + what, now);
    return;
  }
  if (worker.role == Role::retiring || stopping_) {
    log(LogSeverity::error, "cannot start worker " + what);
    return;
  }
  Slot& slot = slot_of(worker.id);
  const Config& config = config_of(worker.id.generation);
  slot.last_exit = failure;
  if (lasting) {
    retry_slowly(slot, config,
                 fmt::format("cannot start worker {} retry_every={}", what, format_duration(config.restart.max_delay)),
                 now);
    return;
  }
  // fork() failing (EAGAIN, ENOMEM) is the system's trouble, not the program's: back off like a
  // crash rather than take the slow path meant for configuration problems.
  const RestartVerdict verdict = slot.backoff.on_failure(now, Duration{0}, uniform01_());
  if (verdict.failed_for_good) {
    slot.state = SlotState::failed;
    activity_changed_ = true;
    slot.restart_at.reset();
    log(LogSeverity::error, fmt::format("cannot start worker {}; slot failed for good", what));
    return;
  }
  slot.state = SlotState::backoff;
  activity_changed_ = true;
  slot.restart_at = now + verdict.delay;
  log(LogSeverity::error, fmt::format("cannot start worker {} next_restart_in={}", what, seconds(verdict.delay)));
}

// A problem that will not go away by itself (a program that cannot be executed, a directory that
// cannot be made): tried again every max_delay, reported once rather than by every slot each time.
void Supervisor::retry_slowly(Slot& slot, const Config& config, const std::string& message, TimePoint now) {
  slot.state = SlotState::backoff;
  activity_changed_ = true;
  slot.restart_at = now + config.restart.max_delay;
  log(start_failure_reported_ ? LogSeverity::debug : LogSeverity::error, message);
  start_failure_reported_ = true;
}

void Supervisor::worker_ended(const Worker& worker, const WorkerExit& exit, TimePoint now) {
  const auto uptime = std::chrono::duration_cast<Duration>(now - worker.started_at);
  const std::string fields =
      fmt::format("{} status={} uptime={}", worker_fields(worker.id, worker.pid), describe_exit(exit), seconds(uptime));
  const bool asked_to_end = worker.stopping && (worker.stopping->reason == StopReason::retire ||
                                                worker.stopping->reason == StopReason::shutdown);
  if (worker.role == Role::retiring || asked_to_end) {
    log(LogSeverity::info, fmt::format("worker stopped {}", fields));
    return;
  }
  count_exit(exit);
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

void Supervisor::count_exit(const WorkerExit& exit) {
  if (std::holds_alternative<ExitCode>(exit)) {
    ++counters_.exits_code;
  } else if (std::holds_alternative<KilledBySignal>(exit)) {
    ++counters_.exits_signal;
  } else {
    ++counters_.exits_start_failure;
  }
}

void Supervisor::primary_ended(const Worker& worker, const WorkerExit& exit, Duration uptime,
                               const std::string& fields, TimePoint now) {
  Slot& slot = slot_of(worker.id);
  const Config& config = config_of(worker.id.generation);
  slot.last_exit = exit;

  if (const auto* failure = std::get_if<StartFailure>(&exit)) {
    retry_slowly(slot, config,
                 fmt::format("worker program cannot be executed {} program={} {} retry_every={} "
                             "(configuration problem: check command, directory and user)",
                             fields, config.command.front(), describe_failure(*failure),
                             format_duration(config.restart.max_delay)),
                 now);
    return;
  }

  std::string hint;
  if (killed_by(exit, SIGKILL) && !(worker.stopping && worker.stopping->killed)) {
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
    activity_changed_ = true;
    log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
        fmt::format("worker exited {} restart=no{}", fields, hint));
    return;
  }
  const RestartVerdict verdict = slot.backoff.on_failure(now, uptime, uniform01_());
  if (verdict.failed_for_good) {
    slot.state = SlotState::failed;
    activity_changed_ = true;
    slot.restart_at.reset();
    log(LogSeverity::warn, fmt::format("worker exited {}{}", fields, hint));
    log(LogSeverity::error, fmt::format("worker slot failed for good slot={} burst={} interval={}", worker.id.slot,
                                        config.restart.burst.value_or(0), format_duration(config.restart.interval)));
    return;
  }
  slot.state = SlotState::backoff;
  activity_changed_ = true;
  slot.restart_at = now + verdict.delay;
  log(is_clean_exit(exit) ? LogSeverity::info : LogSeverity::warn,
      fmt::format("worker exited {} next_restart_in={}{}", fields, seconds(verdict.delay), hint));
}

}  // namespace clusterd
