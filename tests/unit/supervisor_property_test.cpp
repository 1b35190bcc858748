// The Supervisor driven by long random (seeded, so reproducible) event sequences, as a daemon and
// a kernel would produce them, with its invariants checked after every event. Set
// CLUSTERD_PROPERTY_SEED to replay one sequence; CLUSTERD_PROPERTY_SEQUENCES to run more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>

#include "supervisor.h"
#include "supervisor_driver.h"

namespace clusterd {
namespace {

using namespace testing_support;

struct LiveWorker {
  WorkerId id;
  bool execed = false;
  bool killed = false;  // got SIGKILL: it exits soon, whatever else happens
};

class RandomRun {
 public:
  explicit RandomRun(std::uint64_t seed) : random_(seed), seed_(seed) {
    config_ = exec_config(50 + pick(0, 400));
    const int mode = pick(0, 3);
    config_.ready.mode = mode == 0   ? ReadyMode::exec
                         : mode == 1 ? ReadyMode::notify
                         : mode == 2 ? ReadyMode::uptime
                                     : ReadyMode::automatic;
    if (chance(0.7)) {
      config_.listeners.push_back(ListenerConfig{});  // auto looks at its workers; else min_uptime
    }
    config_.ready.timeout = Duration{1000 + pick(0, 5000)};
    config_.ready.min_uptime = Duration{pick(1, 2000)};
    if (chance(0.3)) {
      config_.ready.watchdog = Duration{500 + pick(0, 3000)};
    }
    if (chance(0.3)) {
      config_.recycle.max_rss = 1000;
      config_.recycle.check_interval = Duration{200 + pick(0, 2000)};
    }
    if (chance(0.3)) {
      config_.recycle.max_lifetime = Duration{1000 + pick(0, 10000)};
    }
    if (chance(0.3)) {
      config_.restart.burst = pick(2, 6);
      config_.restart.interval = Duration{2000};
    }
    config_.restart.max_delay = Duration{1000 + pick(0, 3000)};
    config_.stop.grace = Duration{100 + pick(0, 3000)};
    config_.reload.batch = pick(1, 2);
    expected_wanted_ = pick(1, 5);
    supervisor_.emplace(config_, expected_wanted_, [this] { return std::uniform_real_distribution<double>(0, 1)(random_); });
  }

  void run(int events) {
    handle(Start{});
    for (int step = 0; step < events && !exited_ && !::testing::Test::HasFailure(); ++step) {
      handle(random_event());
    }
    finish();
  }

  int events_handled() const { return events_handled_; }

 private:
  int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(random_); }
  std::string where() const { return "seed=" + std::to_string(seed_) + " event=" + std::to_string(events_handled_); }

  LiveWorker* random_live(bool prefer_killed) {
    if (live_.empty()) {
      return nullptr;
    }
    if (prefer_killed) {
      for (auto& [instance, worker] : live_) {
        if (worker.killed) {
          return &worker;
        }
      }
    }
    auto it = live_.begin();
    std::advance(it, pick(0, static_cast<int>(live_.size()) - 1));
    return &it->second;
  }

