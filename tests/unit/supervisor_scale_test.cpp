// The Supervisor's scaling: `scale N`, SIGTTIN/SIGTTOU, never below one worker.
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

TEST(Scale, ScalingUpStartsNewSlotsAndDownStopsTheHighest) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  EXPECT_THAT(effects(driver.send(ScaleRequested{3, "operator"})), ElementsAre("spawn 1/1", "spawn 2/1"));
  EXPECT_THAT(effects(driver.send(ScaleRequested{1, "operator"})), ElementsAre("signal 1/1 15", "signal 2/1 15"));
  driver.exit(driver.spawned[1]);
  driver.exit(driver.spawned[2]);
  EXPECT_EQ(driver.supervisor().status(driver.now).slots.size(), 1u);
}

TEST(Scale, TwoRelativeScalesHandledInARowAddTwo) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.send(ScaleBy{+1, "operator"});
  driver.send(ScaleBy{+1, "operator"});
  EXPECT_EQ(driver.supervisor().workers_wanted(), 3);
  driver.send(ScaleBy{-5, "operator"});
  EXPECT_EQ(driver.supervisor().workers_wanted(), 1);  // never below one
}

}  // namespace
}  // namespace clusterd
