// The imperative shell: kernel events → Supervisor events → actions carried out.
#include "daemon.h"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <random>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "control_protocol.h"
#include "logging.h"
#include "mount_table.h"
#include "socket_activation.h"

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

}  // namespace

Daemon::Daemon(DaemonSetup setup)
    : reload_loader_(std::move(setup.reload_loader)),
      resolve_worker_count_(std::move(setup.resolve_worker_count)),
      supervisor_(std::make_shared<const Config>(std::move(setup.prepared.config)), setup.worker_count,
                  jitter_source()),
      systemd_(SystemdNotifier::from_environment()),
      worker_logs_(supervisor_.config_of(1).output.recent_lines),
      workers_(loop_, pending_, current_environment()) {
  workers_.outputs().set_observer([this](const WorkerLine& line) { worker_logs_.on_line(line); });
  if (setup.cgroups) {
    workers_.use_cgroups(std::move(*setup.cgroups));
  }
  if (setup.output_file) {
    const OutputConfig& output = supervisor_.config_of(1).output;
    workers_.outputs().write_to_file(std::move(*setup.output_file),
                                     OutputRouter::FileSettings{output.file.value_or(""), output.max_size, output.keep});
  }
  Generation generation{{supervisor_.shared_config_of(1), std::move(setup.prepared.executable),
                         std::move(setup.prepared.user), {}},
                        supervisor_.config_of(1).workers, false, {}};
  const std::uint64_t first_generation = setup.upgraded ? setup.upgraded->generation : 1;
  next_generation_ = first_generation + 1;
  for (std::size_t index = 0; index < setup.listeners.size(); ++index) {
    const ListenerConfig& config = setup.listener_configs.at(index);
    auto sockets = std::make_shared<ListenerSockets>(config, std::move(setup.listeners[index]));
    if (index < setup.more_slot_sockets.size()) {
      for (auto& [slot, socket] : setup.more_slot_sockets[index]) {
        sockets->adopt_slot(slot, std::move(socket));
      }
    }
    if (index < setup.steering.size() && setup.steering[index]) {
      sockets->adopt_steering(*setup.steering[index]);
    }
    // Every slot's socket before any worker starts. A failure here (the port is ours already, so
    // only a lack of fds or memory) is not fatal: that slot's spawn tries again, and fails as a
    // spawn that backs off.
    try {
      sockets->open_slots(setup.worker_count);
    } catch (const ListenError& error) {
      spdlog::error("cannot open every per-slot socket; their slots retry at each start: {}", error.what());
    }
    generation.listeners.emplace_back(as_running(config, *sockets), std::move(sockets));
  }
  warn_about_per_slot_scale_down(generation.listeners);
  generation.launch_may_hang = launch_may_hang(generation.executable, generation.config->directory);
  generations_.emplace(first_generation, std::move(generation));

  if (systemd_.problem()) {
    spdlog::warn("NOTIFY_SOCKET is not usable, systemd will not hear from clusterd: {}", *systemd_.problem());
  }
  socket_unit_ = setup.socket_unit;
  for (const std::string& name : setup.unused_stored) {
    spdlog::info("closing a socket systemd's fd store kept that no listener takes now name={}", name);
    (void)systemd_.send("FDSTOREREMOVE=1\nFDNAME=" + std::string(stored_fd_prefix) + name);
  }
  if (setup.upgraded) {
    // What the binary before this one kept in systemd's fd store is there still: the same sockets.
    const std::vector<std::string>& stored = setup.upgraded->fd_store;
    for (ListenerSockets* listener : open_listeners_now()) {
      if (std::find(stored.begin(), stored.end(), listener->name()) != stored.end() &&
          !listener->socket_inodes().empty()) {
        fd_store_[listener->name()] = listener->socket_inodes().front();
      }
    }
  }
  keep_listeners_in_systemd();
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
  const auto& metrics = supervisor_.config_of(1).metrics.listen;
  if (metrics && setup.metrics) {
    serve_metrics(*metrics, std::move(setup.metrics));
  }
  if (setup.upgraded) {
    take_over(*setup.upgraded, setup.upgrade_refused);
  }
}

