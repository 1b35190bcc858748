// The Supervisor state machine, driven by scripted events with explicit time and fixed jitter.
#include "supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Config test_config(int restart_ms = 100, RestartPolicyKind policy = RestartPolicyKind::always) {
  Config config;
  config.name = "test";
  config.command = {"/bin/true"};
  config.restart.policy = policy;
  config.restart.delay = Duration{restart_ms};
  config.restart.max_delay = 1s;
  config.stop.grace = 5s;
  return config;
}

std::function<double()> fixed_jitter(double value) {
  return [value] { return value; };
}

// Actions without the log lines, as short strings: "spawn 0/1", "signal 0 15", "exit 0".
std::vector<std::string> effects(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const Action& action : actions) {
    if (const auto* spawn = std::get_if<Spawn>(&action)) {
      out.push_back("spawn " + std::to_string(spawn->id.slot) + "/" + std::to_string(spawn->id.generation));
    } else if (const auto* send = std::get_if<SendSignal>(&action)) {
      out.push_back("signal " + std::to_string(send->id.slot) + " " + std::to_string(send->signal));
    } else if (const auto* exit = std::get_if<ExitDaemon>(&action)) {
      out.push_back("exit " + std::to_string(exit->code));
    }
  }
  return out;
}

std::string logs(const std::vector<Action>& actions) {
  std::string out;
  for (const Action& action : actions) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      out += entry->message + "\n";
    }
  }
  return out;
}

// Drives a Supervisor like the daemon does: answers every Spawn with Spawned and Execed, and
// remembers the ids so a test can make a slot's worker exit.
class Harness {
 public:
  explicit Harness(const Config& config, int workers = 1, double jitter = 1.0)
      : supervisor_(config, workers, fixed_jitter(jitter)) {}

  std::vector<Action> send(const Event& event) {
    std::vector<Action> actions = supervisor_.handle(event, now);
    answer_spawns(actions);
    return actions;
  }
  std::vector<Action> exit_slot(int slot, WorkerExit exit) {
    return send(Exited{current_.at(static_cast<std::size_t>(slot)), std::move(exit)});
  }
  Supervisor& supervisor() { return supervisor_; }
  int spawns() const { return spawns_; }

  TimePoint now{};

 private:
  void answer_spawns(std::vector<Action>& actions) {
    for (std::size_t index = 0; index < actions.size(); ++index) {
      if (const auto* spawn = std::get_if<Spawn>(&actions[index])) {
        const WorkerId id = spawn->id;
        ++spawns_;
        if (current_.size() <= static_cast<std::size_t>(id.slot)) {
          current_.resize(static_cast<std::size_t>(id.slot) + 1);
        }
        current_[static_cast<std::size_t>(id.slot)] = id;
        for (const Event& followup : {Event{Spawned{id, 1000 + spawns_}}, Event{Execed{id}}}) {
          auto more = supervisor_.handle(followup, now);
          actions.insert(actions.end(), more.begin(), more.end());
        }
      }
    }
  }

  Supervisor supervisor_;
  std::vector<WorkerId> current_;
  int spawns_ = 0;
};

TEST(Supervisor, StartSpawnsOneWorkerPerSlotInGenerationOne) {
  Harness harness(test_config(), 3);
  EXPECT_THAT(effects(harness.send(Start{})), ElementsAre("spawn 0/1", "spawn 1/1", "spawn 2/1"));
  EXPECT_FALSE(harness.supervisor().next_deadline());
}

TEST(Supervisor, ExecedWorkerIsReadyAndLogged) {
  Harness harness(test_config());
  const auto actions = harness.send(Start{});
  EXPECT_THAT(logs(actions), HasSubstr("worker ready slot=0 gen=1 pid=1001"));
  const StatusSnapshot status = harness.supervisor().status(harness.now);
  ASSERT_EQ(status.slots.size(), 1u);
  ASSERT_EQ(status.slots[0].workers.size(), 1u);
  EXPECT_EQ(status.slots[0].workers[0].state, WorkerState::ready);
  EXPECT_EQ(status.slots[0].workers[0].pid, 1001);
}

