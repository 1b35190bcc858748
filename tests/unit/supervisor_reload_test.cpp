// The Supervisor's readiness, rolling reload, recycling, watchdog and scaling, driven by
// scripted events with explicit time. Workers here become ready only when a test says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "supervisor.h"
#include "supervisor_driver.h"

namespace clusterd {
namespace {

using namespace testing_support;

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(Readiness, NotifyModeWorkerIsReadyOnlyAfterReadyMessage) {
  Driver driver(notify_config(), 1);
  driver.send(Start{});
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 0);
  driver.ready(driver.spawned[0]);
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 1);
}

TEST(Readiness, ServiceManagerHearsReadyOnceEveryWorkerIsReady) {
  Driver driver(notify_config(), 2);
  EXPECT_THAT(systemd_messages(driver.send(Start{})), ElementsAre("STATUS=0/2 workers ready"));
  EXPECT_THAT(systemd_messages(driver.ready(driver.spawned[0])), ElementsAre("STATUS=1/2 workers ready"));
  EXPECT_THAT(systemd_messages(driver.ready(driver.spawned[1])), ElementsAre("READY=1\nSTATUS=2/2 workers ready"));
}

TEST(Readiness, WorkerNotReadyInTimeIsStoppedAndRestartedAsAFailure) {
  Driver driver(notify_config(), 1);
  driver.send(Start{});
  driver.now += 10s;
  const auto actions = driver.send(Tick{});
  EXPECT_THAT(effects(actions), ElementsAre("signal 0/1 15"));
  EXPECT_THAT(logs(actions), HasSubstr("worker not ready in time slot=0 gen=1 not ready within 10s"));
  EXPECT_THAT(effects(driver.exit(driver.spawned[0])), ElementsAre("spawn 0/1"));  // first of a streak
}

TEST(Readiness, ExtendTimeoutPushesTheReadyDeadline) {
  Driver driver(notify_config(), 1);
  driver.send(Start{});
  NotifyMessage extend;
  extend.extend_timeout = std::chrono::microseconds(20'000'000);
  driver.now += 9s;
  driver.send(Notified{driver.spawned[0], extend});
  driver.now += 2s;
  EXPECT_THAT(effects(driver.send(Tick{})), IsEmpty());
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 29s);
}

TEST(Readiness, ExtendTimeoutNeverShortensTheReadyDeadline) {
  Driver driver(notify_config(), 1);  // ready.timeout = 10s
  driver.send(Start{});
  NotifyMessage extend;
  extend.extend_timeout = std::chrono::microseconds(1'000'000);
  driver.now += 1s;
  driver.send(Notified{driver.spawned[0], extend});
  driver.now += 2s;  // past the 1 s asked for, well before the 10 s given
  EXPECT_THAT(effects(driver.send(Tick{})), IsEmpty());
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 10s);
}

TEST(Readiness, MinimumUptimeModeIsReadyAfterThatUptime) {
  Config config = notify_config();
  config.ready.mode = ReadyMode::uptime;
  config.ready.min_uptime = 2s;
  Driver driver(config, 1);
  driver.send(Start{});
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 2s);
  driver.now += 2s;
  driver.send(Tick{});
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 1);
}

TEST(Reload, EachOldWorkerIsStoppedOnlyAfterItsReplacementIsReady) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  const WorkerId old0 = driver.spawned[0];
  const WorkerId old1 = driver.spawned[1];

  auto started = driver.reload(2);
  EXPECT_THAT(effects(started), ElementsAre("spawn 0/2"));
  EXPECT_THAT(systemd_messages(started), ElementsAre("RELOADING=1", "STATUS=2/2 workers ready, reloading to generation 2"));
  const WorkerId new0 = driver.spawned[2];

  EXPECT_THAT(effects(driver.ready(new0)), ElementsAre("signal 0/1 15", "spawn 1/2"));
  const WorkerId new1 = driver.spawned[3];
  EXPECT_THAT(effects(driver.exit(old0)), IsEmpty());
  EXPECT_THAT(effects(driver.ready(new1)), ElementsAre("signal 1/1 15"));
  const auto finished = driver.exit(old1);
  EXPECT_THAT(effects(finished), ElementsAre("reload ok 2"));
  EXPECT_THAT(systemd_messages(finished), ElementsAre("READY=1", "STATUS=2/2 workers ready"));
  EXPECT_EQ(driver.supervisor().generation(), 2u);
}

TEST(Reload, BatchReplacesThatManySlotsAtOnce) {
  Config config = notify_config();
  config.reload.batch = 2;
  Driver driver(config, 3);
  driver.start_ready();
  EXPECT_THAT(effects(driver.reload_to(config, 3)), ElementsAre("spawn 0/2", "spawn 1/2"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[3])), ElementsAre("signal 0/1 15"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[4])), ElementsAre("signal 1/1 15", "spawn 2/2"));
}

