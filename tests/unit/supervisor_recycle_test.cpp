// The Supervisor's recycling: max_lifetime, max_rss, a failed recycle's retry.
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

}  // namespace
}  // namespace clusterd
