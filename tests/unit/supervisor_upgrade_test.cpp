// The Supervisor's part of `clusterd upgrade`: when a pool may be handed over, what is handed, and
// a pool taken over that goes on as if it had never left.
#include "supervisor_driver.h"

namespace clusterd {
namespace {

using namespace testing_support;

TEST(SupervisorUpgrade, OnlyASteadyPoolIsHandedOver) {
  Driver driver(notify_config(), 2);
  EXPECT_EQ(driver.supervisor().upgrade_blocker(), "clusterd is starting");
  driver.start_ready();
  EXPECT_EQ(driver.supervisor().upgrade_blocker(), std::nullopt);
  driver.exit_slot(1, ExitCode{1});  // the first restart of a streak is at once: not ready yet
  EXPECT_THAT(driver.supervisor().upgrade_blocker().value_or(""), ::testing::HasSubstr("is not ready yet"));
  driver.ready(driver.latest_in_slot.at(1));
  EXPECT_EQ(driver.supervisor().upgrade_blocker(), std::nullopt);
  driver.reload(std::nullopt);
  EXPECT_THAT(driver.supervisor().upgrade_blocker().value_or(""), ::testing::HasSubstr("a reload is under way"));
}

TEST(SupervisorUpgrade, ASlotInBackoffIsHandedOverAsItIs) {
  Config config = notify_config();
  config.restart.delay = std::chrono::seconds(10);
  config.restart.max_delay = std::chrono::seconds(10);
  Driver before(config, 2, 1.0);
  before.start_ready();
  before.exit_slot(1, ExitCode{3});
  before.exit_slot(1, ExitCode{3});  // the second crash in a row waits 10 s
  before.now += std::chrono::seconds(4);
  EXPECT_EQ(before.supervisor().upgrade_blocker(), std::nullopt);
  const HandedOverPool pool = before.supervisor().hand_over(before.now);
  ASSERT_EQ(pool.slots.size(), 2U);
  EXPECT_EQ(pool.workers.size(), 1U);
  EXPECT_EQ(pool.slots[1].state, SlotState::backoff);
  EXPECT_EQ(pool.slots[1].restart_in, std::chrono::seconds(6));
  EXPECT_EQ(pool.slots[1].last_exit, WorkerExit{ExitCode{3}});

  Driver after(config, 2, 1.0);
  after.supervisor().adopt(pool, after.now);
  StatusSnapshot status = after.supervisor().status(after.now);
  EXPECT_EQ(status.slots[1].state, SlotState::backoff);
  EXPECT_EQ(status.slots[1].restarts, pool.slots[1].restarts);
  EXPECT_EQ(status.slots[1].last_exit, WorkerExit{ExitCode{3}});
  EXPECT_EQ(status.slots[1].next_restart_in, std::chrono::seconds(6));
  // Its backoff goes on where it was: the restart comes when it was due, not before.
  after.now += std::chrono::seconds(5);
  after.send(Tick{});
  EXPECT_TRUE(after.spawned.empty());
  after.now += std::chrono::seconds(1);
  after.send(Tick{});
  ASSERT_EQ(after.spawned.size(), 1U);
  EXPECT_EQ(after.spawned[0].slot, 1);
}

TEST(SupervisorUpgrade, AWorkerNotReadyYetHoldsTheUpgrade) {
  Driver driver(notify_config(), 1);
  driver.send(Start{});
  EXPECT_THAT(driver.supervisor().upgrade_blocker().value_or(""), ::testing::HasSubstr("is not ready yet"));
  driver.ready(driver.spawned.at(0));
  EXPECT_EQ(driver.supervisor().upgrade_blocker(), std::nullopt);
}

TEST(SupervisorUpgrade, APoolTakenOverKeepsItsWorkersAndGoesOn) {
  Driver before(exec_config(), 2);
  before.start_ready();
  before.now += std::chrono::seconds(5);
  const HandedOverPool pool = before.supervisor().hand_over(before.now);
  ASSERT_EQ(pool.workers.size(), 2U);
  EXPECT_EQ(pool.workers[0].pid, 1001);
  EXPECT_EQ(pool.workers[0].uptime, std::chrono::seconds(5));

  Driver after(exec_config(), 2);
  after.now = TimePoint{} + std::chrono::hours(1);
  const auto actions = after.supervisor().adopt(pool, after.now);
  EXPECT_THAT(effects(actions), ::testing::IsEmpty());  // nothing spawned or signalled, only logged
  const StatusSnapshot status = after.supervisor().status(after.now);
  EXPECT_EQ(status.workers_ready, 2);
  ASSERT_EQ(status.slots.size(), 2U);
  EXPECT_EQ(status.slots[1].workers.at(0).pid, 1002);
  EXPECT_EQ(status.slots[1].workers.at(0).uptime, std::chrono::seconds(5));
  EXPECT_EQ(after.supervisor().upgrade_blocker(), std::nullopt);
  // A worker taken over that exits is restarted as any other, with a new instance number.
  after.now += std::chrono::seconds(1);
  after.send(Exited{pool.workers[0].id, ExitCode{1}});
  after.now += std::chrono::seconds(1);
  after.send(Tick{});
  ASSERT_EQ(after.spawned.size(), 1U);
  EXPECT_EQ(after.spawned[0].slot, 0);
  EXPECT_EQ(after.spawned[0].instance, pool.next_instance);
}

}  // namespace
}  // namespace clusterd

namespace clusterd {
namespace {

using namespace testing_support;

TEST(SupervisorUpgrade, APoolOfTwoGenerationsAfterAnAbandonedReloadIsNotHandedOver) {
  Driver driver(notify_config(), 2);
  driver.start_ready();
  const WorkerId old0 = driver.latest_in_slot.at(0);
  driver.reload(std::nullopt);
  driver.ready(driver.latest_in_slot.at(0));  // slot 0 runs generation 2; its old worker retires
  driver.exit(old0);
  driver.exit(driver.latest_in_slot.at(1), ExitCode{1});  // slot 1's new worker fails: abandoned
  ASSERT_FALSE(driver.supervisor().reloading());
  EXPECT_THAT(driver.supervisor().upgrade_blocker().value_or(""),
              ::testing::HasSubstr("runs generation 2, not 1 (a reload was abandoned half way)"));
}

}  // namespace
}  // namespace clusterd
