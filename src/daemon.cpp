// The imperative shell: kernel events → Supervisor events → actions carried out.
#include "daemon.h"

#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include <spdlog/spdlog.h>

#include "logging.h"

extern char** environ;

namespace clusterd {
namespace {

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
  }
  return env;
}

std::function<double()> jitter_source() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

WorkerExit exit_from(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) {
    return ExitCode{info.si_status};
  }
  return KilledBySignal{info.si_status};
}

}  // namespace

Daemon::Daemon(DaemonSetup setup)
    : setup_(std::move(setup)),
      parent_env_(current_environment()),
      supervisor_(setup_.config, setup_.worker_count, jitter_source()) {
  for (const Listener& listener : setup_.listeners) {
    listener_fds_.push_back({listener.name(), listener.fd()});
  }
  loop_.add(signals_.fd(), EPOLLIN, [this](std::uint32_t) { on_signal(); });
  loop_.set_timer_callback([this] { pending_.push_back(Tick{}); });
}

int Daemon::run() {
  pending_.push_back(Start{});
  drain_events();
  while (!exit_code_) {
    loop_.arm_timer(supervisor_.next_deadline());
    loop_.run_once();
    drain_events();
  }
  return *exit_code_;
}

void Daemon::drain_events() {
  // Actions may produce events (Spawned, SpawnFailed); they are queued, not handled
  // recursively, so the Supervisor sees one event at a time.
  while (!pending_.empty() && !exit_code_) {
    const Event event = pending_.front();
    pending_.pop_front();
    execute(supervisor_.handle(event, Clock::now()));
  }
}

void Daemon::execute(const std::vector<Action>& actions) {
  for (const Action& action : actions) {
    std::visit([this](const auto& concrete) { execute_one(concrete); }, action);
  }
}

void Daemon::execute_one(const Spawn& spawn) {
  const WorkerIdentity identity{spawn.id.slot, spawn.workers, spawn.id.generation};
  const SpawnPlan plan = make_spawn_plan(setup_.config, setup_.executable, listener_fds_, identity,
                                         parent_env_, setup_.user_env);
  auto process = Process::spawn(plan, setup_.credentials);
  if (!process) {
    pending_.push_back(SpawnFailed{spawn.id, process.error()});
    return;
  }
  const pid_t pid = process->pid();
  const int exec_fd = process->exec_status_fd();
  auto [entry, inserted] = workers_.emplace(pid, RunningWorker{spawn.id, std::move(*process)});
  (void)inserted;
  loop_.add(exec_fd, EPOLLIN, [this, pid](std::uint32_t) { on_exec_status(pid); });
  entry->second.exec_status_watched = true;
  pending_.push_back(Spawned{spawn.id, pid});
}

void Daemon::execute_one(const SendSignal& send) {
  for (const auto& [pid, worker] : workers_) {
    if (worker.id == send.id) {
      worker.process.signal_group(send.signal);
      return;
    }
  }
}

void Daemon::execute_one(const Log& entry) {
  switch (entry.severity) {
    case LogSeverity::debug: spdlog::debug("{}", entry.message); break;
    case LogSeverity::info: spdlog::info("{}", entry.message); break;
    case LogSeverity::warn: spdlog::warn("{}", entry.message); break;
    case LogSeverity::error: spdlog::error("{}", entry.message); break;
  }
}

void Daemon::execute_one(const ExitDaemon& exit) { exit_code_ = exit.code; }

void Daemon::on_signal() {
  while (const auto signal = signals_.next()) {
    switch (*signal) {
      case SIGCHLD:
        reap_children();
        break;
      case SIGTERM:
      case SIGINT:
        spdlog::info("received signal={}", signal_name(*signal));
        pending_.push_back(StopRequested{false});
        break;
      case SIGQUIT:
        spdlog::info("received signal=QUIT");
        pending_.push_back(StopRequested{true});
        break;
      case SIGUSR1:
        reopen_log_file();
        break;
      case SIGUSR2:
        forward_signal(SIGUSR2);
        break;
      default:
        spdlog::warn("received signal={}; not handled by this version of clusterd, ignored",
                     signal_name(*signal));
        break;
    }
  }
}

void Daemon::reap_children() {
  bool worker_reaped = false;
  for (;;) {
    siginfo_t info{};
    // WNOWAIT first: the zombie keeps its pid (and so its process group id) reserved while we
    // SIGKILL what is left of the group, so the kill cannot reach a recycled pgid (protocols §3.5).
    const int result = retry_on_eintr(
        [&] { return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT); });
    if (result != 0 || info.si_pid == 0) {
      break;  // ECHILD, or nothing left to reap
    }
    const pid_t pid = info.si_pid;
    auto found = workers_.find(pid);
    if (found != workers_.end()) {
      found->second.process.signal_group(SIGKILL);
    }
    siginfo_t reaped{};
    retry_on_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid), &reaped, WEXITED); });
    if (found == workers_.end()) {
      spdlog::debug("reaped orphan pid={}", pid);
      continue;
    }
    RunningWorker& worker = found->second;
    worker.process.mark_reaped();
    WorkerExit exit = exit_from(info);
    // The child is gone, so its exec-status pipe is final: read it now rather than wait for
    // epoll, so an exec failure is reported as such and never as a plain exit 127.
    const ExecState exec_state = worker.process.read_exec_status();
    if (exec_state == ExecState::failed && worker.process.exec_failure()) {
      exit = *worker.process.exec_failure();
    } else if (exec_state == ExecState::succeeded && !worker.execed_sent) {
      pending_.push_back(Execed{worker.id});
    }
    unwatch_exec_status(worker);
    pending_.push_back(Exited{worker.id, exit});
    workers_.erase(found);
    worker_reaped = true;
  }
  if (worker_reaped) {
    check_listeners();
  }
}

void Daemon::on_exec_status(pid_t pid) {
  auto found = workers_.find(pid);
  if (found == workers_.end()) {
    return;
  }
  RunningWorker& worker = found->second;
  switch (worker.process.read_exec_status()) {
    case ExecState::pending:
      return;
    case ExecState::succeeded:
      unwatch_exec_status(worker);
      worker.execed_sent = true;
      pending_.push_back(Execed{worker.id});
      return;
    case ExecState::failed:
      // Reported with the exit when the child is reaped (reap_children).
      unwatch_exec_status(worker);
      return;
  }
}

void Daemon::unwatch_exec_status(RunningWorker& worker) {
  if (worker.exec_status_watched) {
    loop_.remove(worker.process.exec_status_fd());
    worker.exec_status_watched = false;
  }
}

void Daemon::forward_signal(int signal) {
  spdlog::info("forwarding signal={} workers={}", signal_name(signal), workers_.size());
  for (const auto& [pid, worker] : workers_) {
    worker.process.signal_group(signal);
  }
}

void Daemon::check_listeners() {
  // A worker's shutdown() on its inherited copy stops the socket for every holder
  // (interface §7): listen again so the next workers are served.
  for (Listener& listener : setup_.listeners) {
    if (listener.ensure_listening()) {
      spdlog::error("listener stopped by a worker; listening again name={} address={}",
                    listener.name(), listener.bound_address());
    }
  }
}

}  // namespace clusterd
