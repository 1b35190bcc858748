// The imperative shell: kernel events → Supervisor events → actions carried out.
#include "daemon.h"

#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "control_protocol.h"
#include "logging.h"
#include "proc_status.h"
#include "text_file.h"

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
    : reload_loader_(std::move(setup.reload_loader)),
      resolve_worker_count_(std::move(setup.resolve_worker_count)),
      parent_env_(current_environment()),
      supervisor_(std::make_shared<const Config>(std::move(setup.prepared.config)), setup.worker_count,
                  jitter_source()),
      systemd_(SystemdNotifier::from_environment()) {
  Generation generation{supervisor_.shared_config_of(1), std::move(setup.prepared.executable),
                        std::move(setup.prepared.user), {}, supervisor_.config_of(1).workers, false, {}};
  for (std::size_t index = 0; index < setup.listeners.size(); ++index) {
    const ListenerConfig& config = setup.listener_configs.at(index);
    auto sockets = std::make_shared<ListenerSockets>(config, std::move(setup.listeners[index]));
    // Every slot's socket before any worker starts. A failure here (the port is ours already, so
    // only a lack of fds or memory) is not fatal: that slot's spawn tries again, and fails as a
    // spawn that backs off.
    try {
      sockets->open_slots(setup.worker_count);
    } catch (const ListenError& error) {
      spdlog::error("cannot open every per-slot socket; their slots retry at each start: {}", error.what());
    }
    generation.listeners.emplace_back(config, std::move(sockets));
  }
  warn_about_per_slot_scale_down(generation.listeners);
  generations_.emplace(1, std::move(generation));

  if (systemd_.problem()) {
    spdlog::warn("NOTIFY_SOCKET is not usable, systemd will not hear from clusterd: {}", *systemd_.problem());
  }
  if (const auto timeout = systemd_.watchdog_timeout()) {
    next_systemd_ping_ = Clock::now();
    spdlog::info("systemd watchdog enabled timeout={} ping_every={}",
                 format_duration(std::chrono::duration_cast<Duration>(*timeout)),
                 format_duration(std::chrono::duration_cast<Duration>(*timeout / 2)));
  }
  loop_.add(signals_.fd(), EPOLLIN, [this](std::uint32_t) { on_signal(); });
  loop_.set_timer_callback([this] { pending_.push_back(Tick{}); });
  if (const auto& file = supervisor_.config_of(1).file) {
    std::error_code error;
    const auto absolute = std::filesystem::absolute(*file, error);
    config_path_ = error ? *file : absolute.lexically_normal().string();
  }
  if (setup.control) {
    control_.emplace(std::move(*setup.control), loop_,
                     [this](RequestId id, const Request& request) { on_control_request(id, request); });
  }
}

int Daemon::run() {
  pending_.push_back(Start{});
  drain_events();
  while (!exit_code_) {
    loop_.arm_timer(next_wakeup());
    loop_.run_once();
    if (control_) {
      control_->on_deadline(Clock::now());
    }
    ping_systemd_watchdog(Clock::now());
    drain_events();
  }
  return *exit_code_;
}

std::optional<TimePoint> Daemon::next_wakeup() const {
  std::optional<TimePoint> wakeup = supervisor_.next_deadline();
  if (next_systemd_ping_ && (!wakeup || *next_systemd_ping_ < *wakeup)) {
    wakeup = next_systemd_ping_;
  }
  // Control connections' idle limits; none without a connection, so idle means no wake-ups.
  const auto control_deadline = control_ ? control_->next_deadline() : std::nullopt;
  if (control_deadline && (!wakeup || *control_deadline < *wakeup)) {
    wakeup = control_deadline;
  }
  return wakeup;
}