TEST(Supervisor, SecondCrashOfAStreakWaitsItsBackoffNotBefore) {
  Harness harness(test_config(100));
  harness.send(Start{});
  harness.now += 2s;
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{1})), ElementsAre("spawn 0/1"));  // at once
  harness.now += 1s;
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{1})), IsEmpty());  // waits
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 100ms);
  const TimePoint crashed = harness.now;
  harness.now = crashed + 99ms;
  EXPECT_THAT(effects(harness.send(Tick{})), IsEmpty());
  harness.now = crashed + 100ms;
  EXPECT_THAT(effects(harness.send(Tick{})), ElementsAre("spawn 0/1"));
}

TEST(Supervisor, ExitLogLineCarriesStatusUptimeAndNextRestart) {
  Harness harness(test_config(100));
  harness.send(Start{});
  harness.now += 400ms;
  harness.exit_slot(0, ExitCode{1});
  harness.now += 400ms;
  EXPECT_THAT(logs(harness.exit_slot(0, KilledBySignal{SIGSEGV})),
              HasSubstr("worker exited slot=0 gen=1 pid=1002 status=signal:SEGV uptime=0.4s next_restart_in=0.1s"));
}

TEST(Supervisor, SigkillNotSentByClusterdIsReportedAsPossiblyOutOfMemory) {
  Harness harness(test_config());
  harness.send(Start{});
  EXPECT_THAT(logs(harness.exit_slot(0, KilledBySignal{SIGKILL})), HasSubstr("possibly out of memory"));
}

TEST(Supervisor, StatusShowsBackoffAndRestartCount) {
  Harness harness(test_config(100));
  harness.send(Start{});
  harness.exit_slot(0, ExitCode{1});
  harness.exit_slot(0, ExitCode{1});
  StatusSnapshot status = harness.supervisor().status(harness.now + 40ms);
  EXPECT_EQ(status.slots[0].state, SlotState::backoff);
  EXPECT_EQ(status.slots[0].restarts, 1);
  EXPECT_EQ(status.slots[0].next_restart_in, 60ms);
  EXPECT_EQ(status.slots[0].last_exit, WorkerExit{ExitCode{1}});
  EXPECT_THAT(status.slots[0].workers, IsEmpty());
}

TEST(Supervisor, OnFailurePolicyLeavesACleanExitAlone) {
  Harness harness(test_config(100, RestartPolicyKind::on_failure), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{0})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{3})), ElementsAre("spawn 1/1"));
}

TEST(Supervisor, NeverPolicyExitsZeroWhenEveryWorkerExitedCleanly) {
  Harness harness(test_config(100, RestartPolicyKind::never), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{0})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{0})), ElementsAre("exit 0"));
}

TEST(Supervisor, NeverPolicyExitsOneWhenAnyLastExitFailed) {
  Harness harness(test_config(100, RestartPolicyKind::never), 2);
  harness.send(Start{});
  harness.exit_slot(0, ExitCode{0});
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGSEGV})), ElementsAre("exit 1"));
}

TEST(Supervisor, BurstLimitFailsASlotAndAllSlotsFailedExitsOne) {
  Config config = test_config(100);
  config.restart.burst = 1;
  Harness harness(config, 1);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{1})), ElementsAre("spawn 0/1"));
  const auto actions = harness.exit_slot(0, ExitCode{1});
  EXPECT_THAT(effects(actions), ElementsAre("exit 1"));
  EXPECT_THAT(logs(actions), HasSubstr("worker slot failed for good slot=0"));
}

