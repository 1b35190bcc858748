// The worker processes of a running clusterd: each spawn put together and started, the table of
// live workers by pid, reaping, and the drains of the workers' notify
// sockets and output pipes. Kernel happenings become Supervisor events, appended to a queue.
#include "worker_processes.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "errno_text.h"
#include "listen_probe.h"
#include "proc_status.h"
#include "text_file.h"

namespace clusterd {
namespace {

WorkerExit exit_from(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) {
    return ExitCode{info.si_status};
  }
  return KilledBySignal{info.si_status};
}

}  // namespace

WorkerProcesses::WorkerProcesses(EventLoop& loop, std::deque<Event>& events, std::vector<std::string> parent_env)
    : loop_(loop), events_(events), parent_env_(std::move(parent_env)), outputs_(loop) {}

void WorkerProcesses::spawn(const Spawn& spawn, const WorkerSpec& generation) {
  const Config& config = *generation.config;
  std::vector<ListenerFd> listener_fds;
  for (const auto& [listener_config, listener] : generation.listeners) {
    const auto fd = listener->fd_for(spawn.id.slot);
    if (!fd) {
      events_.push_back(SpawnFailed{spawn.id, StartFailure{"per-slot socket", fd.error().error}});
      return;
    }
    listener_fds.push_back({listener_config.name, *fd});
  }
  std::optional<WorkerNotifySocket> notify_socket;
  const auto notify = notify_settings_for(generation, spawn.id, notify_socket);
  if (!notify) {
    events_.push_back(SpawnFailed{spawn.id, notify.error(), true});
    return;
  }
  const WorkerIdentity identity{spawn.id.slot, spawn.workers, spawn.id.generation};
  SpawnPlan plan = make_spawn_plan(config, generation.executable, listener_fds, identity, parent_env_,
                                   generation.user.user_env, *notify);
  std::optional<OutputPipe> stdout_pipe;
  std::optional<OutputPipe> stderr_pipe;
  if (config.output.mode == OutputMode::prefix) {
    for (auto* pipe : {&stdout_pipe, &stderr_pipe}) {
      auto made = make_output_pipe();
      if (!made) {
        events_.push_back(SpawnFailed{spawn.id, StartFailure{"output pipe", made.error()}});
        return;
      }
      *pipe = std::move(*made);
    }
    plan.stdout_fd = stdout_pipe->write_end.get();
    plan.stderr_fd = stderr_pipe->write_end.get();
  }
  plan.may_hang_before_exec = generation.launch_may_hang;
  std::optional<WorkerCgroup> cgroup;
  if (cgroups_) {
    auto made = cgroups_->create(spawn.id.slot, spawn.id.generation, spawn.id.instance);
    if (!made) {
      events_.push_back(SpawnFailed{spawn.id, StartFailure{"cgroup", made.error(), cgroups_->parent()}});
      return;
    }
    cgroup.emplace(std::move(*made));
    plan.cgroup_procs_fd = cgroup->procs_fd();
  }
  auto process = Process::spawn(plan, generation.user.credentials);
  if (!process) {
    events_.push_back(SpawnFailed{spawn.id, process.error()});
    return;
  }
  if (cgroup) {
    cgroup->close_procs();
  }
  const pid_t pid = process->pid();
  // The write ends close here, when the pipes go: from now on only the worker (and what it
  // forks) holds them, so end of file means all of those are gone.
  if (stdout_pipe) {
    for (auto [pipe, stream] : {std::pair{&stdout_pipe, STDOUT_FILENO}, std::pair{&stderr_pipe, STDERR_FILENO}}) {
      outputs_.watch(std::move((*pipe)->read_end), stream,
                     LineFormat{spawn.id.slot, pid, stream, config.output.timestamps});
    }
  }
  // A failed exec is reported with the child's exit, when it is reaped (worker_ended).
  const bool execed = process->exec_state() == ExecState::succeeded;
  const auto entry =
      workers_.emplace(pid, RunningWorker{spawn.id, std::move(*process), std::move(notify_socket), false,
                                          std::move(cgroup)})
          .first;
  if (entry->second.process.exec_state() == ExecState::pending) {
    loop_.add(entry->second.process.exec_status_fd(), EPOLLIN, [this, pid](std::uint32_t) { on_exec_status(pid); });
    entry->second.exec_status_watched = true;
  }
  if (entry->second.process.reaped_through_pidfd()) {
    loop_.add(entry->second.process.pidfd(), EPOLLIN, [this, pid](std::uint32_t) { on_pidfd(pid); });
  }
  if (entry->second.notify) {
    loop_.add(entry->second.notify->fd(), EPOLLIN, [this, pid](std::uint32_t) { on_notify(pid); });
  }
  events_.push_back(Spawned{spawn.id, pid});
  if (execed) {
    events_.push_back(Execed{spawn.id});
  }
}

