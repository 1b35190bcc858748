// The Supervisor's rolling reload: batches, abandonment, queued reloads, worker counts.
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

TEST(Reload, SlotActivityCountsOnlyTheGenerationsAskedFor) {
  // What the per-slot sockets of a listener only one generation holds depend on.
  Driver driver(notify_config(), 2);
  driver.start_ready();
  const auto both = [](std::uint64_t) { return true; };
  const auto second = [](std::uint64_t generation) { return generation == 2; };
  driver.reload(2);
  const WorkerId new0 = driver.spawned[2];

  auto activity = driver.supervisor().slot_activity(second);
  EXPECT_TRUE(activity[0].running);      // the new worker of slot 0 starts
  EXPECT_FALSE(activity[0].accepting);   // not ready yet
  EXPECT_FALSE(activity[1].running);     // only generation 1 runs there
  EXPECT_TRUE(driver.supervisor().slot_activity(both)[1].accepting);

  driver.ready(new0);  // the old worker of slot 0 is asked to stop
  activity = driver.supervisor().slot_activity(second);
  EXPECT_TRUE(activity[0].accepting);
  EXPECT_FALSE(activity[1].accepting);
  activity = driver.supervisor().slot_activity([](std::uint64_t generation) { return generation == 1; });
  EXPECT_FALSE(activity[0].running);     // stopping: it no longer counts
  EXPECT_TRUE(activity[1].accepting);
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
  driver.send(ScaleRequested{3, "operator"});
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
  driver.send(ScaleBy{+1, "operator"});
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

}  // namespace
}  // namespace clusterd
