// The Supervisor starting workers and restarting them as they end: backoff, policies, burst
// limits, start failures.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "supervisor.h"
#include "supervisor_driver.h"

namespace clusterd {
namespace {

using namespace testing_support;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(Restart, StartSpawnsOneWorkerPerSlotInGenerationOne) {
  Driver harness(exec_config(), 3);
  EXPECT_THAT(effects(harness.send(Start{})), ElementsAre("spawn 0/1", "spawn 1/1", "spawn 2/1"));
  EXPECT_FALSE(harness.supervisor().next_deadline());
}

TEST(Restart, ExecedWorkerIsReadyAndLogged) {
  Driver harness(exec_config());
  const auto actions = harness.send(Start{});
  EXPECT_THAT(logs(actions), HasSubstr("worker ready slot=0 gen=1 pid=1001"));
  const StatusSnapshot status = harness.supervisor().status(harness.now);
  ASSERT_EQ(status.slots.size(), 1u);
  ASSERT_EQ(status.slots[0].workers.size(), 1u);
  EXPECT_EQ(status.slots[0].workers[0].state, WorkerState::ready);
  EXPECT_EQ(status.slots[0].workers[0].pid, 1001);
}

TEST(Restart, SecondCrashOfAStreakWaitsItsBackoffNotBefore) {
  Driver harness(exec_config(100));
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

TEST(Restart, ExitLogLineCarriesStatusUptimeAndNextRestart) {
  Driver harness(exec_config(100));
  harness.send(Start{});
  harness.now += 400ms;
  harness.exit_slot(0, ExitCode{1});
  harness.now += 400ms;
  EXPECT_THAT(logs(harness.exit_slot(0, KilledBySignal{SIGSEGV})),
              HasSubstr("worker exited slot=0 gen=1 pid=1002 status=signal:SEGV uptime=0.4s next_restart_in=0.1s"));
}

TEST(Restart, SigkillNotSentByClusterdIsReportedAsPossiblyOutOfMemory) {
  Driver harness(exec_config());
  harness.send(Start{});
  EXPECT_THAT(logs(harness.exit_slot(0, KilledBySignal{SIGKILL})), HasSubstr("possibly out of memory"));
}

TEST(Restart, StatusShowsBackoffAndRestartCount) {
  Driver harness(exec_config(100));
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

TEST(Restart, OnFailurePolicyLeavesACleanExitAlone) {
  Driver harness(exec_config(100, RestartPolicyKind::on_failure), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{0})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{3})), ElementsAre("spawn 1/1"));
}

TEST(Restart, NeverPolicyExitsZeroWhenEveryWorkerExitedCleanly) {
  Driver harness(exec_config(100, RestartPolicyKind::never), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{0})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{0})), ElementsAre("exit 0"));
}

TEST(Restart, NeverPolicyExitsOneWhenAnyLastExitFailed) {
  Driver harness(exec_config(100, RestartPolicyKind::never), 2);
  harness.send(Start{});
  harness.exit_slot(0, ExitCode{0});
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGSEGV})), ElementsAre("exit 1"));
}

TEST(Restart, BurstLimitFailsASlotAndAllSlotsFailedExitsOne) {
  Config config = exec_config(100);
  config.restart.burst = 1;
  Driver harness(config, 1);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.exit_slot(0, ExitCode{1})), ElementsAre("spawn 0/1"));
  const auto actions = harness.exit_slot(0, ExitCode{1});
  EXPECT_THAT(effects(actions), ElementsAre("exit 1"));
  EXPECT_THAT(logs(actions), HasSubstr("worker slot failed for good slot=0"));
}

TEST(Restart, ExecFailureIsReportedOnceAndRetriedEveryMaxDelay) {
  Driver harness(exec_config(100), 2);
  harness.send(Start{});
  const auto first = harness.exit_slot(0, StartFailure{"exec", ENOENT});
  EXPECT_THAT(effects(first), IsEmpty());
  EXPECT_THAT(logs(first), HasSubstr("worker program cannot be executed slot=0"));
  EXPECT_THAT(logs(first), HasSubstr("retry_every=1s"));
  const auto second = harness.exit_slot(1, StartFailure{"exec", ENOENT});
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

TEST(Restart, ForkFailureBacksOffLikeACrash) {
  Config config = exec_config(100);
  Supervisor supervisor(config, 1, fixed_jitter(1.0));
  const TimePoint now{};
  const auto start = supervisor.handle(Start{}, now);
  const WorkerId id = std::get<Spawn>(start.front()).id;
  EXPECT_THAT(effects(supervisor.handle(SpawnFailed{id, {"fork", EAGAIN}}, now)), ElementsAre("spawn 0/1"));
}

TEST(Restart, ReplacementKeepsTheSlotAndGetsANewInstance) {
  Supervisor supervisor(exec_config(), 1, fixed_jitter(1.0));
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

TEST(Restart, LastingStartFailureIsReportedOnceAndRetriedEveryMaxDelay) {
  Driver driver(exec_config(), 2);  // max_delay 1 s
  const WorkerId first{0, 1, 1};
  const WorkerId second{1, 1, 2};
  Supervisor& supervisor = driver.supervisor();
  supervisor.handle(Start{}, driver.now);
  const StartFailure failure{"notify socket directory", 0, "mkdtemp /run/x/test.notify.XXXXXX: Permission denied"};
  const auto first_failed = supervisor.handle(SpawnFailed{first, failure, true}, driver.now);
  EXPECT_THAT(logs(first_failed), HasSubstr("cannot start worker slot=0 gen=1 step=\"notify socket directory\""));
  EXPECT_THAT(logs(first_failed), HasSubstr("Permission denied"));
  EXPECT_THAT(logs(first_failed), Not(HasSubstr("pid=0")));  // no made-up exit of a process that never ran
  EXPECT_THAT(effects(first_failed), IsEmpty());
  const auto second_failed = supervisor.handle(SpawnFailed{second, failure, true}, driver.now);
  for (const Action& action : second_failed) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      EXPECT_EQ(entry->severity, LogSeverity::debug) << "reported twice: " << entry->message;
    }
  }
  EXPECT_EQ(supervisor.next_deadline(), driver.now + 1s);
  driver.now += 1s;
  EXPECT_THAT(effects(supervisor.handle(Tick{}, driver.now)), ElementsAre("spawn 0/1", "spawn 1/1"));
}

}  // namespace
}  // namespace clusterd