void WorkerProcesses::hand_over(UpgradeState& state) const {
  if (notify_directory_) {
    state.notify_directory = notify_directory_->path();
    state.notify_directory_lock = notify_directory_->lock_fd();
  }
  for (HandedWorker& handed : state.workers) {
    const auto found = workers_.find(handed.pid);
    if (found == workers_.end()) {
      continue;
    }
    const RunningWorker& worker = found->second;
    if (worker.notify) {
      handed.notify_fd = worker.notify->socket_fd();
      handed.notify_path = worker.notify->path();
    }
    const std::map<int, int> ends = outputs_.read_ends_of(handed.pid);
    if (const auto out = ends.find(STDOUT_FILENO); out != ends.end()) {
      handed.stdout_fd = out->second;
    }
    if (const auto err = ends.find(STDERR_FILENO); err != ends.end()) {
      handed.stderr_fd = err->second;
    }
    if (worker.cgroup) {
      handed.cgroup = worker.cgroup->name();
    }
  }
}

tl::expected<void, std::string> WorkerProcesses::adopt(const HandedWorker& handed, bool timestamps) {
  const pid_t pid = handed.pid;
  auto process = Process::adopt(pid);
  if (!process) {
    return tl::make_unexpected(fmt::format("pid {} is no child of this clusterd: {}", pid, errno_text(process.error())));
  }
  // A child of ours that cannot be supervised is ended, not left to run unseen: its slot starts
  // a new worker.
  const auto end_it = [&process](std::string why) {
    process->signal_group(SIGKILL);
    process->signal_leader(SIGKILL);
    process->reap();
    return tl::make_unexpected(why + "; it was killed");
  };
  std::optional<WorkerNotifySocket> notify;
  if (handed.notify_fd && handed.notify_path) {
    auto adopted = WorkerNotifySocket::adopt(Fd(*handed.notify_fd), *handed.notify_path);
    if (!adopted) {
      return end_it(adopted.error());
    }
    notify.emplace(std::move(*adopted));
  }
  std::optional<WorkerCgroup> cgroup;
  if (handed.cgroup && cgroups_) {
    auto adopted = cgroups_->adopt_worker(*handed.cgroup);
    if (!adopted) {
      return end_it(fmt::format("cgroup {}: {}", *handed.cgroup, errno_text(adopted.error())));
    }
    cgroup.emplace(std::move(*adopted));
  }
  for (const auto& [fd, stream] : {std::pair{handed.stdout_fd, STDOUT_FILENO}, std::pair{handed.stderr_fd, STDERR_FILENO}}) {
    if (fd) {
      outputs_.watch(Fd(*fd), stream, LineFormat{handed.id.slot, pid, stream, timestamps});
    }
  }
  const auto entry =
      workers_.emplace(pid, RunningWorker{handed.id, std::move(*process), std::move(notify), false, std::move(cgroup)})
          .first;
  if (entry->second.process.reaped_through_pidfd()) {
    loop_.add(entry->second.process.pidfd(), EPOLLIN, [this, pid](std::uint32_t) { on_pidfd(pid); });
  }
  if (entry->second.notify) {
    loop_.add(entry->second.notify->fd(), EPOLLIN, [this, pid](std::uint32_t) { on_notify(pid); });
  }
  return {};
}

