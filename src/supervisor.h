// The pure state machine of clusterd: events in (with the time), actions out. It decides who is
// spawned, signalled, replaced and restarted, and when clusterd exits; it never touches the kernel.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "backoff.h"
#include "config.h"
#include "duration.h"
#include "notify_message.h"
#include "worker_exit.h"

namespace clusterd {

// One spawn of one slot. `instance` is unique per spawn across the supervisor's life.
struct WorkerId {
  int slot = 0;
  std::uint64_t generation = 1;
  std::uint64_t instance = 0;
  bool operator==(const WorkerId&) const = default;
};

using RequestId = std::uint64_t;  // a control request waiting for an answer

// ---- Events: what happened.
struct Start {};
struct Spawned {  // fork succeeded; exec may still fail
  WorkerId id;
  int pid = 0;
};
// No worker process runs: fork or a pipe failed (`lasting` false: the system's trouble, backed off
// like a crash), or something the worker needs cannot be made (`lasting` true: a notify socket
// directory, say; reported once and retried every restart.max_delay, like a program that cannot
// be executed).
struct SpawnFailed {
  WorkerId id;
  StartFailure failure;
  bool lasting = false;
};
struct Execed {  // the worker program runs
  WorkerId id;
};
struct Notified {  // a datagram on the worker's NOTIFY_SOCKET
  WorkerId id;
  NotifyMessage message;
};
struct Exited {  // reaped; a StartFailure when the child never became the program
  WorkerId id;
  WorkerExit exit;
};
// Answer to ProbeListening, for one worker: `sign` says how it was seen waiting for connections
// on a listening socket ("epoll", "accept pid=1235"); `blind`, why that cannot be seen in it.
// Neither: not waiting yet.
struct Probed {
  WorkerId id;
  std::optional<std::string> sign;
  std::optional<std::string> blind;
};
struct RssSampled {  // answer to SampleRss
  WorkerId id;
  std::uint64_t rss_bytes = 0;
};
struct StopRequested {
  bool quick = false;  // SIGQUIT: SIGKILL every worker at once
};
// A rolling reload to `config` (already validated), known from now on as `generation` (the
// shell allocates it, increasing, never reused). `workers`: the file changed the count; nullopt:
// keep the count the pool is heading for when the reload starts (a scale meanwhile included).
struct ReloadRequested {
  std::uint64_t generation = 0;
  std::shared_ptr<const Config> config;
  std::optional<int> workers;
  std::optional<RequestId> request;
};
// `by`, in the log line: who asked ("SIGTTIN", "control uid=0 pid=4242").
struct ScaleRequested {  // `scale N`
  int workers = 1;
  std::string by;
};
struct ScaleBy {  // `scale +N`/`-N`, SIGTTIN (+1), SIGTTOU (-1): from the count wanted when handled
  int delta = 0;
  std::string by;
};
// `restart SLOT|all`: a slot whose worker is ready gets a new one that takes over once ready, one
// slot at a time as in a recycle; a slot in backoff, failed or exited starts again now. Either
// way its restart count, last exit and backoff start afresh.
struct RestartRequested {
  std::optional<int> slot;  // nullopt: every slot
  std::string by;
};
struct Tick {};  // the deadline of next_deadline() passed

using Event = std::variant<Start, Spawned, SpawnFailed, Execed, Notified, Exited, Probed, RssSampled,
                           StopRequested, ReloadRequested, ScaleRequested, ScaleBy, RestartRequested, Tick>;

// ---- Actions: what the shell must do, in order.
struct Spawn {  // with the configuration of id.generation
  WorkerId id;
  int workers = 0;  // CLUSTERD_WORKERS for the new worker
};
struct SendSignal {  // to the worker's whole process group
  WorkerId id;
  int signal = 0;
};
struct ProbeListening {  // look whether these workers wait for connections; answer with Probed
  std::vector<WorkerId> ids;
};
struct SampleRss {  // read each worker's VmRSS and answer with RssSampled
  std::vector<WorkerId> ids;
};
struct NotifySystemd {  // an sd_notify message for the service manager, when there is one
  std::string message;
};
struct ReloadFinished {  // a reload finished (ok) or was abandoned
  std::vector<RequestId> requests;
  bool ok = false;
  std::uint64_t generation = 0;
  std::string error;
};
enum class LogSeverity { debug, info, warn, error };
struct Log {
  LogSeverity severity = LogSeverity::info;
  std::string message;  // "event key=value …"
};
struct ExitDaemon {
  int code = 0;
};

using Action =
    std::variant<Spawn, SendSignal, ProbeListening, SampleRss, NotifySystemd, ReloadFinished, Log, ExitDaemon>;

enum class WorkerState { starting, ready, stopping };
enum class SlotState { running, backoff, failed, done };

struct WorkerStatus {
  WorkerId id;
  int pid = 0;  // 0 until Spawned
  WorkerState state = WorkerState::starting;
  Duration uptime{0};
  std::optional<std::string> notify_status;
  // Asked to stop, and SIGKILLed after this unless it exits first; nullopt otherwise (not
  // stopping, or SIGKILL already sent).
  std::optional<Duration> kill_in;
};
struct SlotStatus {
  int slot = 0;
  SlotState state = SlotState::running;
  int restarts = 0;
  std::optional<WorkerExit> last_exit;
  std::optional<Duration> next_restart_in;
  std::vector<WorkerStatus> workers;  // more than one while a slot's worker is replaced
};
// What happened since clusterd started, for `clusterd metrics`: never reset (a `restart` clears a
// slot's own restart count, not these).
struct Counters {
  std::uint64_t restarts = 0;             // workers started again after an exit
  std::uint64_t exits_code = 0;           // workers that exited by themselves, not asked to
  std::uint64_t exits_signal = 0;         // ...killed by a signal clusterd did not ask for
  std::uint64_t exits_start_failure = 0;  // ...never became the program (exec failed)
  std::uint64_t reloads_finished = 0;
  std::uint64_t reloads_abandoned = 0;
  std::optional<Duration> last_reload;    // how long the last finished or abandoned one took
};

// What a slot's per-slot sockets depend on (listener_sockets.h), without the cost of status().
struct SlotActivity {
  bool accepting = false;  // a worker of it is ready and not stopping: new connections may go there
  bool running = false;    // a worker of it runs that is not stopping (starting or ready)
  bool may_run = true;     // not failed for good, not done: it may run a worker again
};

struct StatusSnapshot {
  std::uint64_t generation = 1;  // the last finished generation
  std::optional<std::uint64_t> reloading_to;
  int workers_wanted = 0;
  int workers_ready = 0;
  bool stopping = false;
  std::vector<SlotStatus> slots;  // every slot, in order: slots[i].slot == i
  Counters counters;
};

// A worker as `clusterd upgrade` hands it to the new binary: running, ready, in its slot.
struct HandedOverWorker {
  WorkerId id;
  int pid = 0;
  Duration uptime{0};
  int restarts = 0;  // its slot's
  std::optional<std::string> notify_status;
};
// A slot as `clusterd upgrade` hands it over: running (its worker is among the workers), in
// backoff, failed for good, or exited and not to be restarted.
struct HandedOverSlot {
  SlotState state = SlotState::running;
  int restarts = 0;
  int failures = 0;  // its backoff streak
  std::optional<WorkerExit> last_exit;
  std::optional<Duration> restart_in;  // backoff: its next start
};
struct HandedOverPool {
  std::uint64_t generation = 1;
  std::uint64_t next_instance = 1;
  Counters counters;
  std::vector<HandedOverSlot> slots;       // every slot, in order
  std::vector<HandedOverWorker> workers;  // the running slots' (a running slot without one starts one)
};

// Decides everything from events and the time it is told. Contract with the shell:
// every Spawn is answered by Spawned or SpawnFailed before the next event of another worker;
// every Spawned worker is answered by exactly one Exited; Tick is sent at next_deadline().
//
// Invariant, after every handle(event, now): next_deadline() is later than `now` (whatever was
// due has been acted on), so the shell's timer can never fire in a loop.
class Supervisor {
 public:
  // `worker_count`: the resolved number of slots. `uniform01` returns numbers in [0, 1] for
  // backoff and recycle jitter. The configuration is generation 1's.
  Supervisor(const Config& config, int worker_count, std::function<double()> uniform01);
  Supervisor(std::shared_ptr<const Config> config, int worker_count, std::function<double()> uniform01);

