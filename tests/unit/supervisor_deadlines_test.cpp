// The Supervisor's one list of deadlines: whatever is due is acted on in the same event, so the
// next deadline is never in the past (a timer armed there would fire on every loop turn).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "supervisor.h"
#include "supervisor_driver.h"

namespace clusterd {
namespace {

using namespace testing_support;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

void expect_next_deadline_in_future(Driver& driver) {
  const std::optional<TimePoint> next = driver.supervisor().next_deadline();
  if (next) {
    EXPECT_GT(*next, driver.now) << "a deadline stays due after the event that should have acted on it";
  }
}

TEST(Deadlines, FailedRecycleRetryDuringAReloadIsNotADeadlineInThePast) {
  Config config = notify_config();
  config.recycle.max_rss = 1000;
  Driver driver(config, 2);
  driver.start_ready();
  driver.send(RssSampled{driver.spawned[0], 5000});           // slot 0 due for a recycle
  driver.exit(driver.spawned.back(), ExitCode{1});            // the recycle fails: retry in 1 s
  driver.reload(std::nullopt);                                // a reload begins meanwhile
  driver.now += 2s;                                           // the retry time passes mid-reload
  driver.send(Tick{});
  expect_next_deadline_in_future(driver);
}

TEST(Deadlines, RestartOfASlotWhoseReloadReplacementIsStartingWaitsForThatWorker) {
  Driver driver(notify_config(), 1);
  driver.start_ready();
  driver.reload(std::nullopt);                     // spawn 0/2 as a replacement
  driver.exit(driver.spawned[0], ExitCode{1});     // the old worker crashes: its slot backs off
  driver.now += 5s;                                // past any backoff
  EXPECT_THAT(effects(driver.send(Tick{})), IsEmpty());  // the replacement serves the slot
  expect_next_deadline_in_future(driver);
}

TEST(Deadlines, WatchdogTriggerKillsAtOnceAndLeavesNothingDue) {
  Config config = notify_config();
  config.ready.watchdog = 5s;
  Driver driver(config, 1);
  driver.start_ready();
  NotifyMessage trigger;
  trigger.watchdog_trigger = true;
  EXPECT_THAT(effects(driver.send(Notified{driver.spawned[0], trigger})), ElementsAre("signal 0/1 9"));
  expect_next_deadline_in_future(driver);
}

TEST(Deadlines, GraceEndsInOneSigkillNotOnePerTick) {
  Driver driver(exec_config(), 1);
  driver.send(Start{});
  EXPECT_THAT(effects(driver.send(StopRequested{})), ElementsAre("signal 0/1 15"));
  driver.now += 5s;
  EXPECT_THAT(effects(driver.send(Tick{})), ElementsAre("signal 0/1 9"));
  driver.now += 5s;
  EXPECT_THAT(effects(driver.send(Tick{})), IsEmpty());
  EXPECT_FALSE(driver.supervisor().next_deadline());
}

TEST(Deadlines, ThousandsOfSlotsStartABudgetPerLoopTurn) {
  Driver driver(exec_config(), 1);
  driver.send(Start{});
  driver.now += 1s;
  const auto first = effects(driver.send(ScaleRequested{100, "operator"}));
  EXPECT_EQ(first.size(), static_cast<std::size_t>(Supervisor::spawn_budget));
  EXPECT_EQ(driver.supervisor().next_deadline(), driver.now + Supervisor::spawn_pause);
  int spawned = 1 + static_cast<int>(first.size());
  while (const auto next = driver.supervisor().next_deadline()) {
    driver.now = *next;
    spawned += static_cast<int>(effects(driver.send(Tick{})).size());
  }
  EXPECT_EQ(spawned, 100);
}

// The forks of a budget can take longer than the pause (a fork copies the fd table, which grows
// with the pool): the answers to them must not start the next budget in the same loop turn, or
// a scale of thousands holds the loop until every worker is forked.
TEST(Deadlines, SlowForksStillLeaveTheLoopATurnBeforeTheNextBudget) {
  Supervisor supervisor(exec_config(), 1, [] { return 1.0; });
  TimePoint now{};
  supervisor.handle(Start{}, now);
  supervisor.handle(Spawned{{0, 1, 1}, 100}, now);
  supervisor.handle(Execed{{0, 1, 1}}, now);
  std::vector<WorkerId> forked;
  for (const Action& action : supervisor.handle(ScaleRequested{100, "operator"}, now)) {
    if (const auto* spawn = std::get_if<Spawn>(&action)) {
      forked.push_back(spawn->id);
    }
  }
  ASSERT_EQ(forked.size(), static_cast<std::size_t>(Supervisor::spawn_budget));
  now += 50ms;  // the forks took 50 times the pause
  std::vector<Event> answers;
  for (const WorkerId& id : forked) {
    answers.emplace_back(Spawned{id, static_cast<int>(200 + id.slot)});
  }
  for (const Action& action : supervisor.handle(answers, now)) {
    EXPECT_FALSE(std::holds_alternative<Spawn>(action)) << "the next budget started in the same turn";
  }
  EXPECT_EQ(supervisor.next_deadline(), now + Supervisor::spawn_pause);
}

}  // namespace
}  // namespace clusterd