tl::expected<std::optional<NotifySettings>, StartFailure> WorkerProcesses::notify_settings_for(
    const WorkerSpec& generation, const WorkerId& id, std::optional<WorkerNotifySocket>& socket) {
  const Config& config = *generation.config;
  if (config.ready.mode != ReadyMode::notify && config.ready.mode != ReadyMode::automatic) {
    return std::nullopt;
  }
  // READY=1 is only one of auto's signs: without the socket the worker starts all the same, and
  // is seen ready by its waits on its listening sockets.
  const auto fail = [&](StartFailure failure) -> tl::expected<std::optional<NotifySettings>, StartFailure> {
    if (config.ready.mode != ReadyMode::automatic) {
      return tl::make_unexpected(std::move(failure));
    }
    if (!notify_unavailable_reported_) {
      notify_unavailable_reported_ = true;
      spdlog::warn("workers get no NOTIFY_SOCKET step=\"{}\" detail=\"{}\"; ready.mode = auto sees them ready "
                   "by their waits on the listening sockets only",
                   failure.step, failure.detail);
    }
    return std::nullopt;
  };
  const auto& credentials = generation.user.credentials;
  if (!notify_directory_) {
    auto directory = NotifyDirectory::create(config.name, credentials ? std::optional<uid_t>(credentials->uid)
                                                                      : std::nullopt);
    if (!directory) {
      return fail(StartFailure{"notify socket directory", 0, directory.error()});
    }
    notify_directory_ = std::move(*directory);
  }
  const std::string path = notify_directory_->worker_socket_path(id.slot, id.generation, id.instance);
  auto opened = WorkerNotifySocket::open(path, credentials ? std::optional<uid_t>(credentials->uid) : std::nullopt,
                                         credentials ? std::optional<gid_t>(credentials->gid) : std::nullopt);
  if (!opened) {
    return fail(StartFailure{"notify socket", 0, opened.error()});
  }
  socket = std::move(*opened);
  NotifySettings settings{socket->path(), std::nullopt};
  if (config.ready.watchdog) {
    settings.watchdog_usec = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(*config.ready.watchdog).count());
  }
  return settings;
}

void WorkerProcesses::signal(const SendSignal& send) {
  // A SIGKILL ends the worker with all it started, wherever they went: its whole cgroup.
  const auto kill_cgroup = [&](const WorkerCgroup& cgroup) {
    if (!cgroup.kill()) {
      spdlog::warn("cannot kill cgroup={} slot={} error=\"{}\"", cgroup.path(), send.id.slot, errno_text(errno));
    }
  };
  for (const auto& [pid, worker] : workers_) {
    if (worker.id == send.id) {
      worker.process.signal_group(send.signal);
      if (send.signal == SIGKILL && worker.cgroup) {
        kill_cgroup(*worker.cgroup);
      }
      return;
    }
  }
  for (const auto& [fd, left] : left_behind_) {
    if (left.id == send.id && send.signal == SIGKILL) {
      kill_cgroup(left.cgroup);
    }
  }
}

void WorkerProcesses::sample_rss(const SampleRss& sample) {
  for (const auto& [pid, worker] : workers_) {
    if (std::find(sample.ids.begin(), sample.ids.end(), worker.id) == sample.ids.end()) {
      continue;
    }
    const auto text = read_text_file("/proc/" + std::to_string(pid) + "/status");
    if (const auto rss = text ? parse_vm_rss(*text) : std::nullopt) {
      events_.push_back(RssSampled{worker.id, *rss});
    }
  }
}

void WorkerProcesses::probe_listening(const ProbeListening& probe, const std::set<std::uint64_t>& socket_inodes) {
  for (const auto& [pid, worker] : workers_) {
    if (std::find(probe.ids.begin(), probe.ids.end(), worker.id) == probe.ids.end()) {
      continue;
    }
    ListenProbe seen = clusterd::probe_listening(pid, socket_inodes);
    std::optional<std::string> sign;
    if (seen.sign) {
      sign = seen.sign->pid == pid ? seen.sign->how : fmt::format("{} pid={}", seen.sign->how, seen.sign->pid);
    }
    events_.push_back(Probed{worker.id, std::move(sign), std::move(seen.blind)});
  }
}