  std::vector<Action> handle(const Event& event, TimePoint now);
  // Several events that came in one turn of the daemon's loop, in order, then one reconciliation:
  // the same decisions as one at a time (reconciling is idempotent), but each pass over every
  // worker and deadline is made once per turn instead of once per event, which at thousands of
  // workers is most of the cost of a start.
  std::vector<Action> handle(std::span<const Event> events, TimePoint now);

  // The nearest time at which a Tick has something to do: the minimum of the one list of
  // deadlines (supervisor_deadlines.cpp), taken when the last handle() ended (only handle()
  // changes them). nullopt: nothing until an event.
  std::optional<TimePoint> next_deadline() const { return next_deadline_; }

  StatusSnapshot status(TimePoint now) const;
  // Every slot's activity, in slot order, counting only the workers of the generations for which
  // `counted` is true (those that hold a given listener): one pass over the slots and one over
  // the workers.
  std::vector<SlotActivity> slot_activity(const std::function<bool(std::uint64_t generation)>& counted) const;
  // Whether slot_activity() may say something else than at the last call of this: a worker was
  // started, became ready, was asked to stop or ended, or a slot changed state. Clears it.
  bool take_activity_change() { return std::exchange(activity_changed_, false); }

  // Generations whose configuration the shell must keep: those of live workers, of slots (a
  // restart uses its slot's generation) and of a reload under way or queued.
  std::set<std::uint64_t> generations_in_use() const;

