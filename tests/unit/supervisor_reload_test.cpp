// The Supervisor's readiness, rolling reload, recycling, watchdog and scaling, driven by
// scripted events with explicit time. Workers here become ready only when a test says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "supervisor.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Config notify_config() {
  Config config;
  config.name = "test";
  config.command = {"/bin/true"};
  config.ready.mode = ReadyMode::notify;
  config.ready.timeout = 10s;
  config.stop.grace = 5s;
  config.restart.delay = 100ms;
  config.restart.max_delay = 1s;
  return config;
}

NotifyMessage ready_message() {
  NotifyMessage message;
  message.ready = true;
  return message;
}

// Spawns answered with Spawned and Execed; readiness, exits and time are the test's to give.
class Driver {
 public:
  Driver(const Config& config, int workers) : supervisor_(config, workers, [] { return 1.0; }) {}

  std::vector<Action> send(const Event& event) {
    auto actions = supervisor_.handle(event, now);
    for (std::size_t index = 0; index < actions.size(); ++index) {
      if (const auto* spawn = std::get_if<Spawn>(&actions[index])) {
        const WorkerId id = spawn->id;
        spawned.push_back(id);
        for (const Event& followup : {Event{Spawned{id, next_pid_++}}, Event{Execed{id}}}) {
          auto more = supervisor_.handle(followup, now);
          actions.insert(actions.end(), more.begin(), more.end());
        }
      }
    }
    return actions;
  }
  std::vector<Action> ready(const WorkerId& id) { return send(Notified{id, ready_message()}); }
  std::vector<Action> exit(const WorkerId& id, WorkerExit status = ExitCode{0}) { return send(Exited{id, status}); }
  std::vector<Action> reload(int workers, std::optional<RequestId> request = 7) {
    return send(ReloadRequested{nullptr, workers, request});
  }
  std::vector<Action> reload_to(Config config, int workers) {
    return send(ReloadRequested{std::make_shared<const Config>(std::move(config)), workers, 7});
  }
  // Starts and makes every first-generation worker ready.
  void start_ready() {
    send(Start{});
    for (const WorkerId& id : std::vector<WorkerId>(spawned)) {
      ready(id);
    }
  }
  Supervisor& supervisor() { return supervisor_; }

  TimePoint now{};
  std::vector<WorkerId> spawned;

 private:
  Supervisor supervisor_;
  int next_pid_ = 1000;
};

std::vector<std::string> effects(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const Action& action : actions) {
    if (const auto* spawn = std::get_if<Spawn>(&action)) {
      out.push_back("spawn " + std::to_string(spawn->id.slot) + "/" + std::to_string(spawn->id.generation));
    } else if (const auto* send = std::get_if<SendSignal>(&action)) {
      out.push_back("signal " + std::to_string(send->id.slot) + "/" + std::to_string(send->id.generation) + " " +
                    std::to_string(send->signal));
    } else if (const auto* finished = std::get_if<ReloadFinished>(&action)) {
      out.push_back(std::string(finished->ok ? "reload ok " : "reload failed ") +
                    std::to_string(finished->generation) + (finished->error.empty() ? "" : ": " + finished->error));
    } else if (const auto* exit = std::get_if<ExitDaemon>(&action)) {
      out.push_back("exit " + std::to_string(exit->code));
    } else if (const auto* sample = std::get_if<SampleRss>(&action)) {
      out.push_back("sample " + std::to_string(sample->ids.size()));
    }
  }
  return out;
}

std::vector<std::string> systemd_messages(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const Action& action : actions) {
    if (const auto* notify = std::get_if<NotifySystemd>(&action)) {
      out.push_back(notify->message);
    }
  }
  return out;
}

std::string logs(const std::vector<Action>& actions) {
  std::string out;
  for (const Action& action : actions) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      out += entry->message + "\n";
    }
  }
  return out;
}

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
  EXPECT_THAT(logs(expired), HasSubstr("worker watchdog expired slot=0 gen=1 pid=1000"));
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

}  // namespace
}  // namespace clusterd
