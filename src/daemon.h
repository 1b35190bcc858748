// The imperative shell around the Supervisor: the event loop's dispatch (signals, the timer, the
// control socket), the Supervisor's actions carried out, and the configuration generations. The
// worker processes themselves are WorkerProcesses'.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"
#include "control_server.h"
#include "cpu_rates.h"
#include "event_loop.h"
#include "listener_sockets.h"
#include "metrics_server.h"
#include "orphan_stop.h"
#include "output_file.h"
#include "sockets.h"
#include "supervisor.h"
#include "upgrade_state.h"
#include "worker_logs.h"
#include "worker_processes.h"

namespace clusterd {

// A configuration checked for a start or a reload: valid, with the program resolved and the
// workers' ids looked up.
struct PreparedConfig {
  Config config;
  std::string executable;
  WorkerUser user;
};

// Re-reads the config file with the command line's overrides and checks it (SIGHUP).
using ConfigLoader = std::function<tl::expected<PreparedConfig, Diagnostics>()>;

// Everything a running clusterd needs, prepared and checked by main before any worker starts.
struct DaemonSetup {
  PreparedConfig prepared;
  int worker_count = 1;
  // Open (bound or adopted) listeners and the configuration each stands for, in order.
  std::vector<Listener> listeners;
  std::vector<ListenerConfig> listener_configs;
  ConfigLoader reload_loader;
  std::function<int(const Config&)> resolve_worker_count;  // for workers = "auto"
  // The control socket, opened by main before any worker starts; nullopt: control.socket = "none".
  std::optional<ControlSocket> control;
  // The metrics endpoint's socket, bound by main; nullopt: no [metrics] listen.
  std::optional<Listener> metrics;
  // output.file, opened by main; nullopt: workers' lines go to clusterd's stdout and stderr.
  std::optional<OpenedOutputFile> output_file;
  // Where each worker's cgroup is made (cgroup.mode); nullopt: the workers stay in clusterd's.
  std::optional<WorkerCgroups> cgroups;
  // The listeners came from a socket unit (LISTEN_FDS): systemd holds them already.
  bool socket_unit = false;
  // Names of sockets systemd's fd store passed back that no listener took: removed from it.
  std::vector<std::string> unused_stored;
  // `clusterd upgrade`: the state the binary before this one handed over. `listeners` then
  // holds each listener's lowest slot's socket, and `more_slot_sockets` (by listener) the rest.
  std::optional<UpgradeState> upgraded;
  std::vector<std::map<int, Listener>> more_slot_sockets;
  std::vector<std::optional<ReuseportSteering::Handover>> steering;  // by listener
  // This binary runs again because the one it upgraded to refused the state: why.
  std::optional<std::string> upgrade_refused;
};

class Daemon {
 public:
  explicit Daemon(DaemonSetup setup);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until the Supervisor says to exit; returns clusterd's exit status.
  int run();

 private:
  // A configuration generation: what its workers are spawned with, and what the daemon
  // remembers of its file for later reloads.
  struct Generation : WorkerSpec {
    std::optional<int> workers_setting;  // the file's `workers` (nullopt: auto), for later reloads
    bool abandoned = false;              // its reload was abandoned: its file never took effect
    std::vector<std::string> restart_needed;  // changed keys a reload cannot apply
  };

  void execute(const std::vector<Action>& actions);
  void execute_one(const Spawn& spawn);
  void execute_one(const SendSignal& send);
  void execute_one(const ProbeListening& probe);
  void execute_one(const SampleRss& sample);
  void execute_one(const NotifySystemd& notify);
  void execute_one(const ReloadFinished& finished);
  void execute_one(const Log& entry);
  void execute_one(const ExitDaemon& exit);

  void on_signal();
  // daemon_listeners.cpp: the listeners of every generation.
  std::set<ListenerSockets*> open_listeners_now() const;
  // Every open listener's socket inodes (the probes' set), kept until a listener's sockets change.
  const std::set<std::uint64_t>& listener_inodes();
  // After workers of `slots` exited: a worker's shutdown() may have stopped a listener
  // (interface §7); listen again so the next workers are served.
  void check_listeners(std::span<const int> slots);
  // reap_all, and the listeners an orphan it reaped may have stopped.
  void sweep_children();
  // Per-slot listeners: new connections to the slots that accept; sockets of slots that no
  // longer need one closed (listener_sockets.h).
  void steer_and_close_slot_sockets();
  void warn_about_per_slot_scale_down(const GenerationListeners& listeners);
  // Under systemd, the open shared listeners are kept in its fd store (FDSTORE=1, named), so they
  // outlive a clusterd that is killed: systemd passes them back to the next start, and clients
  // wait in the backlog meanwhile. A listener no generation uses any more is taken out again.
  void keep_listeners_in_systemd();
  void drain_events();
  // A stop began (quick: SIGQUIT, a second SIGTERM): the orphans' stop begins or speeds up.
  void stop_orphans(const StopRequested& request, TimePoint now);
  // Signals the orphans that are due a signal (orphan_stop.h); true once clusterd may exit: it
  // wants to, and no orphan is left or it waited for them long enough.
  bool may_exit(TimePoint now);
  void ping_systemd_watchdog(TimePoint now);
  std::optional<TimePoint> next_wakeup() const;