  Event random_event() {
    const int roll = pick(0, 99);
    if (roll < 25) {
      const auto next = supervisor_->next_deadline();
      now_ = next ? std::max(now_, *next) : now_ + Duration{pick(1, 3000)};
      return Tick{};
    }
    if (roll < 32) {
      now_ += Duration{pick(0, 700)};
      return Tick{};
    }
    if (roll < 52) {
      if (LiveWorker* worker = random_live(chance(0.7))) {
        const int kind = worker->killed ? 0 : pick(0, 4);
        WorkerExit exit = kind == 0 ? WorkerExit{KilledBySignal{SIGKILL}}
                          : kind == 1 ? WorkerExit{KilledBySignal{SIGTERM}}
                          : kind == 2 ? WorkerExit{ExitCode{0}}
                                      : WorkerExit{ExitCode{1}};
        if (!worker->execed && chance(0.3)) {
          exit = StartFailure{"exec", ENOENT};
        }
        return Exited{worker->id, exit};
      }
      return Tick{};
    }
    if (roll < 60) {
      for (auto& [instance, worker] : live_) {
        if (!worker.execed) {
          worker.execed = true;
          return Execed{worker.id};
        }
      }
      return Tick{};
    }
    if (roll < 75) {
      if (LiveWorker* worker = random_live(false)) {
        NotifyMessage message;
        switch (pick(0, 5)) {
          case 0: case 1: message.ready = true; break;
          case 2: message.watchdog = true; break;
          case 3: message.extend_timeout = std::chrono::microseconds(pick(0, 5'000'000)); break;
          case 4: message.status = "busy"; break;
          default: message.watchdog_trigger = chance(0.3); message.stopping = !message.watchdog_trigger; break;
        }
        return Notified{worker->id, message};
      }
      return Tick{};
    }
    if (roll < 80 && !rss_to_answer_.empty()) {
      const WorkerId id = rss_to_answer_.back();
      rss_to_answer_.pop_back();
      return RssSampled{id, static_cast<std::uint64_t>(pick(0, 2000))};
    }
    if (roll < 86) {
      const RequestId request = next_request_++;
      open_requests_.insert(request);
      std::optional<int> workers;
      if (chance(0.3)) {
        workers = pick(1, 6);
        explicit_reload_pending_ = true;
      }
      return ReloadRequested{next_generation_++, std::make_shared<const Config>(config_), workers, request};
    }
    if (roll < 92) {
      if (!stopping_) {
        expected_wanted_ = std::clamp(pick(1, 6), 1, 4096);
      }
      return ScaleRequested{expected_wanted_, "operator"};
    }
    if (roll < 98) {
      const int delta = chance(0.5) ? 1 : -1;
      if (!stopping_) {
        expected_wanted_ = std::clamp(supervisor_->workers_wanted() + delta, 1, 4096);
      }
      return ScaleBy{delta, "operator"};
    }
    stopping_ = true;
    return StopRequested{chance(0.3)};
  }

  // Hands one event to the Supervisor, answers its spawns as the daemon would, then checks.
  void handle(const Event& event) {
    std::vector<Event> queue{event};
    while (!queue.empty()) {
      const Event next = queue.front();
      queue.erase(queue.begin());
      if (const auto* exited = std::get_if<Exited>(&next)) {
        live_.erase(exited->id.instance);
      }
      if (const auto* failed = std::get_if<SpawnFailed>(&next)) {
        unstarted_.erase(failed->id.instance);
      }
      const std::vector<Action> actions = supervisor_->handle(next, now_);
      ++events_handled_;
      if (trace_) {
        std::printf("-- event %d (index %zu) at %lld ms\n%s", events_handled_, next.index(),
                    static_cast<long long>(now_.time_since_epoch().count() / 1000000), logs(actions).c_str());
        for (const std::string& effect : effects(actions)) {
          std::printf("   %s\n", effect.c_str());
        }
      }
      for (const Action& action : actions) {
        observe(action, queue);
      }
      check_invariants();
    }
  }

  void observe(const Action& action, std::vector<Event>& queue) {
    if (const auto* spawn = std::get_if<Spawn>(&action)) {
      const int roll = pick(0, 99);
      if (roll < 8) {
        // Until the failure is handled, the daemon may be asked to signal it: a no-op there.
        unstarted_.insert(spawn->id.instance);
        queue.push_back(roll < 5 ? SpawnFailed{spawn->id, StartFailure{"fork", EAGAIN}, false}
                                 : SpawnFailed{spawn->id, StartFailure{"notify socket", 0, "bind: EACCES"}, true});
      } else {
        live_[spawn->id.instance] = LiveWorker{spawn->id, false, false};
        queue.push_back(Spawned{spawn->id, 1000 + static_cast<int>(spawn->id.instance)});
        if (chance(0.7)) {
          live_[spawn->id.instance].execed = true;
          queue.push_back(Execed{spawn->id});
        }
      }
    } else if (const auto* send = std::get_if<SendSignal>(&action)) {
      const auto key = std::make_pair(send->id.instance, send->signal);
      EXPECT_TRUE(signals_sent_.insert(key).second)
          << where() << ": signal " << send->signal << " sent twice to instance " << send->id.instance;
      EXPECT_TRUE(live_.contains(send->id.instance) || unstarted_.contains(send->id.instance))
          << where() << ": signal to a worker already reaped";
      if (send->signal == SIGKILL && live_.contains(send->id.instance)) {
        live_[send->id.instance].killed = true;
      }
    } else if (const auto* sample = std::get_if<SampleRss>(&action)) {
      rss_to_answer_ = sample->ids;
    } else if (const auto* probe = std::get_if<ProbeListening>(&action)) {
      EXPECT_EQ(config_.ready.mode, ReadyMode::automatic) << where() << ": a probe outside auto mode";
      for (const WorkerId& id : probe->ids) {
        const int roll = pick(0, 9);  // mostly not waiting yet; sometimes seen; rarely blind
        queue.push_back(Probed{id, roll < 2 ? std::optional<std::string>("epoll") : std::nullopt,
                               roll == 9 ? std::optional<std::string>("it uses io_uring") : std::nullopt});
      }
    } else if (const auto* finished = std::get_if<ReloadFinished>(&action)) {
      saw_reload_end_ = true;
      for (RequestId request : finished->requests) {
        EXPECT_EQ(open_requests_.erase(request), 1u) << where() << ": request " << request << " answered twice";
      }
    } else if (std::holds_alternative<ExitDaemon>(action)) {
      exited_ = true;
    }
  }

