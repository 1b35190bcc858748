// The imperative shell around the Supervisor: turns kernel events (signals, child exits, exec
// reports, the timer) into Supervisor events and carries out the actions it returns.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "event_loop.h"
#include "process.h"
#include "sockets.h"
#include "spawn_plan.h"
#include "supervisor.h"

namespace clusterd {

// Everything a running clusterd needs, prepared and checked by main before any worker starts.
struct DaemonSetup {
  Config config;
  int worker_count = 1;
  std::string executable;                 // resolved path of command[0]
  std::vector<Listener> listeners;        // open, listening
  std::optional<Credentials> credentials; // workers' ids, when they differ from clusterd's
  std::optional<UserEnv> user_env;
};

class Daemon {
 public:
  explicit Daemon(DaemonSetup setup);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until the Supervisor says to exit; returns clusterd's exit status.
  int run();

 private:
  struct RunningWorker {
    WorkerId id;
    Process process;
    bool exec_status_watched = false;  // its exec-status pipe is registered with the loop
    bool execed_sent = false;
  };

  void execute(const std::vector<Action>& actions);
  void execute_one(const Spawn& spawn);
  void execute_one(const SendSignal& send);
  void execute_one(const Log& entry);
  void execute_one(const ExitDaemon& exit);

  void on_signal();
  void reap_children();
  void on_exec_status(pid_t pid);
  void unwatch_exec_status(RunningWorker& worker);
  void forward_signal(int signal);
  void check_listeners();
  void drain_events();

  DaemonSetup setup_;
  std::vector<ListenerFd> listener_fds_;
  std::vector<std::string> parent_env_;
  Supervisor supervisor_;
  EventLoop loop_;
  SignalReader signals_;
  std::map<pid_t, RunningWorker> workers_;
  std::deque<Event> pending_;
  std::optional<int> exit_code_;
};

}  // namespace clusterd