  const Config& config_of(std::uint64_t generation) const { return *configs_.at(generation); }
  std::shared_ptr<const Config> shared_config_of(std::uint64_t generation) const { return configs_.at(generation); }
  std::uint64_t generation() const { return generation_; }  // the last finished one

  // The worker count asked for: the count a reload under way is heading for, else the count of
  // the running generation.
  int workers_wanted() const { return reload_ ? reload_->target : wanted_; }

  // A reload is under way or waiting for the one under way.
  bool reloading() const { return reload_.has_value() || queued_reload_.has_value(); }

  // At most spawn_budget slots are (re)started at once; the rest wait until spawn_pause after the
  // last of those forks was answered (Spawned), however long the forks took, so a start or
  // `scale` of thousands gives the daemon's loop a turn (signals, control requests, reaps) after
  // every spawn_budget forks.
  // supervisor_upgrade.cpp: `clusterd upgrade`. Why the pool cannot be handed over now (a
  // reload or stop under way, a worker not ready yet or being replaced); nullopt when it can:
  // every running slot has one worker, ready and not asked to stop (a slot in backoff, failed or
  // exited has none and is handed over as it is).
  std::optional<std::string> upgrade_blocker() const;
  HandedOverPool hand_over(TimePoint now) const;
  // Instead of Start: the pool an earlier clusterd of this process handed over, each worker ready
  // in its slot, its uptime and its slot's restarts kept. The configuration given at
  // construction is the pool's generation's. Nothing is spawned or signalled; the actions are
  // log lines.
  std::vector<Action> adopt(const HandedOverPool& pool, TimePoint now);

  static constexpr int spawn_budget = 32;
  static constexpr Duration spawn_pause = std::chrono::milliseconds(1);

  // ready.mode = auto looks at a starting worker every millisecond for the first 10 ms after its
  // exec (most servers wait on their socket within that), then at intervals doubling from 2 ms
  // up to 50 ms. A look costs about 50-100 µs, so while many workers start at once no interval
  // is shorter than 0.2 ms per worker being looked at: the looks then take at most about a
  // third of a CPU, however many start.
  static constexpr Duration first_probe_delay = std::chrono::milliseconds(1);
  static constexpr Duration eager_probing = std::chrono::milliseconds(10);
  static constexpr Duration max_probe_interval = std::chrono::milliseconds(50);
  static constexpr int probed_workers_per_millisecond = 5;

 private:
  // A worker's part in its slot: the one serving it, the new one of a reload or recycle that
  // takes over once ready, or an old one being stopped.
  enum class Role { primary, replacement, retiring };

