// The worker processes of a running clusterd, as the daemon's loop sees them: started from a
// Spawn, signalled, sampled, reaped. What the kernel reports about them becomes Supervisor
// events (Spawned, SpawnFailed, Execed, Notified, RssSampled, Exited), appended to the daemon's
// queue; nothing here decides anything.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"
#include "credentials.h"
#include "event_loop.h"
#include "listener_sockets.h"
#include "notify.h"
#include "output_router.h"
#include "process.h"
#include "spawn_plan.h"
#include "supervisor.h"
#include "upgrade_state.h"
#include "worker_cgroups.h"

namespace clusterd {

// A generation's listeners in order, each with the configuration it stands for.
using GenerationListeners = std::vector<std::pair<ListenerConfig, std::shared_ptr<ListenerSockets>>>;

// What spawning a worker of one configuration needs. Listeners are shared between generations
// that keep the same address, so a reload never closes a socket it still uses.
struct WorkerSpec {
  std::shared_ptr<const Config> config;
  std::string executable;
  WorkerUser user;
  GenerationListeners listeners;
  // The program or directory is on a file system that may hang (mount_table.h): its workers are
  // forked, so clusterd never waits for their exec (child_launch.h).
  bool launch_may_hang = false;
};

class WorkerProcesses {
 public:
  // `events`: where the kernel's reports go, for the daemon to hand to the Supervisor.
  // `parent_env`: clusterd's environment, the base of every worker's.
  WorkerProcesses(EventLoop& loop, std::deque<Event>& events, std::vector<std::string> parent_env);
  WorkerProcesses(const WorkerProcesses&) = delete;
  WorkerProcesses& operator=(const WorkerProcesses&) = delete;

  // From now on each worker starts in a cgroup of its own there (worker_cgroups.h): a SIGKILL
  // for it is cgroup.kill, and its exit counts only once nothing is left in that cgroup (what
  // it left behind is killed).
  void use_cgroups(WorkerCgroups cgroups) { cgroups_.emplace(std::move(cgroups)); }
  const std::optional<WorkerCgroups>& cgroups() const { return cgroups_; }

  // Starts the worker (Spawned), or says why it could not (SpawnFailed).
  void spawn(const Spawn& spawn, const WorkerSpec& generation);
  void signal(const SendSignal& send);
  // SIGUSR2: to every worker whose program runs (not to one still in its setup).
  void forward(int signal);
  void sample_rss(const SampleRss& sample);
  // Answers each worker of `probe` with Probed: whether it waits on one of `socket_inodes`.
  void probe_listening(const ProbeListening& probe, const std::set<std::uint64_t>& socket_inodes);
  // SIGCHLD, about `sigchld.sender`: a worker is reaped through its pidfd; for any other sender
  // (an orphan, a worker without a waitable pidfd, a SIGCHLD a process sent) every child that
  // exited is (reap_all). A reaped worker is an Exited event. False when it did not sweep: the
  // SIGCHLDs of other children that exited meanwhile (a dead worker's helpers, killed with its
  // group) were merged into this one, so a sweep is still owed.
  bool reap(const ReceivedSignal& sigchld);
  // Reaps every child that exited: waitid(P_ALL), which walks all of clusterd's children (about
  // 150 µs at 4,096 on 2 CPUs), hence not for every SIGCHLD. Returns how many orphans it reaped.
  int reap_all();

  // clusterd's children that are not workers: processes a worker left behind that were
  // re-parented to clusterd (a child subreaper) when their parent exited. nullopt: /proc cannot
  // tell (list_children).
  std::optional<std::vector<pid_t>> orphans() const;

  // `clusterd upgrade`: what the state names of the workers (their NOTIFY_SOCKETs, output pipes
  // and cgroups, by pid) and of the notify directory, all left open for the exec.
  void hand_over(UpgradeState& state) const;
  // The notify directory an earlier clusterd of this process made.
  void adopt_notify_directory(NotifyDirectory directory) { notify_directory_.emplace(std::move(directory)); }
  // A worker an earlier clusterd of this process started, with the fds the state names: it is
  // signalled, reaped and read from as if spawned here. The error says why it cannot be.
  tl::expected<void, std::string> adopt(const HandedWorker& worker, bool timestamps);

  std::size_t size() const { return workers_.size(); }
  // What the cgroup of the worker `pid` costs (worker_cgroups.h); nullopt without one.
  std::optional<CgroupCost> cgroup_cost(pid_t pid) const;

  // output = "prefix": where the workers' lines go and who else sees them (output_router.h).
  OutputRouter& outputs() { return outputs_; }

 private:
  struct RunningWorker {
    WorkerId id;
    Process process;
    std::optional<WorkerNotifySocket> notify;
    bool exec_status_watched = false;  // a forked worker's exec-status pipe is registered with the loop
    std::optional<WorkerCgroup> cgroup;
  };
  // A worker whose process exited while others remained in its cgroup: they were killed, and its
  // Exited waits until the cgroup is empty.
  struct LeftBehind {
    WorkerId id;
    pid_t pid = 0;
    WorkerExit exit;
    WorkerCgroup cgroup;
    Fd give_up;  // a timerfd: processes that outlive a SIGKILL this long are stuck in the kernel
  };
  // How long a worker's exit waits for its cgroup to empty after cgroup.kill, as OrphanStop waits.
  static constexpr Duration left_behind_wait = std::chrono::seconds(5);

  // nullopt without ready.mode = notify or auto; a StartFailure when the socket cannot be made
  // (auto does without it: nullopt, said once).
  tl::expected<std::optional<NotifySettings>, StartFailure> notify_settings_for(
      const WorkerSpec& generation, const WorkerId& id, std::optional<WorkerNotifySocket>& socket);
  void on_notify(pid_t pid);
  void on_exec_status(pid_t pid);
  void unwatch_exec_status(RunningWorker& worker);
  void on_pidfd(pid_t pid);
  // The worker's zombie `info` is reaped, its last notify messages and output read, its Exited
  // event queued and the worker forgotten.
  void worker_ended(std::map<pid_t, RunningWorker>::iterator found, const siginfo_t& info);
  void forget_worker(std::map<pid_t, RunningWorker>::iterator found);
  // The Exited of a worker that ended, at once or (something else still in its cgroup) once the
  // rest was killed and the cgroup is empty.
  void worker_gone(const WorkerId& id, pid_t pid, WorkerExit exit, std::optional<WorkerCgroup> cgroup);
  void on_cgroup_events(int events_fd);
  // The left-behind worker of `events_fd` counts as gone: its Exited is queued, its fds leave the loop.
  void left_behind_gone(std::map<int, LeftBehind>::iterator found);

  EventLoop& loop_;
  std::deque<Event>& events_;
  std::vector<std::string> parent_env_;
  std::optional<NotifyDirectory> notify_directory_;
  bool notify_unavailable_reported_ = false;
  std::optional<WorkerCgroups> cgroups_;  // before the workers: their cgroups are made in it
  std::map<pid_t, RunningWorker> workers_;
  std::map<int, LeftBehind> left_behind_;  // by the cgroup.events fd
  // output = "prefix": the workers' output pipes and clusterd's stdout and stderr they feed.
  OutputRouter outputs_;
};

}  // namespace clusterd