int Daemon::run() {
  if (!taken_over_) {  // a pool taken over from the binary before this one runs already
    pending_.push_back(Start{});
  }
  drain_events();
  while (!may_exit(Clock::now())) {
    loop_.arm_timer(next_wakeup());
    loop_.run_once();
    if (control_) {
      control_->on_deadline(Clock::now());
    }
    if (metrics_) {
      metrics_->on_deadline(Clock::now());
    }
    ping_systemd_watchdog(Clock::now());
    if (orphan_sweep_at_ && *orphan_sweep_at_ <= Clock::now()) {
      orphan_sweep_at_.reset();
      sweep_children();
    }
    drain_events();
    if (auto wanted = std::exchange(upgrade_wanted_, std::nullopt)) {
      upgrade(wanted->first, wanted->second.binary);
    }
  }
  return *exit_code_;
}

void Daemon::stop_orphans(const StopRequested& request, TimePoint now) {
  const StopConfig& stop = supervisor_.config_of(supervisor_.generation()).stop;
  // An orphan whose SIGCHLD was merged into a worker's is still a zombie: reaped now, or the stop
  // would wait for it to exit. From here on every SIGCHLD sweeps (on_signal).
  sweep_children();
  // The Supervisor's rule for the workers: SIGQUIT or a second SIGTERM kills at once.
  const bool quick = request.quick || stop_requested_;
  stop_requested_ = true;
  orphans_.begin(now, quick ? Duration{0} : stop.grace, stop.signal);
}

bool Daemon::may_exit(TimePoint now) {
  if (!orphans_.begun()) {
    return false;  // nothing to look at before the stop, and exit_wanted() begins it
  }
  // Listed afresh at every wake-up of the stop: an orphan's own children are re-parented to
  // clusterd when it dies, and a process can be re-parented without any event for clusterd.
  const auto listed = workers_.orphans();
  if (!listed && !orphans_unlisted_warned_) {
    orphans_unlisted_warned_ = true;
    spdlog::warn("cannot list clusterd's children: /proc/self/task is unreadable or /proc belongs to another pid "
                 "namespace (mount a /proc of clusterd's own); processes the workers left behind are not stopped");
  }
  const std::vector<pid_t> orphans = listed.value_or(std::vector<pid_t>{});
  const std::vector<int> pids(orphans.begin(), orphans.end());
  for (const OrphanSignal& send : orphans_.signals_for(pids, now)) {
    // Safe by pid: a child's pid is not reused before clusterd reaps it, and nothing was reaped
    // since the list was read.
    spdlog::info("stopping orphan pid={} signal={}", send.pid, signal_name(send.signal));
    ::kill(send.pid, send.signal);
  }
  orphans_left_ = !orphans.empty();
  if (!exit_code_) {
    return false;
  }
  if (orphans.empty()) {
    return true;
  }
  if (orphans_.gave_up(now)) {
    std::string list;
    for (const pid_t pid : orphans) {
      list += (list.empty() ? "" : ",") + std::to_string(pid);
    }
    spdlog::warn("exiting with orphans left pids={}: they did not die within {} of SIGKILL", list,
                 format_duration(OrphanStop::kill_wait));
    return true;
  }
  return false;
}