bool WorkerProcesses::reap(const ReceivedSignal& sigchld) {
  // The kernel keeps one SIGCHLD pending however many children exit before clusterd reads it:
  // the others are workers, whose pidfds report them (on_pidfd), or orphans, which the sweep the
  // caller owes then reaps.
  const bool from_kernel = sigchld.code == CLD_EXITED || sigchld.code == CLD_KILLED || sigchld.code == CLD_DUMPED;
  if (from_kernel) {
    const auto found = workers_.find(sigchld.sender);
    if (found != workers_.end() && found->second.process.reaped_through_pidfd()) {
      if (const auto info = found->second.process.exited()) {
        worker_ended(found, *info);
      }
      return false;
    }
    siginfo_t info{};
    if (found == workers_.end() && ::waitid(P_PID, static_cast<id_t>(sigchld.sender), &info,
                                            WEXITED | WNOHANG | WNOWAIT | __WALL) != 0 && errno == ECHILD) {
      return false;  // a worker its pidfd already reported: reaped this very loop turn
    }
  }
  reap_all();
  return true;
}

int WorkerProcesses::reap_all() {
  int orphans = 0;
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
    if (found == workers_.end()) {
      siginfo_t reaped{};
      retry_on_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid), &reaped, WEXITED); });
      spdlog::debug("reaped orphan pid={}", pid);
      ++orphans;
      continue;
    }
    worker_ended(found, info);
  }
  return orphans;
}

void WorkerProcesses::on_pidfd(pid_t pid) {
  auto found = workers_.find(pid);
  if (found == workers_.end()) {
    return;
  }
  if (const auto info = found->second.process.exited()) {
    worker_ended(found, *info);
  }
}

void WorkerProcesses::worker_ended(std::map<pid_t, RunningWorker>::iterator found, const siginfo_t& info) {
  const pid_t pid = found->first;
  RunningWorker& worker = found->second;
  worker.process.signal_group(SIGKILL);  // while the zombie still pins the group id
  worker.process.reap();
  WorkerExit exit = exit_from(info);
  // The child is gone, so a forked one's exec-status pipe is final: read it now rather than wait
  // for epoll. An exec failure is reported as such, never as a plain exit 127.
  const bool was_pending = worker.process.exec_state() == ExecState::pending;
  const ExecState exec_state = worker.process.read_exec_status();
  if (exec_state == ExecState::failed && worker.process.exec_failure()) {
    exit = *worker.process.exec_failure();
  } else if (exec_state == ExecState::succeeded && was_pending) {
    events_.push_back(Execed{worker.id});
  }
  if (worker.notify) {
    on_notify(pid);  // a READY=1 or STATUS= sent just before the exit still counts
  }
  if (!outputs_.empty()) {
    outputs_.drain_of(pid);  // what it wrote last is written out before its exit is logged
  }
  const WorkerId id = worker.id;
  std::optional<WorkerCgroup> cgroup = std::move(worker.cgroup);
  forget_worker(found);
  worker_gone(id, pid, std::move(exit), std::move(cgroup));
}

