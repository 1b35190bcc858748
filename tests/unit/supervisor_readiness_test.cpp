// The Supervisor's readiness modes (exec, notify, uptime), ready timeouts and the worker watchdog.
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

}  // namespace
}  // namespace clusterd
