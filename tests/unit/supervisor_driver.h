// The one driver of every Supervisor test: it answers each Spawn as the daemon does (Spawned, then
// Execed), keeps the time, and renders actions as short strings. Readiness, exits and time are
// the test's to give.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "supervisor.h"

namespace clusterd::testing_support {

using namespace std::chrono_literals;

// ready.mode = exec (a worker is ready once it runs), restarts after `restart_ms`, 5 s grace.
inline Config exec_config(int restart_ms = 100, RestartPolicyKind policy = RestartPolicyKind::always) {
  Config config;
  config.name = "test";
  config.command = {"/bin/true"};
  config.ready.mode = ReadyMode::exec;
  config.restart.policy = policy;
  config.restart.delay = Duration{restart_ms};
  config.restart.max_delay = 1s;
  config.stop.grace = 5s;
  return config;
}

// ready.mode = notify with a 10 s timeout: a worker is ready when the test sends READY=1.
inline Config notify_config() {
  Config config = exec_config();
  config.ready.mode = ReadyMode::notify;
  config.ready.timeout = 10s;
  return config;
}

// ready.mode = auto (the default) with one listener and a 10 s timeout: a worker is ready when the
// test reports it waiting on its socket (Probed) or it sends READY=1.
inline Config auto_config() {
  Config config = exec_config();
  config.ready.mode = ReadyMode::automatic;
  config.ready.timeout = 10s;
  config.listeners.push_back(ListenerConfig{});
  return config;
}

inline std::function<double()> fixed_jitter(double value) {
  return [value] { return value; };
}

inline NotifyMessage ready_message() {
  NotifyMessage message;
  message.ready = true;
  return message;
}

// Actions without the log lines: "spawn 0/1", "signal 0/1 15", "reload ok 2", "exit 0", "sample 2".
inline std::vector<std::string> effects(const std::vector<Action>& actions) {
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
    } else if (const auto* probe = std::get_if<ProbeListening>(&action)) {
      out.push_back("probe " + std::to_string(probe->ids.size()));
    }
  }
  return out;
}

inline std::vector<std::string> systemd_messages(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const Action& action : actions) {
    if (const auto* notify = std::get_if<NotifySystemd>(&action)) {
      out.push_back(notify->message);
    }
  }
  return out;
}

inline std::string logs(const std::vector<Action>& actions) {
  std::string out;
  for (const Action& action : actions) {
    if (const auto* entry = std::get_if<Log>(&action)) {
      out += entry->message + "\n";
    }
  }
  return out;
}

class Driver {
 public:
  explicit Driver(const Config& config, int workers = 1, double jitter = 1.0)
      : supervisor_(config, workers, [jitter] { return jitter; }) {}

  std::vector<Action> send(const Event& event) {
    auto actions = supervisor_.handle(event, now);
    for (std::size_t index = 0; index < actions.size(); ++index) {
      if (const auto* spawn = std::get_if<Spawn>(&actions[index])) {
        const WorkerId id = spawn->id;
        spawned.push_back(id);
        latest_in_slot[id.slot] = id;
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
  // The newest worker spawned in `slot` exits.
  std::vector<Action> exit_slot(int slot, WorkerExit status) { return exit(latest_in_slot.at(slot), status); }
  // A reload as the daemon asks for one: the next generation number, the file's worker count
  // when it changed it (nullopt: unchanged), and a control request waiting for the outcome.
  std::vector<Action> reload(std::optional<int> workers, std::optional<RequestId> request = 7) {
    return send(ReloadRequested{next_generation_++, nullptr, workers, request});
  }
  std::vector<Action> reload_to(Config config, std::optional<int> workers) {
    return send(ReloadRequested{next_generation_++, std::make_shared<const Config>(std::move(config)), workers, 7});
  }
  // Starts and makes every first-generation worker ready.
  void start_ready() {
    send(Start{});
    for (const WorkerId& id : std::vector<WorkerId>(spawned)) {
      ready(id);
    }
  }
  Supervisor& supervisor() { return supervisor_; }
  int spawns() const { return static_cast<int>(spawned.size()); }

  TimePoint now{};
  std::vector<WorkerId> spawned;
  std::map<int, WorkerId> latest_in_slot;

 private:
  Supervisor supervisor_;
  int next_pid_ = 1001;
  std::uint64_t next_generation_ = 2;
};

}  // namespace clusterd::testing_support