TEST(Reload, ReplacementNotReadyInTimeAbandonsTheReloadAndOldWorkersKeepServing) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  driver.reload(2);
  driver.now += 10s;
  const auto abandoned = driver.send(Tick{});
  EXPECT_THAT(effects(abandoned),
              ElementsAre("signal 0/2 15", "reload failed 2: reload abandoned: slot=0 gen=2 not ready within 10s"));
  EXPECT_THAT(systemd_messages(abandoned), ElementsAre("READY=1", "STATUS=2/2 workers ready"));
  EXPECT_THAT(effects(driver.exit(driver.spawned[2])), IsEmpty());  // no restart of the abandoned one
  EXPECT_EQ(driver.supervisor().generation(), 1u);
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 2);
}

TEST(Reload, ReplacementThatExitsAbandonsTheReload) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(1);
  EXPECT_THAT(effects(driver.exit(driver.spawned[1], ExitCode{3})),
              ElementsAre("reload failed 2: reload abandoned: slot=0 gen=2 exited status=exit:3 before it was ready"));
}

TEST(Reload, AbandonedGenerationNumberIsNotReused) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(1);
  driver.exit(driver.spawned[1], ExitCode{3});
  EXPECT_THAT(effects(driver.reload(1)), ElementsAre("spawn 0/3"));
}

TEST(Reload, ReloadDuringAReloadIsQueuedAndRunsAfterIt) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(1, 1);
  EXPECT_THAT(effects(driver.reload(1, 2)), IsEmpty());
  driver.ready(driver.spawned[1]);
  const auto actions = driver.exit(driver.spawned[0]);
  EXPECT_THAT(effects(actions), ElementsAre("reload ok 2", "spawn 0/3"));
}

TEST(Reload, ScaleDuringAReloadLastsWhenTheReloadIsAbandoned) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  driver.reload(std::nullopt);
  driver.send(ScaleRequested{3});
  EXPECT_EQ(driver.supervisor().workers_wanted(), 3);
  driver.exit(driver.spawned[2], ExitCode{1});  // the first replacement fails: abandoned
  EXPECT_EQ(driver.supervisor().workers_wanted(), 3);
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_wanted, 3);
}

TEST(Reload, SecondRequestKeepsTheWorkerCountOfTheQueuedReload) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(std::nullopt, 1);  // under way
  driver.reload(3, 2);             // queued: the file asks for 3 workers
  driver.reload(std::nullopt, 3);  // joins it; its file leaves the count alone
  driver.ready(driver.spawned[1]);
  const auto finished = driver.exit(driver.spawned[0]);
  EXPECT_THAT(effects(finished), ElementsAre("reload ok 2", "spawn 0/4"));
  EXPECT_EQ(driver.supervisor().workers_wanted(), 3);
}

TEST(Reload, ScaleWhileAReloadIsQueuedIsNotUndoneByIt) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(std::nullopt, 1);
  driver.reload(std::nullopt, 2);  // queued, count unchanged
  driver.send(ScaleBy{+1});
  driver.ready(driver.spawned[1]);
  driver.exit(driver.spawned[0]);  // first reload done, the queued one starts
  EXPECT_EQ(driver.supervisor().workers_wanted(), 2);
}

TEST(Reload, MoreWorkersThroughAReloadAddsSlots) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(2);
  EXPECT_THAT(effects(driver.ready(driver.spawned[1])), ElementsAre("signal 0/1 15", "spawn 1/2"));
  driver.exit(driver.spawned[0]);
  EXPECT_THAT(effects(driver.ready(driver.spawned[2])), ElementsAre("reload ok 2"));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_wanted, 2);
}

TEST(Reload, FewerWorkersThroughAReloadStopsTheHighestSlotsAtTheEnd) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  driver.reload(1);
  EXPECT_THAT(effects(driver.ready(driver.spawned[2])), ElementsAre("signal 0/1 15", "signal 1/1 15"));
  driver.exit(driver.spawned[0]);
  EXPECT_THAT(effects(driver.exit(driver.spawned[1])), ElementsAre("reload ok 2"));
  EXPECT_EQ(driver.supervisor().status(driver.now).slots.size(), 1u);
}

TEST(Reload, StopDuringAReloadAbandonsItAndStopsEveryone) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(1);
  EXPECT_THAT(effects(driver.send(StopRequested{})),
              ElementsAre("signal 0/2 15", "reload failed 2: reload abandoned: clusterd is stopping", "signal 0/1 15"));
}