  // Why clusterd stops a worker. Its exit restarts the slot as a failure for not_ready and
  // watchdog; for the others it is the end that was asked for.
  enum class StopReason { retire, shutdown, not_ready, watchdog };
  struct Stopping {
    StopReason reason = StopReason::retire;
    std::optional<TimePoint> kill_at;  // SIGKILL then, unless it exited; nullopt once sent
    std::optional<TimePoint> dump_at;  // stop.dump_signal then (the stop ladder); nullopt once sent
    bool killed = false;               // clusterd sent SIGKILL
  };

  struct Worker {
    WorkerId id;
    int pid = 0;
    Role role = Role::primary;
    WorkerState state = WorkerState::starting;
    TimePoint started_at{};
    std::optional<TimePoint> ready_deadline;   // not ready by then: a failed start
    std::optional<TimePoint> execed_at;
    std::optional<TimePoint> ready_after;      // ready then, if still up (a duration mode; auto's min_uptime)
    std::optional<TimePoint> probe_at;         // ready.mode = auto: look for a wait on a socket then
    Duration probe_interval{0};                // and the one after that, growing
    bool said_ready = false;                   // auto: it sent READY=1 (not enough while it has sockets)
    bool blind = false;                        // auto: its waits on its sockets cannot be seen
    std::optional<TimePoint> watchdog_deadline;
    std::optional<TimePoint> recycle_at;       // recycle.max_lifetime reached
    std::optional<std::string> notify_status;
    std::optional<Stopping> stopping;          // clusterd asked it to stop
  };
  struct Slot {
    Slot(const RestartConfig& restart, std::uint64_t generation_of_slot)
        : backoff(restart), generation(generation_of_slot) {}
    SlotState state = SlotState::running;
    SlotBackoff backoff;
    std::uint64_t generation;  // of its primary; a restart spawns this generation
    int restarts = 0;
    std::optional<WorkerExit> last_exit;
    std::optional<TimePoint> restart_at;        // in backoff: when to spawn again
    std::optional<std::string> recycle_reason;  // due for a recycle
    std::optional<TimePoint> recycle_retry_at;  // a failed recycle waits until then
  };
  // A reload under way. Its progress is derived, not stored: a slot below `target` is done when
  // its primary runs `generation`, under way while it has a replacement of `generation`.
  struct Reload {
    std::uint64_t generation = 0;
    int target = 0;
    std::vector<RequestId> requests;
    TimePoint started_at{};
  };
  struct QueuedReload {
    std::uint64_t generation = 0;
    std::optional<int> workers;
    std::vector<RequestId> requests;
  };

  // What a deadline is for; one list of them (supervisor_deadlines.cpp) feeds both
  // next_deadline() and act_on_due(), so what is counted is what is acted on.
  enum class Due {
    restart,
    recycle_retry,
    rss_sample,
    spawn_more,
    dump,
    kill,
    probe,
    ready_after,
    ready_timeout,
    watchdog,
    lifetime
  };
  struct Deadline {
    TimePoint at;
    Due what;
    int slot = 0;                // restart, recycle_retry
    std::uint64_t instance = 0;  // the worker's, for the worker deadlines
  };

  // supervisor.cpp: events and reconciliation.
  void on_event(const Start&, TimePoint now);
  void on_event(const Spawned& event, TimePoint now);
  void on_event(const SpawnFailed& event, TimePoint now);
  void on_event(const Execed& event, TimePoint now);
  void on_event(const Notified& event, TimePoint now);
  void on_event(const Exited& event, TimePoint now);
  void on_event(const Probed& event, TimePoint now);
  void on_event(const RssSampled& event, TimePoint now);
  void on_event(const StopRequested& event, TimePoint now);
  void on_event(const ReloadRequested& event, TimePoint now);
  void on_event(const ScaleRequested& event, TimePoint now);
  void on_event(const ScaleBy& event, TimePoint now);
  void on_event(const RestartRequested& event, TimePoint now);
  void on_event(const Tick&, TimePoint now);