  // SIGHUP, or a control `reload` (`request`), which is answered when the reload finished, was
  // abandoned, or at once when it is refused.
  void reload(std::optional<RequestId> request = std::nullopt);
  void on_control_request(RequestId id, const Request& request);
  // daemon_upgrade.cpp: `clusterd upgrade`: this process executes `binary` with its state, or
  // answers why not. Returns only when it did not.
  void upgrade(RequestId id, const std::optional<std::string>& binary);
  UpgradeState upgrade_state(RequestId id);
  // The new binary's side: the workers and notify directory of `state` taken over, the client
  // that asked answered.
  void take_over(const UpgradeState& state, const std::optional<std::string>& refused);
  void answer_logs(RequestId id, const LogsRequest& request);
  // What `status` and `metrics` show, each worker's process tree cost read now (process_tree.h):
  // the only time clusterd samples. `pss`: the trees' proportional memory as well.
  InstanceStatus instance_status_now(bool pss);
  // The count wanted once the scale events already queued in pending_ are handled.
  int workers_wanted_after_queued() const;
  tl::expected<GenerationListeners, std::string> listeners_for(const Config& config, int workers);
  // A reload's metrics.listen: whether it differs from the endpoint's now, and if so the new
  // address's socket, bound before the old one closes (nullopt: no endpoint any more), or why
  // it cannot be bound.
  struct MetricsChange {
    bool changed = false;
    std::optional<Listener> listener;
  };
  tl::expected<MetricsChange, std::string> metrics_change_for(const Config& config);
  // The endpoint at `address` on `listener` from now on, replacing the one there was.
  void serve_metrics(std::optional<Address> address, std::optional<Listener> listener);
  // `workers` of the newest configuration accepted and not abandoned: a reload's file changes the
  // worker count only when its `workers` differs from that (interface §4.3).
  std::optional<int> accepted_workers_setting() const;
  void prune_generations();

  ConfigLoader reload_loader_;
  std::function<int(const Config&)> resolve_worker_count_;
  std::map<std::uint64_t, Generation> generations_;  // by generation number, as the Supervisor's
  std::uint64_t next_generation_ = 2;                 // allocated when a reload is accepted
  Supervisor supervisor_;
  EventLoop loop_;
  SignalReader signals_;
  SystemdNotifier systemd_;
  std::optional<TimePoint> next_systemd_ping_;
  // A sweep of every child owed by a SIGCHLD that named a worker (orphans' SIGCHLDs merge into
  // it): made then, at most once per orphan_sweep_delay, so restarts never walk every child each.
  std::optional<TimePoint> orphan_sweep_at_;
  static constexpr Duration orphan_sweep_delay = std::chrono::milliseconds(100);
  std::set<std::uint64_t> probe_inodes_;             // every listener's socket inodes, for the probes
  std::vector<std::uint64_t> probe_inodes_versions_;  // the listeners' versions they were read at
  bool slot_sockets_changed_ = false;  // outside a batch of events: steer_and_close_slot_sockets owed
  bool tcp_migrate_req_checked_ = false;  // the per-slot scale-down warning is given once
  std::map<std::string, std::uint64_t> fd_store_;  // in systemd's fd store: name → socket inode
  bool socket_unit_ = false;                        // DaemonSetup::socket_unit
  bool per_slot_not_stored_said_ = false;
  bool taken_over_ = false;
  // An `upgrade` request, carried out once the events of the loop's turn are handled.
  std::optional<std::pair<RequestId, UpgradeRequest>> upgrade_wanted_;  // the pool came from the binary before this one (take_over)
  std::deque<Event> pending_;
  std::optional<int> exit_code_;
  // The processes re-parented to clusterd, stopped with it; untouched before the stop begins.
  OrphanStop orphans_;
  bool orphans_left_ = false;   // at the last look
  bool stop_requested_ = false;  // a StopRequested was handled
  bool orphans_unlisted_warned_ = false;  // /proc could not list the children: said once
  std::optional<std::string> config_path_;  // the config file, absolute, for status
  CpuRates cpu_rates_;                      // each worker's CPU at the previous status
  // Before workers_: the output it flushes at exit still reaches the followers.
  WorkerLogs worker_logs_;
  // After loop_: its connections leave the loop before the loop goes.
  std::optional<ControlServer> control_;
  std::optional<MetricsServer> metrics_;  // also after loop_
  // After loop_ and pending_ (it registers with the one and reports into the other), and last:
  // it goes first, flushing the workers' output what it can at exit.
  WorkerProcesses workers_;
};

}  // namespace clusterd