void Daemon::ping_systemd_watchdog(TimePoint now) {
  // From the event loop itself: a wedged loop must stop the pings (protocols §2.2).
  if (!next_systemd_ping_ || *next_systemd_ping_ > now) {
    return;
  }
  if (const auto problem = systemd_.send("WATCHDOG=1")) {
    spdlog::warn("cannot ping the systemd watchdog: {}", *problem);
  }
  const auto half = std::chrono::duration_cast<Clock::duration>(*systemd_.watchdog_timeout() / 2);
  next_systemd_ping_ = now + half;
}

void Daemon::drain_events() {
  // Actions may produce events (Spawned, SpawnFailed); they are queued, not handled
  // recursively, so the Supervisor sees one event at a time.
  while (!pending_.empty() && !exit_code_) {
    const Event event = pending_.front();
    pending_.pop_front();
    execute(supervisor_.handle(event, Clock::now()));
  }
  prune_generations();
  close_unneeded_slot_sockets();
}

void Daemon::execute(const std::vector<Action>& actions) {
  for (const Action& action : actions) {
    std::visit([this](const auto& concrete) { execute_one(concrete); }, action);
  }
}

void Daemon::execute_one(const Spawn& spawn) {
  const Generation& generation = generations_.at(spawn.id.generation);
  const Config& config = *generation.config;
  std::vector<ListenerFd> listener_fds;
  for (const auto& [listener_config, listener] : generation.listeners) {
    const auto fd = listener->fd_for(spawn.id.slot);
    if (!fd) {
      pending_.push_back(SpawnFailed{spawn.id, StartFailure{"per-slot socket", fd.error().error}});
      return;
    }
    listener_fds.push_back({listener_config.name, *fd});
  }
  std::optional<WorkerNotifySocket> notify_socket;
  const auto notify = notify_settings_for(generation, spawn.id, notify_socket);
  if (!notify) {
    pending_.push_back(SpawnFailed{spawn.id, notify.error(), true});
    return;
  }
  const WorkerIdentity identity{spawn.id.slot, spawn.workers, spawn.id.generation};
  SpawnPlan plan = make_spawn_plan(config, generation.executable, listener_fds, identity, parent_env_,
                                   generation.user.user_env, *notify);
  std::optional<OutputPipe> stdout_pipe;
  std::optional<OutputPipe> stderr_pipe;
  if (config.output == OutputMode::prefix) {
    for (auto* pipe : {&stdout_pipe, &stderr_pipe}) {
      auto made = make_output_pipe();
      if (!made) {
        pending_.push_back(SpawnFailed{spawn.id, StartFailure{"output pipe", made.error()}});
        return;
      }
      *pipe = std::move(*made);
    }
    plan.stdout_fd = stdout_pipe->write_end.get();
    plan.stderr_fd = stderr_pipe->write_end.get();
  }
  auto process = Process::spawn(plan, generation.user.credentials);
  if (!process) {
    pending_.push_back(SpawnFailed{spawn.id, process.error()});
    return;
  }
  const pid_t pid = process->pid();
  // The write ends close here, when the pipes go: from now on only the worker (and what it
  // forks) holds them, so end of file means all of those are gone.
  if (stdout_pipe) {
    watch_output(std::move(stdout_pipe->read_end), STDOUT_FILENO, spawn.id, pid);
    watch_output(std::move(stderr_pipe->read_end), STDERR_FILENO, spawn.id, pid);
  }
  const int exec_fd = process->exec_status_fd();
  auto [entry, inserted] = workers_.emplace(pid, RunningWorker{spawn.id, std::move(*process), std::move(notify_socket)});
  (void)inserted;
  loop_.add(exec_fd, EPOLLIN, [this, pid](std::uint32_t) { on_exec_status(pid); });
  entry->second.exec_status_watched = true;
  if (entry->second.notify) {
    loop_.add(entry->second.notify->fd(), EPOLLIN, [this, pid](std::uint32_t) { on_notify(pid); });
  }
  pending_.push_back(Spawned{spawn.id, pid});
}

