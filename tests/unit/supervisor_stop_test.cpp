// The Supervisor stopping: graceful stop with grace then SIGKILL, quick stop, exit codes.
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

TEST(Stop, GracefulStopSignalsEveryWorkerThenKillsAfterGrace) {
  Driver harness(exec_config(), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0/1 15", "signal 1/1 15"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 5s);
  harness.exit_slot(0, KilledBySignal{SIGTERM});
  harness.now += 5s;
  EXPECT_THAT(effects(harness.send(Tick{})), ElementsAre("signal 1/1 9"));
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGKILL})), ElementsAre("exit 0"));
}

TEST(Stop, TheStopLadderAsksForADumpAheadOfTheKill) {
  Config config = exec_config();  // stop.grace 5s
  config.stop.dump_signal = SIGABRT;
  config.stop.dump_before = 2s;
  Driver harness(config, 1);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0/1 15"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 3s);
  harness.now += 3s;
  const auto dump = harness.send(Tick{});
  EXPECT_THAT(effects(dump), ElementsAre("signal 0/1 6"));
  EXPECT_THAT(logs(dump), HasSubstr("worker did not stop; asking for a stack dump slot=0 gen=1 pid="));
  EXPECT_THAT(logs(dump), HasSubstr(" signal=ABRT kill_in=2s"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 2s);
  harness.now += 2s;
  EXPECT_THAT(effects(harness.send(Tick{})), ElementsAre("signal 0/1 9"));
}

TEST(Stop, AWorkerThatStopsInTimeGetsNoDump) {
  Config config = exec_config();
  config.stop.dump_signal = SIGQUIT;
  Driver harness(config, 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 2500ms);  // half the 5s grace
  harness.now += 1s;
  EXPECT_THAT(effects(harness.exit_slot(0, KilledBySignal{SIGTERM})), ElementsAre("exit 0"));
}

TEST(Stop, AQuickStopKillsWithoutADump) {
  Config config = exec_config();
  config.stop.dump_signal = SIGABRT;
  Driver harness(config, 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0/1 9"));
  harness.now += 10s;
  EXPECT_THAT(effects(harness.send(Tick{})), IsEmpty());
}

TEST(StopConfig, TheDumpLeadIsFiveSecondsOrHalfTheGrace) {
  StopConfig stop;
  EXPECT_EQ(stop.dump_lead(), 5s);  // grace 30s
  stop.grace = 4s;
  EXPECT_EQ(stop.dump_lead(), 2s);
  stop.dump_before = 1s;
  EXPECT_EQ(stop.dump_lead(), 1s);
}

TEST(Stop, WorkersStoppedByClusterdAreNotRestarted) {
  Driver harness(exec_config(), 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  const auto actions = harness.exit_slot(0, ExitCode{0});
  EXPECT_THAT(effects(actions), ElementsAre("exit 0"));
  EXPECT_THAT(logs(actions), HasSubstr("worker stopped slot=0"));
  EXPECT_EQ(harness.spawns(), 1);
}

TEST(Stop, SecondStopRequestKillsAtOnce) {
  Driver harness(exec_config(), 1);
  harness.send(Start{});
  harness.send(StopRequested{});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 0/1 9"));
}

TEST(Stop, QuickStopKillsEveryWorkerAndExitsZero) {
  Driver harness(exec_config(), 2);
  harness.send(Start{});
  EXPECT_THAT(effects(harness.send(StopRequested{true})), ElementsAre("signal 0/1 9", "signal 1/1 9"));
  harness.exit_slot(0, KilledBySignal{SIGKILL});
  EXPECT_THAT(effects(harness.exit_slot(1, KilledBySignal{SIGKILL})), ElementsAre("exit 0"));
}

TEST(Stop, StopWhileASlotIsInBackoffDoesNotRestartIt) {
  Driver harness(exec_config(100), 2);
  harness.send(Start{});
  harness.exit_slot(0, ExitCode{1});
  harness.exit_slot(0, ExitCode{1});  // slot 0 now backs off, with no worker
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("signal 1/1 15"));
  EXPECT_EQ(harness.supervisor().next_deadline(), harness.now + 5s);  // only the grace period
  harness.now += 1s;
  EXPECT_THAT(effects(harness.send(Tick{})), IsEmpty());
  EXPECT_THAT(effects(harness.exit_slot(1, ExitCode{0})), ElementsAre("exit 0"));
}

TEST(Stop, StatusSaysWhenEachStoppingWorkerWillBeKilled) {
  Driver harness(exec_config(), 2);
  harness.send(Start{});
  const auto kill_in = [&](int slot) {
    return harness.supervisor().status(harness.now).slots.at(static_cast<std::size_t>(slot)).workers.at(0).kill_in;
  };
  EXPECT_EQ(kill_in(0), std::nullopt);  // not asked to stop
  harness.send(StopRequested{});
  harness.now += 1200ms;
  EXPECT_EQ(kill_in(0), 3800ms);  // the 5s grace, less the time since the stop signal
  EXPECT_EQ(kill_in(1), 3800ms);
  harness.send(StopRequested{});  // a second stop: SIGKILL now, so none is pending any more
  EXPECT_EQ(kill_in(0), std::nullopt);
  EXPECT_EQ(kill_in(1), std::nullopt);
}

TEST(Stop, StopWithNoWorkerRunningExitsAtOnce) {
  Driver harness(exec_config(100), 1);
  harness.send(Start{});
  harness.exit_slot(0, StartFailure{"exec", EACCES});
  EXPECT_THAT(effects(harness.send(StopRequested{})), ElementsAre("exit 0"));
  EXPECT_FALSE(harness.supervisor().next_deadline());
}

}  // namespace
}  // namespace clusterd
