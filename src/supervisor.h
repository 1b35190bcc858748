// The pure state machine of clusterd: events in (with the time), actions out. It decides who is
// spawned, signalled and restarted, and when clusterd exits; it never touches the kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "backoff.h"
#include "config.h"
#include "duration.h"
#include "worker_exit.h"

namespace clusterd {

// One spawn of one slot. `instance` is unique per spawn across the supervisor's life.
struct WorkerId {
  int slot = 0;
  std::uint64_t generation = 1;
  std::uint64_t instance = 0;
  bool operator==(const WorkerId&) const = default;
};

// ---- Events: what happened.
struct Start {};
struct Spawned {  // fork succeeded; exec may still fail
  WorkerId id;
  int pid = 0;
};
struct SpawnFailed {  // no process was created (fork or pipe failed)
  WorkerId id;
  ExecFailure failure;
};
struct Execed {  // the worker program runs
  WorkerId id;
};
struct Exited {  // reaped; an ExecFailure when the child never became the program
  WorkerId id;
  WorkerExit exit;
};
struct StopRequested {
  bool quick = false;  // SIGQUIT: SIGKILL every worker at once
};
struct Tick {};  // the deadline of next_deadline() passed

using Event = std::variant<Start, Spawned, SpawnFailed, Execed, Exited, StopRequested, Tick>;

// ---- Actions: what the shell must do, in order.
struct Spawn {
  WorkerId id;
  int workers = 0;  // CLUSTERD_WORKERS for the new worker
};
struct SendSignal {  // to the worker's whole process group
  WorkerId id;
  int signal = 0;
};
enum class LogSeverity { debug, info, warn, error };
struct Log {
  LogSeverity severity = LogSeverity::info;
  std::string message;  // "event key=value …"
};
struct ExitDaemon {
  int code = 0;
};

using Action = std::variant<Spawn, SendSignal, Log, ExitDaemon>;

enum class WorkerState { starting, ready, stopping };
enum class SlotState { running, backoff, failed, done };

struct WorkerStatus {
  WorkerId id;
  int pid = 0;  // 0 until Spawned
  WorkerState state = WorkerState::starting;
  Duration uptime{0};
};
struct SlotStatus {
  int slot = 0;
  SlotState state = SlotState::running;
  int restarts = 0;
  std::optional<WorkerExit> last_exit;
  std::optional<Duration> next_restart_in;
  std::vector<WorkerStatus> workers;  // more than one while a slot's worker is replaced
};
struct StatusSnapshot {
  std::uint64_t generation = 1;
  int workers_wanted = 0;
  bool stopping = false;
  std::vector<SlotStatus> slots;
};

// Decides everything from events and the time it is told. Contract with the shell:
// every Spawn is answered by Spawned or SpawnFailed before the next event of another worker;
// every Spawned worker is answered by exactly one Exited; Tick is sent at next_deadline().
class Supervisor {
 public:
  // `worker_count`: the resolved number of slots. `uniform01` returns jitter in [0, 1].
  Supervisor(const Config& config, int worker_count, std::function<double()> uniform01);

  std::vector<Action> handle(const Event& event, TimePoint now);

  // The nearest time at which a Tick has something to do: a restart, a grace period's end.
  std::optional<TimePoint> next_deadline() const;

  StatusSnapshot status(TimePoint now) const;

 private:
  struct Worker {
    WorkerId id;
    int pid = 0;
    WorkerState state = WorkerState::starting;
    TimePoint started_at{};
    bool stop_requested = false;  // clusterd sent the stop signal: its exit is no failure
    bool killed = false;          // clusterd sent SIGKILL
    std::optional<TimePoint> kill_at;
  };
  struct Slot {
    explicit Slot(const RestartConfig& restart) : backoff(restart) {}
    SlotState state = SlotState::running;
    SlotBackoff backoff;
    int restarts = 0;
    std::optional<WorkerExit> last_exit;
    std::optional<TimePoint> restart_at;  // in backoff: when to spawn again
  };

  void on_event(const Start&, TimePoint now);
  void on_event(const Spawned& event, TimePoint now);
  void on_event(const SpawnFailed& event, TimePoint now);
  void on_event(const Execed& event, TimePoint now);
  void on_event(const Exited& event, TimePoint now);
  void on_event(const StopRequested& event, TimePoint now);
  void on_event(const Tick&, TimePoint now);

  // Compares what is wanted with what runs and emits what closes the gap.
  void reconcile(TimePoint now);
  void reconcile_shutdown(TimePoint now);
  void spawn(int slot, TimePoint now);
  void worker_ended(Worker worker, const WorkerExit& exit, TimePoint now);
  void schedule_restart(int slot, Duration uptime, TimePoint now);
  Worker* find_worker(const WorkerId& id);
  const Worker* live_worker_of(int slot) const;
  void log(LogSeverity severity, std::string message);

  Config config_;
  std::function<double()> uniform01_;
  int wanted_ = 0;
  std::uint64_t generation_ = 1;
  std::uint64_t next_instance_ = 1;
  bool started_ = false;
  bool stopping_ = false;
  bool exiting_ = false;
  bool exec_failure_reported_ = false;
  std::vector<Slot> slots_;
  std::vector<Worker> workers_;
  std::vector<Action> actions_;  // filled while handling one event
};

}  // namespace clusterd
