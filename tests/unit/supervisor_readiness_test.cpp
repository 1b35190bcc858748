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

TEST(AutoReadiness, IsTheDefault) { EXPECT_EQ(Config{}.ready.mode, ReadyMode::automatic); }

TEST(AutoReadiness, LooksAtAStartingWorkerAtGrowingIntervalsUntilItWaitsOnItsSocket) {
  Driver driver(auto_config(), 1);
  driver.send(Start{});
  std::vector<long> looks;  // milliseconds after the exec
  for (int round = 0; round < 9; ++round) {
    driver.now = *driver.supervisor().next_deadline();
    EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("probe 1"));
    looks.push_back(static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(driver.now - TimePoint{}).count()));
  }
  // Every millisecond for the first 10 ms after the exec, then 2, 4, … ms apart, at most 50 ms.
  EXPECT_THAT(looks, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9));
  looks.clear();
  for (int round = 0; round < 8; ++round) {
    driver.now = *driver.supervisor().next_deadline();
    EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("probe 1"));
    looks.push_back(static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(driver.now - TimePoint{}).count()));
  }
  EXPECT_THAT(looks, ElementsAre(10, 12, 16, 24, 40, 72, 122, 172));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 0);

  const auto seen = driver.send(Probed{driver.spawned[0], "epoll", std::nullopt});
  EXPECT_THAT(logs(seen), HasSubstr("worker ready slot=0 gen=1 pid=1001 sign=epoll"));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 1);
  EXPECT_EQ(driver.supervisor().next_deadline(), std::nullopt);  // idle: nothing more to look at
}

TEST(AutoReadiness, ManyStartingWorkersAreLookedAtLessOften) {
  Driver driver(auto_config(), 20);
  driver.send(Start{});
  driver.now = *driver.supervisor().next_deadline();
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("probe 20"));  // one action for all of them
  // 20 workers looked at: no interval below 20 × 0.2 ms = 4 ms, even in the first 10 ms.
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 5ms);
}

TEST(AutoReadiness, NotWaitingYetChangesNothing) {
  Driver driver(auto_config(), 1);
  driver.send(Start{});
  driver.now = *driver.supervisor().next_deadline();
  driver.send(Tick{});
  EXPECT_THAT(effects(driver.send(Probed{driver.spawned[0], std::nullopt, std::nullopt})), IsEmpty());
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 0);
}

TEST(AutoReadiness, ReadyMessageAloneDoesNotMakeAWorkerWithSocketsReady) {
  // gunicorn's arbiter sends READY=1 before its child has loaded the application.
  Driver driver(auto_config(), 1);
  driver.send(Start{});
  EXPECT_THAT(logs(driver.ready(driver.spawned[0])), Not(HasSubstr("worker ready")));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 0);
  driver.now = *driver.supervisor().next_deadline();
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("probe 1"));  // still looking
  EXPECT_THAT(logs(driver.send(Probed{driver.spawned[0], "select pid=1002", std::nullopt})),
              HasSubstr("worker ready slot=0 gen=1 pid=1001 sign=\"select pid=1002\""));
}

TEST(AutoReadiness, ReadyMessageMakesAWorkerWithoutSocketsReady) {
  Config config = auto_config();
  config.listeners.clear();
  Driver driver(config, 1);
  driver.send(Start{});
  EXPECT_THAT(logs(driver.ready(driver.spawned[0])), HasSubstr("worker ready slot=0 gen=1 pid=1001 sign=READY=1"));
  EXPECT_EQ(driver.supervisor().next_deadline(), std::nullopt);
}

TEST(AutoReadiness, ReadyMessageCountsWhereTheWaitsCannotBeSeen) {
  Driver driver(auto_config(), 2);
  driver.send(Start{});
  driver.now = *driver.supervisor().next_deadline();
  driver.send(Tick{});
  // READY=1 first, then the look that cannot see: ready at once.
  driver.ready(driver.spawned[0]);
  EXPECT_THAT(logs(driver.send(Probed{driver.spawned[0], std::nullopt, "it uses io_uring"})),
              HasSubstr("worker ready slot=0 gen=1 pid=1001 sign=READY=1"));
  // The look that cannot see first, then READY=1: ready at once, before the minimum uptime.
  driver.send(Probed{driver.spawned[1], std::nullopt, "it uses io_uring"});
  EXPECT_THAT(logs(driver.ready(driver.spawned[1])), HasSubstr("worker ready slot=1 gen=1 pid=1002 sign=READY=1"));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 2);
}