std::optional<TimePoint> Daemon::next_wakeup() const {
  std::optional<TimePoint> wakeup = supervisor_.next_deadline();
  const auto consider = [&wakeup](std::optional<TimePoint> deadline) {
    if (deadline && (!wakeup || *deadline < *wakeup)) {
      wakeup = deadline;
    }
  };
  consider(next_systemd_ping_);
  consider(orphan_sweep_at_);
  // Control and metrics connections' limits; none without a connection, so idle means no wake-ups.
  consider(control_ ? control_->next_deadline() : std::nullopt);
  consider(metrics_ ? metrics_->next_deadline() : std::nullopt);
  consider(orphans_.next_deadline(Clock::now(), orphans_left_));
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
  // The events of one loop turn go to the Supervisor together (one reconciliation for all).
  // Actions may produce events (Spawned, SpawnFailed); they are queued, not handled
  // recursively, and make the next batch.
  while (!pending_.empty()) {
    const std::vector<Event> batch(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.end()));
    pending_.clear();
    const TimePoint now = Clock::now();
    std::vector<int> exited_slots;
    for (const Event& event : batch) {
      if (const auto* stop = std::get_if<StopRequested>(&event)) {
        stop_orphans(*stop, now);  // also while clusterd waits for its orphans to exit
      } else if (const auto* exited = std::get_if<Exited>(&event)) {
        exited_slots.push_back(exited->id.slot);
      }
    }
    if (!exited_slots.empty()) {
      check_listeners(exited_slots);  // before the Supervisor restarts them
    }
    if (!exit_code_) {
      execute(supervisor_.handle(batch, now));
    }
  }
  prune_generations();
  const bool activity_changed = supervisor_.take_activity_change();
  if (activity_changed || std::exchange(slot_sockets_changed_, false)) {
    // Only when a worker started, became ready, was asked to stop or ended (or a socket listens
    // again): a start of thousands is probed every millisecond, and most turns change nothing.
    steer_and_close_slot_sockets();
  }
}

void Daemon::execute(const std::vector<Action>& actions) {
  for (const Action& action : actions) {
    std::visit([this](const auto& concrete) { execute_one(concrete); }, action);
  }
}

void Daemon::execute_one(const Spawn& spawn) { workers_.spawn(spawn, generations_.at(spawn.id.generation)); }

void Daemon::execute_one(const SendSignal& send) { workers_.signal(send); }

void Daemon::execute_one(const ProbeListening& probe) { workers_.probe_listening(probe, listener_inodes()); }

void Daemon::execute_one(const SampleRss& sample) { workers_.sample_rss(sample); }

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
    worker_logs_.set_recent_lines(found->second.config->output.recent_lines);
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

void Daemon::execute_one(const ExitDaemon& exit) {
  exit_code_ = exit.code;
  // Every worker is gone; the processes they left behind are waited for (may_exit), those
  // already exited reaped first (an orphan's SIGCHLD may have been merged into a worker's).
  workers_.reap_all();
  const StopConfig& stop = supervisor_.config_of(supervisor_.generation()).stop;
  orphans_.exit_wanted(Clock::now(), stop.grace, stop.signal);
}

void Daemon::on_signal() {
  while (const auto received = signals_.next()) {
    const int signal = received->number;
    switch (signal) {
      case SIGCHLD:
        if (orphans_.begun()) {
          sweep_children();
        } else if (!workers_.reap(*received) && !orphan_sweep_at_) {
          orphan_sweep_at_ = Clock::now() + orphan_sweep_delay;
        }
        break;
      case SIGTERM:
      case SIGINT:
        spdlog::info("received signal={}", signal_name(signal));
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
        pending_.push_back(ScaleBy{+1, "SIGTTIN"});
        break;
      case SIGTTOU:
        pending_.push_back(ScaleBy{-1, "SIGTTOU"});
        break;
      case SIGUSR1:
        reopen_log_file();
        workers_.outputs().reopen_file();
        break;
      case SIGUSR2:
        workers_.forward(SIGUSR2);
        break;
      default:
        break;
    }
  }
}

void Daemon::sweep_children() {
  if (workers_.reap_all() > 0) {
    for (ListenerSockets* listener : open_listeners_now()) {
      listener->ensure_every_socket_listening();
    }
    slot_sockets_changed_ = true;  // a socket that listens again is steered to again
  }
}

}  // namespace clusterd