void WorkerProcesses::worker_gone(const WorkerId& id, pid_t pid, WorkerExit exit,
                                  std::optional<WorkerCgroup> cgroup) {
  if (!cgroup || !cgroup->populated()) {
    events_.push_back(Exited{id, std::move(exit)});
    return;  // the cgroup, if any, is removed here
  }
  // A daemonized helper (setsid, a double fork) would keep the listening sockets and serve on
  // its own; the worker is its process, so what it left goes with it. (Its process group was
  // just sent SIGKILL too, and may still be dying.)
  spdlog::info("worker exited, killing what is left in its cgroup slot={} gen={} pid={} cgroup={}", id.slot,
               id.generation, pid, cgroup->path());
  if (!cgroup->kill()) {
    spdlog::warn("cannot kill cgroup={} slot={} error=\"{}\"", cgroup->path(), id.slot, errno_text(errno));
  }
  // Read after the kill: a change from here on makes the events fd readable (EPOLLPRI).
  if (!cgroup->populated()) {
    events_.push_back(Exited{id, std::move(exit)});
    return;
  }
  const int events_fd = cgroup->events_fd();
  Fd give_up(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  itimerspec wait{};
  wait.it_value.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(left_behind_wait).count();
  if (!give_up || ::timerfd_settime(give_up.get(), 0, &wait, nullptr) != 0) {
    spdlog::warn("cannot wait for cgroup={} to empty error=\"{}\"; the worker counts as gone", cgroup->path(),
                 errno_text(errno));
    events_.push_back(Exited{id, std::move(exit)});
    return;
  }
  const int timer_fd = give_up.get();
  left_behind_.emplace(events_fd, LeftBehind{id, pid, std::move(exit), std::move(*cgroup), std::move(give_up)});
  loop_.add(events_fd, EPOLLPRI, [this, events_fd](std::uint32_t) { on_cgroup_events(events_fd); });
  loop_.add(timer_fd, EPOLLIN, [this, events_fd](std::uint32_t) {
    const auto found = left_behind_.find(events_fd);
    if (found != left_behind_.end()) {
      spdlog::warn("processes of worker slot={} pid={} outlived cgroup.kill by {}s (stuck in the kernel?); it "
                   "counts as gone, its cgroup stays cgroup={}",
                   found->second.id.slot, found->second.pid,
                   std::chrono::duration_cast<std::chrono::seconds>(left_behind_wait).count(),
                   found->second.cgroup.path());
      left_behind_gone(found);
    }
  });
}

void WorkerProcesses::on_cgroup_events(int events_fd) {
  const auto found = left_behind_.find(events_fd);
  if (found != left_behind_.end() && !found->second.cgroup.populated()) {
    left_behind_gone(found);
  }
}

void WorkerProcesses::left_behind_gone(std::map<int, LeftBehind>::iterator found) {
  loop_.remove(found->first);
  loop_.remove(found->second.give_up.get());
  events_.push_back(Exited{found->second.id, std::move(found->second.exit)});
  left_behind_.erase(found);
}

std::optional<CgroupCost> WorkerProcesses::cgroup_cost(pid_t pid) const {
  const auto found = workers_.find(pid);
  if (found == workers_.end() || !found->second.cgroup) {
    return std::nullopt;
  }
  return found->second.cgroup->cost();
}

std::optional<std::vector<pid_t>> WorkerProcesses::orphans() const {
  auto children = list_children();
  if (children) {
    std::erase_if(*children, [this](pid_t pid) { return workers_.contains(pid); });
  }
  return children;
}

void WorkerProcesses::forget_worker(std::map<pid_t, RunningWorker>::iterator found) {
  RunningWorker& worker = found->second;
  unwatch_exec_status(worker);
  if (worker.process.reaped_through_pidfd()) {
    loop_.remove(worker.process.pidfd());
  }
  if (worker.notify) {
    loop_.remove(worker.notify->fd());
  }
  workers_.erase(found);
}

void WorkerProcesses::on_notify(pid_t pid) {
  auto found = workers_.find(pid);
  if (found == workers_.end() || !found->second.notify) {
    return;
  }
  RunningWorker& worker = found->second;
  int dropped = 0;
  for (NotifyMessage& message : worker.notify->drain(pid, dropped)) {
    events_.push_back(Notified{worker.id, std::move(message)});
  }
  if (dropped > 0) {
    spdlog::debug("dropped notify datagrams slot={} pid={} count={} (not from the worker or its children)",
                  worker.id.slot, pid, dropped);
  }
}
void WorkerProcesses::on_exec_status(pid_t pid) {
  auto found = workers_.find(pid);
  if (found == workers_.end()) {
    return;
  }
  RunningWorker& worker = found->second;
  const ExecState state = worker.process.read_exec_status();
  if (state == ExecState::pending) {
    return;
  }
  unwatch_exec_status(worker);
  if (state == ExecState::succeeded) {
    events_.push_back(Execed{worker.id});
  }
  // A failure is reported with the exit, when the child is reaped (worker_ended).
}

void WorkerProcesses::unwatch_exec_status(RunningWorker& worker) {
  if (worker.exec_status_watched) {
    loop_.remove(worker.process.exec_status_fd());
    worker.exec_status_watched = false;
    worker.process.close_exec_status();
  }
}

// Only to workers whose program runs: a forked child still setting up has the signal blocked,
// and would take it (its default action, death) the moment it unblocks it, before it ever
// became the worker; one whose exec failed is about to exit.
void WorkerProcesses::forward(int signal) {
  std::size_t sent = 0;
  for (const auto& [pid, worker] : workers_) {
    if (worker.process.exec_state() == ExecState::succeeded) {
      worker.process.signal_group(signal);
      ++sent;
    }
  }
  spdlog::info("forwarded signal={} workers={}", signal_name(signal), sent);
}

}  // namespace clusterd