tl::expected<std::optional<NotifySettings>, StartFailure> Daemon::notify_settings_for(
    const Generation& generation, const WorkerId& id, std::optional<WorkerNotifySocket>& socket) {
  const Config& config = *generation.config;
  if (config.ready.mode != ReadyMode::notify) {
    return std::nullopt;
  }
  const auto& credentials = generation.user.credentials;
  if (!notify_directory_) {
    auto directory = NotifyDirectory::create(config.name, credentials ? std::optional<uid_t>(credentials->uid)
                                                                      : std::nullopt);
    if (!directory) {
      return tl::make_unexpected(StartFailure{"notify socket directory", 0, directory.error()});
    }
    notify_directory_ = std::move(*directory);
  }
  const std::string path = notify_directory_->worker_socket_path(id.slot, id.generation, id.instance);
  auto opened = WorkerNotifySocket::open(path, credentials ? std::optional<uid_t>(credentials->uid) : std::nullopt,
                                         credentials ? std::optional<gid_t>(credentials->gid) : std::nullopt);
  if (!opened) {
    return tl::make_unexpected(StartFailure{"notify socket", 0, opened.error()});
  }
  socket = std::move(*opened);
  NotifySettings settings{socket->path(), std::nullopt};
  if (config.ready.watchdog) {
    settings.watchdog_usec = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(*config.ready.watchdog).count());
  }
  return settings;
}

void Daemon::execute_one(const SendSignal& send) {
  for (const auto& [pid, worker] : workers_) {
    if (worker.id == send.id) {
      worker.process.signal_group(send.signal);
      return;
    }
  }
}

void Daemon::execute_one(const SampleRss& sample) {
  for (const auto& [pid, worker] : workers_) {
    if (std::find(sample.ids.begin(), sample.ids.end(), worker.id) == sample.ids.end()) {
      continue;
    }
    const auto text = read_text_file("/proc/" + std::to_string(pid) + "/status");
    if (const auto rss = text ? parse_vm_rss(*text) : std::nullopt) {
      pending_.push_back(RssSampled{worker.id, *rss});
    }
  }
}

void Daemon::execute_one(const NotifySystemd& notify) {
  if (!systemd_.enabled()) {
    return;
  }
  std::string message = notify.message;
  if (message.starts_with("RELOADING=1")) {
    // systemd matches the reload to its request by this timestamp (protocols §2.2).
    message += "\nMONOTONIC_USEC=" + std::to_string(monotonic_now().count());
  }
  if (const auto problem = systemd_.send(message)) {
    spdlog::warn("cannot notify systemd: {}", *problem);
  }
}

void Daemon::execute_one(const ReloadFinished& finished) {
  const auto found = generations_.find(finished.generation);
  if (!finished.ok && found != generations_.end()) {
    found->second.abandoned = true;  // its `workers` never took effect
  }
  if (finished.ok && found != generations_.end()) {
    spdlog::set_level(to_spdlog_level(found->second.config->log.level));
  }
  const std::vector<std::string> no_keys;
  const std::vector<std::string>& restart_needed =
      finished.ok && found != generations_.end() ? found->second.restart_needed : no_keys;
  // The Supervisor logged the outcome; here the control requests that waited for it are answered.
  // A reload that never started (clusterd is stopping) has no generation of its own.
  if (!control_) {
    return;
  }
  const std::uint64_t generation = finished.generation != 0 ? finished.generation : supervisor_.generation();
  for (const RequestId request : finished.requests) {
    control_->reply(request, reload_reply(finished.ok, generation, finished.error, restart_needed));
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
      case SIGHUP:
        spdlog::info("received signal=HUP");
        reload();
        break;
      case SIGTTIN:
        pending_.push_back(ScaleBy{+1});
        break;
      case SIGTTOU:
        pending_.push_back(ScaleBy{-1});
        break;
      case SIGUSR1:
        reopen_log_file();
        break;
      case SIGUSR2:
        forward_signal(SIGUSR2);
        break;
      default:
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
    const int result = retry_on_eintr([&] { return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT); });
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
    if (worker.notify) {
      on_notify(pid);  // a READY=1 or STATUS= sent just before the exit still counts
    }
    if (!outputs_.empty()) {
      drain_output_of(pid);
    }
    pending_.push_back(Exited{worker.id, exit});
    forget_worker(found);
    worker_reaped = true;
  }
  if (worker_reaped) {
    check_listeners();
  }
}

