// The Supervisor's `restart SLOT|all`: a ready worker replaced new one first, one slot at a time;
// a slot in backoff or failed started at once; its restart count and last exit cleared.
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

TEST(RestartRequest, AReadySlotGetsANewWorkerThatTakesOverOnceReady) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  const auto asked = driver.send(RestartRequested{1, "control uid=0 pid=42"});
  EXPECT_THAT(effects(asked), ElementsAre("spawn 1/1"));
  EXPECT_THAT(logs(asked), HasSubstr("slot restart requested slot=1 by=control uid=0 pid=42"));
  const auto promoted = driver.ready(driver.spawned[2]);
  EXPECT_THAT(effects(promoted), ElementsAre("signal 1/1 15"));
  EXPECT_THAT(logs(promoted), HasSubstr("worker recycled slot=1 reason=restart"));
}

TEST(RestartRequest, AllSlotsAreReplacedOneAtATime) {
  Driver driver(notify_config(), 3);
  driver.start_ready();
  EXPECT_THAT(effects(driver.send(RestartRequested{std::nullopt, "operator"})), ElementsAre("spawn 0/1"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[3])), ElementsAre("signal 0/1 15", "spawn 1/1"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[4])), ElementsAre("signal 1/1 15", "spawn 2/1"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[5])), ElementsAre("signal 2/1 15"));
  EXPECT_THAT(effects(driver.ready(driver.spawned[5])), IsEmpty());
}

TEST(RestartRequest, ASlotInBackoffStartsNowWithItsCountAndLastExitCleared) {
  Driver driver(exec_config(10'000), 2);  // restart.delay 10 s: the second crash waits
  driver.send(Start{});
  driver.now += 1s;
  driver.exit_slot(0, ExitCode{3});
  driver.now += 1s;
  EXPECT_THAT(effects(driver.exit_slot(0, ExitCode{3})), IsEmpty());
  StatusSnapshot status = driver.supervisor().status(driver.now);
  ASSERT_EQ(status.slots[0].state, SlotState::backoff);
  EXPECT_EQ(status.slots[0].restarts, 1);
  const auto asked = driver.send(RestartRequested{0, "operator"});
  EXPECT_THAT(effects(asked), ElementsAre("spawn 0/1"));
  EXPECT_THAT(logs(asked), HasSubstr("slot restart requested slot=0 was=backoff by=operator"));
  status = driver.supervisor().status(driver.now);
  EXPECT_EQ(status.slots[0].state, SlotState::running);
  EXPECT_EQ(status.slots[0].restarts, 0);
  EXPECT_FALSE(status.slots[0].last_exit);
  // The streak starts again: the next crash restarts at once, as a first one does.
  driver.now += 1s;
  EXPECT_THAT(effects(driver.exit_slot(0, ExitCode{3})), ElementsAre("spawn 0/1"));
}

TEST(RestartRequest, ASlotThatFailedForGoodStartsAgain) {
  Config config = exec_config();
  config.restart.burst = 1;
  config.restart.interval = 60s;
  Driver driver(config, 2);
  driver.send(Start{});
  driver.exit_slot(0, ExitCode{1});
  driver.exit_slot(0, ExitCode{1});
  ASSERT_EQ(driver.supervisor().status(driver.now).slots[0].state, SlotState::failed);
  const auto asked = driver.send(RestartRequested{0, "operator"});
  EXPECT_THAT(effects(asked), ElementsAre("spawn 0/1"));
  EXPECT_THAT(logs(asked), HasSubstr("was=failed"));
  // The burst window starts afresh too: one more crash is restarted, not failed for good at once.
  EXPECT_THAT(effects(driver.exit_slot(0, ExitCode{1})), ElementsAre("spawn 0/1"));
}

TEST(RestartRequest, DuringAReloadItChangesNothing) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(std::nullopt);
  EXPECT_THAT(effects(driver.send(RestartRequested{0, "operator"})), IsEmpty());
}

}  // namespace
}  // namespace clusterd