TEST(AutoReadiness, WorkerGivenNoSocketIsReadyAfterTheMinimumUptime) {
  Config config = auto_config();
  config.listeners.clear();
  Driver driver(config, 1);
  EXPECT_THAT(effects(driver.send(Start{})), ElementsAre("spawn 0/1"));
  EXPECT_EQ(driver.supervisor().next_deadline(), TimePoint{} + 1s);
  driver.now += 1s;
  const auto actions = driver.send(Tick{});
  EXPECT_THAT(effects(actions), IsEmpty());  // never probed
  EXPECT_THAT(logs(actions), HasSubstr("worker ready slot=0 gen=1 pid=1001 sign=min_uptime"));
}

TEST(AutoReadiness, JobRunnerThatDiesBeforeTheMinimumUptimeWasNeverReady) {
  Config config = auto_config();
  config.listeners.clear();
  Driver driver(config, 1);
  driver.send(Start{});
  driver.now += 100ms;
  const auto actions = driver.exit(driver.spawned[0], ExitCode{1});
  EXPECT_THAT(logs(actions), Not(HasSubstr("worker ready")));
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 0);
}

TEST(AutoReadiness, WorkerWhoseWaitsCannotBeSeenIsReadyAfterTheMinimumUptimeSaidOnce) {
  Driver driver(auto_config(), 2);
  driver.send(Start{});
  driver.now = *driver.supervisor().next_deadline();
  driver.send(Tick{});
  const auto first = driver.send(Probed{driver.spawned[0], std::nullopt, "it uses io_uring"});
  EXPECT_THAT(logs(first), HasSubstr("cannot see whether the worker waits for connections slot=0 gen=1 pid=1001 "
                                     "reason=\"it uses io_uring\"; it counts as ready after ready.min_uptime=1s"));
  const auto second = driver.send(Probed{driver.spawned[1], std::nullopt, "it uses io_uring"});
  ASSERT_THAT(logs(second), HasSubstr("cannot see"));
  for (const Action& action : second) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      EXPECT_EQ(entry->severity, LogSeverity::debug);  // said once as a warning; debug from then on
    }
  }
  driver.now = TimePoint{} + 1s;
  driver.send(Tick{});
  EXPECT_EQ(driver.supervisor().status(driver.now).workers_ready, 2);
}

TEST(AutoReadiness, WorkerThatNeverWaitsOnItsSocketIsNotReadyInTimeAndTheLogSaysWhy) {
  Driver driver(auto_config(), 1);
  driver.send(Start{});
  std::string said;
  while (driver.now < TimePoint{} + 10s) {
    driver.now = *driver.supervisor().next_deadline();
    said += logs(driver.send(Tick{}));
  }
  EXPECT_THAT(said, HasSubstr("not ready within 10s (ready.mode = auto: it sent no READY=1 and never waited for "
                              "connections on clusterd's listening sockets"));
}

TEST(AutoReadiness, ReloadToAProgramThatExitsAtStartIsAbandonedAndTheOldWorkerServes) {
  Driver driver(auto_config(), 1);
  driver.send(Start{});
  driver.send(Probed{driver.spawned[0], "epoll", std::nullopt});
  driver.reload(std::nullopt);
  const WorkerId replacement = driver.spawned[1];
  driver.now += 5ms;
  const auto failed = driver.exit(replacement, ExitCode{1});
  EXPECT_THAT(effects(failed), ElementsAre("reload failed 2: reload abandoned: slot=0 gen=2 exited status=exit:1 before it was ready"));
  const StatusSnapshot status = driver.supervisor().status(driver.now);
  EXPECT_EQ(status.generation, 1u);
  EXPECT_EQ(status.workers_ready, 1);
  EXPECT_EQ(status.slots[0].workers.at(0).id, driver.spawned[0]);
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