TEST(Supervisor, ExecFailureIsReportedOnceAndRetriedEveryMaxDelay) {
  Harness harness(test_config(100), 2);
  harness.send(Start{});
  const auto first = harness.exit_slot(0, ExecFailure{"exec", ENOENT});
  EXPECT_THAT(effects(first), IsEmpty());
  EXPECT_THAT(logs(first), HasSubstr("worker program cannot be executed slot=0"));
  EXPECT_THAT(logs(first), HasSubstr("retry_every=1s"));
  const auto second = harness.exit_slot(1, ExecFailure{"exec", ENOENT});
  // The second report is debug-only, so an operator sees the problem once.
  for (const Action& action : second) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      EXPECT_EQ(entry->severity, LogSeverity::debug) << entry->message;
    }
  }
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 1s);
  harness.now += 999ms;
  EXPECT_THAT(effects(harness.send(Tick{})), IsEmpty());
  harness.now += 1ms;
  EXPECT_THAT(effects(harness.send(Tick{})), ElementsAre("spawn 0/1", "spawn 1/1"));
}

TEST(Supervisor, GracefulStopSignalsEveryWorkerThenKillsAfterGrace) {
  Harness harness(test_config(), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0 15", "signal 1 15"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 5s);
  harness.exit_slot(0, KilledBySignal{SIGTERM});
  harness.now += 5s;
  EXPECT_THAT(effects(harness.send(Tick{})), ElementsAre("signal 1 9"));
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGKILL})), ElementsAre("exit 0"));
}

TEST(Supervisor, WorkersStoppedByClusterdAreNotRestarted) {
  Harness harness(test_config(), 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  const auto actions = harness.exit_slot(0, ExitCode{0});
  EXPECT_THAT(effects(actions), ElementsAre("exit 0"));
  EXPECT_THAT(logs(actions), HasSubstr("worker stopped slot=0"));
  EXPECT_EQ(harness.spawns(), 1);
}

TEST(Supervisor, SecondStopRequestKillsAtOnce) {
  Harness harness(test_config(), 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0 9"));
}

TEST(Supervisor, QuickStopKillsEveryWorkerAndExitsZero) {
  Harness harness(test_config(), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.send(StopRequested{true})), ElementsAre("signal 0 9", "signal 1 9"));
  harness.exit_slot(0, KilledBySignal{SIGKILL});
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGKILL})), ElementsAre("exit 0"));
}

TEST(Supervisor, StopWhileASlotIsInBackoffDoesNotRestartIt) {
  Harness harness(test_config(100), 2);
  harness.send(Start{});
  harness.exit_slot(0, ExitCode{1});
  harness.exit_slot(0, ExitCode{1});  // slot 0 now backs off, with no worker
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 1 15"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 5s);  // only the grace period
  harness.now += 1s;
  EXPECT_THAT(effects(harness.send(Tick{})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{0})), ElementsAre("exit 0"));
}

TEST(Supervisor, StopWithNoWorkerRunningExitsAtOnce) {
  Harness harness(test_config(100), 1);
  harness.send(Start{});
  harness.exit_slot(0, ExecFailure{"exec", EACCES});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("exit 0"));
  EXPECT_FALSE(harness.supervisor().next_deadline());
}

TEST(Supervisor, ForkFailureBacksOffLikeACrash) {
  Config config = test_config(100);
  Supervisor supervisor(config, 1, fixed_jitter(1.0));
  const TimePoint now{};
  const auto start = supervisor.handle(Start{}, now);
  const WorkerId id = std::get<Spawn>(start.front()).id;
  EXPECT_THAT(effects(supervisor.handle(SpawnFailed{id, {"fork", EAGAIN}}, now)), ElementsAre("spawn 0/1"));
}

TEST(Supervisor, ReplacementKeepsTheSlotAndGetsANewInstance) {
  Supervisor supervisor(test_config(), 1, fixed_jitter(1.0));
  const TimePoint now{};
  const auto start = supervisor.handle(Start{}, now);
  const WorkerId first = std::get<Spawn>(start.front()).id;
  supervisor.handle(Spawned{first, 10}, now);
  const auto restart = supervisor.handle(Exited{first, KilledBySignal{SIGKILL}}, now + 1s);
  const auto* spawn = std::get_if<Spawn>(&restart.back());
  ASSERT_NE(spawn, nullptr);
  EXPECT_EQ(spawn->id.slot, 0);
  EXPECT_NE(spawn->id.instance, first.instance);
}

}  // namespace
}  // namespace clusterd