void Daemon::watch_output(Fd read_end, int destination, const WorkerId& id, pid_t pid) {
  outputs_.watch(std::move(read_end), destination, id.slot, pid);
}

// When a worker has exited, what it wrote last is written out before its exit is logged.
void Daemon::drain_output_of(pid_t pid) { outputs_.drain_of(pid); }

void Daemon::forget_worker(std::map<pid_t, RunningWorker>::iterator found) {
  RunningWorker& worker = found->second;
  unwatch_exec_status(worker);
  if (worker.notify) {
    loop_.remove(worker.notify->fd());
  }
  workers_.erase(found);
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
    case ExecState::died_before_exec:
      // Reported with the exit when the child is reaped (reap_children).
      unwatch_exec_status(worker);
      return;
  }
}

void Daemon::on_notify(pid_t pid) {
  auto found = workers_.find(pid);
  if (found == workers_.end() || !found->second.notify) {
    return;
  }
  RunningWorker& worker = found->second;
  int dropped = 0;
  for (NotifyMessage& message : worker.notify->drain(pid, dropped)) {
    pending_.push_back(Notified{worker.id, std::move(message)});
  }
  if (dropped > 0) {
    spdlog::debug("dropped notify datagrams slot={} pid={} count={} (not from the worker or its children)",
                  worker.id.slot, pid, dropped);
  }
}

void Daemon::unwatch_exec_status(RunningWorker& worker) {
  if (worker.exec_status_watched) {
    loop_.remove(worker.process.exec_status_fd());
    worker.exec_status_watched = false;
    worker.process.close_exec_status();
  }
}

// Only to workers whose program runs: a child still setting up has the signal blocked, and would
// take it (its default action, death) the moment it unblocks it, before it ever became the worker.
void Daemon::forward_signal(int signal) {
  std::size_t sent = 0;
  for (const auto& [pid, worker] : workers_) {
    if (worker.execed_sent) {
      worker.process.signal_group(signal);
      ++sent;
    }
  }
  spdlog::info("forwarded signal={} workers={} not_yet_running={}", signal_name(signal), sent,
               workers_.size() - sent);
}

std::set<ListenerSockets*> Daemon::open_listeners_now() const {
  std::set<ListenerSockets*> open;  // a listener kept by several generations counts once
  for (const auto& [key, generation] : generations_) {
    for (const auto& [listener_config, listener] : generation.listeners) {
      open.insert(listener.get());
    }
  }
  return open;
}

void Daemon::check_listeners() {
  // A worker's shutdown() on its inherited copy stops the socket for every holder
  // (interface §7): listen again so the next workers are served.
  for (ListenerSockets* listener : open_listeners_now()) {
    listener->ensure_listening();
  }
}

void Daemon::close_unneeded_slot_sockets() {
  std::optional<StatusSnapshot> status;  // only with a per-slot listener: it is not free
  for (ListenerSockets* listener : open_listeners_now()) {
    if (listener->per_slot()) {
      if (!status) {
        status = supervisor_.status(Clock::now());
      }
      listener->close_unneeded(
          [&](int slot) { return slot_socket_needed(*status, supervisor_.workers_wanted(), slot); });
    }
  }
}

void Daemon::warn_about_per_slot_scale_down(const GenerationListeners& listeners) {
  const bool any_per_slot = std::any_of(listeners.begin(), listeners.end(),
                                        [](const auto& entry) { return entry.second->per_slot(); });
  if (any_per_slot && !tcp_migrate_req_checked_) {
    tcp_migrate_req_checked_ = true;  // once: it is the system's setting, not the file's
    warn_about_tcp_migrate_req();
  }
}

}  // namespace clusterd