TEST(Reload, OldWorkerThatCrashesDuringAReloadRestartsFromTheOldGeneration) {
  Config config = notify_config();
  config.reload.batch = 1;
  Driver driver(config, 2);
  driver.start_ready();
  driver.reload(2);  // replaces slot 0 first
  EXPECT_THAT(effects(driver.exit(driver.spawned[1], ExitCode{1})), ElementsAre("spawn 1/1"));
}

TEST(Reload, NewConfigurationAppliesToTheNewGeneration) {
  Config config = notify_config();
  Driver driver(config, 1);
  driver.start_ready();
  Config changed = config;
  changed.stop.signal = SIGINT;
  driver.reload_to(changed, 1);
  EXPECT_EQ(driver.supervisor().config_of(2).stop.signal, SIGINT);
  // The old worker stops with the old generation's signal.
  EXPECT_THAT(effects(driver.ready(driver.spawned[1])), ElementsAre("signal 0/1 15"));
}

TEST(Watchdog, WorkerThatStopsPingingIsKilledAndRestarted) {
  Config config = notify_config();
  config.ready.watchdog = 3s;
  Driver driver(config, 1);
  driver.start_ready();
  NotifyMessage ping;
  ping.watchdog = true;
  driver.now += 2s;
  driver.send(Notified{driver.spawned[0], ping});
  driver.now += 2s;
  EXPECT_THAT(effects(driver.send(Tick{})), IsEmpty());
  driver.now += 1s;
  const auto expired = driver.send(Tick{});
  EXPECT_THAT(effects(expired), ElementsAre("signal 0/1 9"));
  EXPECT_THAT(logs(expired), HasSubstr("worker watchdog expired slot=0 gen=1 pid=1001"));
  const auto restarted = driver.exit(driver.spawned[0], KilledBySignal{SIGKILL});
  EXPECT_THAT(effects(restarted), ElementsAre("spawn 0/1"));
  EXPECT_THAT(logs(restarted), ::testing::Not(HasSubstr("out of memory")));
}

TEST(Recycle, WorkerPastMaxLifetimeIsReplacedNewOneReadyFirst) {
  Config config = notify_config();
  config.recycle.max_lifetime = 100s;
  Driver driver(config, 1);
  driver.start_ready();
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 110s);  // jitter 1.0: +10 %
  driver.now += 110s;
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("spawn 0/1"));
  const auto promoted = driver.ready(driver.spawned[1]);
  EXPECT_THAT(effects(promoted), ElementsAre("signal 0/1 15"));
  EXPECT_THAT(logs(promoted), HasSubstr("worker recycled slot=0 reason=max_lifetime"));
}

TEST(Recycle, WorkerOverMaxRssIsReplaced) {
  Config config = notify_config();
  config.recycle.max_rss = 1000;
  config.recycle.check_interval = 10s;
  Driver driver(config, 1);
  driver.start_ready();
  driver.now += 10s;
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("sample 1"));
  EXPECT_THAT(effects(driver.send(RssSampled{driver.spawned[0], 999})), IsEmpty());
  EXPECT_THAT(effects(driver.send(RssSampled{driver.spawned[0], 1001})), ElementsAre("spawn 0/1"));
}

TEST(Recycle, FailedReplacementLeavesTheOldWorkerAndRetriesAfterMaxDelay) {
  Config config = notify_config();
  config.recycle.max_rss = 1000;
  Driver driver(config, 1);
  driver.start_ready();
  driver.send(RssSampled{driver.spawned[0], 5000});
  EXPECT_THAT(effects(driver.exit(driver.spawned[1], ExitCode{1})), IsEmpty());
  driver.now += 1s;
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("spawn 0/1"));
}

TEST(Scale, ScalingUpStartsNewSlotsAndDownStopsTheHighest) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  EXPECT_THAT(effects(driver.send(ScaleRequested{3})), ElementsAre("spawn 1/1", "spawn 2/1"));
  EXPECT_THAT(effects(driver.send(ScaleRequested{1})), ElementsAre("signal 1/1 15", "signal 2/1 15"));
  driver.exit(driver.spawned[1]);
  driver.exit(driver.spawned[2]);
  EXPECT_EQ(driver.supervisor().status(driver.now).slots.size(), 1u);
}

TEST(Scale, TwoRelativeScalesHandledInARowAddTwo) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.send(ScaleBy{+1});
  driver.send(ScaleBy{+1});
  EXPECT_EQ(driver.supervisor().workers_wanted(), 3);
  driver.send(ScaleBy{-5});
  EXPECT_EQ(driver.supervisor().workers_wanted(), 1);  // never below one
}

}  // namespace
}  // namespace clusterd