  void reconcile(TimePoint now);
  void replenish_slots(TimePoint now);
  void check_exit();
  void reconcile_shutdown(TimePoint now);
  void report_readiness();
  void scale_to(int workers, const std::string& by);
  // supervisor_deadlines.cpp: the one list of deadlines, and acting on those that are due.
  std::vector<Deadline> deadlines() const;
  std::optional<TimePoint> nearest_deadline() const;
  void act_on_due(TimePoint now);
  void act_on(const Deadline& deadline, TimePoint now);
  // supervisor_worker.cpp: one worker's life.
  WorkerId spawn(int slot, std::uint64_t generation, Role role, TimePoint now);
  // `sign`: what showed it ready, for the log ("exec", "READY=1", "epoll", "min_uptime").
  void mark_ready(Worker& worker, TimePoint now, const std::string& sign);
  void probe(Worker& worker, TimePoint now);
  void ready_message_in_auto_mode(Worker& worker, TimePoint now);
  void stop_worker(Worker& worker, StopReason reason, TimePoint now);
  void kill_worker(Worker& worker, StopReason reason);
  void not_ready_in_time(Worker& worker, TimePoint now);
  void start_failed(const Worker& worker, const StartFailure& failure, bool lasting, TimePoint now);
  void worker_ended(const Worker& worker, const WorkerExit& exit, TimePoint now);
  void count_exit(const WorkerExit& exit);
  // `fields`: the worker's "slot= gen= pid= status= uptime=" part of the log lines.
  void primary_ended(const Worker& worker, const WorkerExit& exit, Duration uptime, const std::string& fields,
                     TimePoint now);
  void retry_slowly(Slot& slot, const Config& config, const std::string& message, TimePoint now);

  // supervisor_replace.cpp: rolling reload, recycling and scaling.
  void start_reload(std::uint64_t generation, std::optional<int> workers, std::vector<RequestId> requests,
                    TimePoint now);
  void advance_reload(TimePoint now);
  void finish_reload(TimePoint now);
  void abandon_reload(const std::string& reason, TimePoint now);
  void start_next_queued_reload(TimePoint now);
  void promote(Worker& replacement, TimePoint now);
  void replacement_failed(const Worker& worker, const std::string& reason, TimePoint now);
  void recycle_one(TimePoint now);
  void scale_down(TimePoint now);
  void arm_rss_sample(TimePoint now);
  void take_rss_sample(TimePoint now);
  void resize_slots(int count);

  Worker* find_worker(const WorkerId& id);
  Worker* find_instance(std::uint64_t instance);
  std::optional<Worker> take_worker(const WorkerId& id);  // removed from the live workers
  Worker* worker_in(int slot, Role role);
  // served[slot]: the slot has a primary or a replacement worker (one starting or serving it).
  // One pass, for loops over every slot.
  std::vector<bool> slots_served() const;
  Slot& slot_of(const WorkerId& id) { return slots_.at(static_cast<std::size_t>(id.slot)); }
  int ready_primaries() const;
  void log(LogSeverity severity, std::string message);

  std::map<std::uint64_t, std::shared_ptr<const Config>> configs_;  // by generation
  std::function<double()> uniform01_;
  int wanted_ = 0;
  std::uint64_t generation_ = 1;       // the last finished generation
  Counters counters_;
  std::uint64_t next_instance_ = 1;
  bool started_ = false;
  bool stopping_ = false;
  bool exiting_ = false;
  bool start_failure_reported_ = false;  // a lasting start failure was logged as an error
  bool blind_reported_ = false;          // auto readiness could not see a worker's waits: said once
  bool ready_reported_ = false;  // READY=1 sent to the service manager
  std::string last_status_;      // the last STATUS= sent
  std::optional<Reload> reload_;
  std::optional<QueuedReload> queued_reload_;
  std::optional<TimePoint> next_rss_sample_;
  std::optional<TimePoint> spawn_more_at_;  // slots left unspawned by the budget start then
  std::vector<Slot> slots_;
  std::vector<Worker> workers_;
  std::vector<Action> actions_;  // filled while handling one event
  std::optional<TimePoint> next_deadline_;  // nearest_deadline() after the last handle()
  bool activity_changed_ = true;            // take_activity_change()
};

// "slot=0 gen=1 pid=1234": how every log line names a worker.
std::string worker_fields(const WorkerId& id, int pid);

}  // namespace clusterd