  void check_invariants() {
    const std::optional<TimePoint> next = supervisor_->next_deadline();
    if (next) {
      EXPECT_GT(*next, now_) << where() << ": a deadline is left in the past";
    }
    const StatusSnapshot status = supervisor_->status(now_);
    int serving = 0;
    for (const SlotStatus& slot : status.slots) {
      for (const WorkerStatus& worker : slot.workers) {
        serving += worker.state == WorkerState::stopping ? 0 : 1;
      }
    }
    const int limit = std::max(status.workers_wanted, supervisor_->workers_wanted()) + config_.reload.batch + 1;
    EXPECT_LE(serving, limit) << where() << ": more workers alive than wanted plus one batch";
    if (saw_reload_end_ && !status.reloading_to) {
      saw_reload_end_ = false;
      if (explicit_reload_pending_) {
        explicit_reload_pending_ = false;  // a file's count took effect (or not): learn it
        expected_wanted_ = supervisor_->workers_wanted();
      }
    }
    if (!explicit_reload_pending_ && !stopping_) {
      EXPECT_EQ(supervisor_->workers_wanted(), expected_wanted_) << where() << ": the scaled count was lost";
    }
  }

  // Stop, let every worker exit, and see clusterd exit with every request answered.
  void finish() {
    if (!exited_) {
      stopping_ = true;
      handle(StopRequested{false});
    }
    for (int round = 0; round < 1000 && !exited_ && !::testing::Test::HasFailure(); ++round) {
      if (LiveWorker* worker = random_live(true)) {
        handle(Exited{worker->id, ExitCode{0}});
      } else {
        const auto next = supervisor_->next_deadline();
        now_ = next ? std::max(now_, *next) : now_ + Duration{1000};
        handle(Tick{});
      }
    }
    EXPECT_TRUE(exited_) << where() << ": clusterd did not exit after its workers did";
    EXPECT_TRUE(open_requests_.empty()) << where() << ": " << open_requests_.size() << " reload request(s) never answered";
  }

  std::mt19937_64 random_;
  std::uint64_t seed_;
  Config config_;
  std::optional<Supervisor> supervisor_;
  TimePoint now_{};
  std::map<std::uint64_t, LiveWorker> live_;  // by instance
  std::set<std::uint64_t> unstarted_;  // spawns about to be answered with SpawnFailed
  std::set<std::pair<std::uint64_t, int>> signals_sent_;
  std::vector<WorkerId> rss_to_answer_;
  std::set<RequestId> open_requests_;
  RequestId next_request_ = 1;
  std::uint64_t next_generation_ = 2;
  int expected_wanted_ = 1;
  bool explicit_reload_pending_ = false;
  bool saw_reload_end_ = false;
  bool stopping_ = false;
  bool exited_ = false;
  int events_handled_ = 0;
  bool trace_ = std::getenv("CLUSTERD_PROPERTY_TRACE") != nullptr;  // every event and action, printed
};

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr ? std::strtoull(text, nullptr, 10) : fallback;
}

TEST(SupervisorProperties, InvariantsHoldOverRandomEventSequences) {
  constexpr int events_per_sequence = 400;
  const std::uint64_t only = env_number("CLUSTERD_PROPERTY_SEED", 0);
  const std::uint64_t sequences = only != 0 ? 1 : env_number("CLUSTERD_PROPERTY_SEQUENCES", 2000);
  long total_events = 0;
  for (std::uint64_t index = 0; index < sequences && !HasFailure(); ++index) {
    const std::uint64_t seed = only != 0 ? only : index + 1;
    RandomRun run(seed);
    run.run(events_per_sequence);
    total_events += run.events_handled();
  }
  RecordProperty("sequences", static_cast<int>(sequences));
  RecordProperty("events", static_cast<int>(total_events));
  std::printf("property test: %llu sequences, %ld events handled\n", static_cast<unsigned long long>(sequences),
              total_events);
}

}  // namespace
}  // namespace clusterd
