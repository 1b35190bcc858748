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
  driver.exit_slot(1, ExitCode{1});  // slot 1 backs off, or runs a worker not ready yet
  EXPECT_TRUE(driver.supervisor().upgrade_blocker().has_value());
  driver.now += std::chrono::seconds(1);
  driver.send(Tick{});
  driver.ready(driver.latest_in_slot.at(1));
  EXPECT_EQ(driver.supervisor().upgrade_blocker(), std::nullopt);
  driver.reload(std::nullopt);
  EXPECT_THAT(driver.supervisor().upgrade_blocker().value_or(""), ::testing::HasSubstr("a reload is under way"));
}

TEST(SupervisorUpgrade, ASlotInBackoffHoldsTheUpgrade) {
  Config config = notify_config();
  config.restart.delay = std::chrono::seconds(10);
  config.restart.max_delay = std::chrono::seconds(10);
  Driver driver(config, 2);
  driver.start_ready();
  driver.exit_slot(1, ExitCode{1});
  driver.exit_slot(1, ExitCode{1});  // the second crash in a row waits
  const auto blocker = driver.supervisor().upgrade_blocker();
  EXPECT_TRUE(blocker.has_value());
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
