// The upgrade state as JSON (upgrade_state.h), written and read with nlohmann-json.
#include "upgrade_state.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

namespace clusterd {
namespace {

using nlohmann::json;

template <typename T>
json optional_json(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

template <typename T>
std::optional<T> optional_of(const json& object, const char* key) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) {
    return std::nullopt;
  }
  return found->get<T>();
}

json counters_json(const Counters& counters) {
  return {{"restarts", counters.restarts},
          {"exits_code", counters.exits_code},
          {"exits_signal", counters.exits_signal},
          {"exits_start_failure", counters.exits_start_failure},
          {"reloads_finished", counters.reloads_finished},
          {"reloads_abandoned", counters.reloads_abandoned},
          {"last_reload_ms", counters.last_reload ? json(counters.last_reload->count()) : json(nullptr)}};
}

Counters counters_of(const json& object) {
  Counters counters;
  counters.restarts = object.value("restarts", std::uint64_t{0});
  counters.exits_code = object.value("exits_code", std::uint64_t{0});
  counters.exits_signal = object.value("exits_signal", std::uint64_t{0});
  counters.exits_start_failure = object.value("exits_start_failure", std::uint64_t{0});
  counters.reloads_finished = object.value("reloads_finished", std::uint64_t{0});
  counters.reloads_abandoned = object.value("reloads_abandoned", std::uint64_t{0});
  if (const auto last = optional_of<Duration::rep>(object, "last_reload_ms")) {
    counters.last_reload = Duration(*last);
  }
  return counters;
}

constexpr std::array<const char*, 4> slot_states{"running", "backoff", "failed", "exited"};

json exit_json(const std::optional<WorkerExit>& exit) {
  if (!exit) {
    return nullptr;
  }
  if (const auto* code = std::get_if<ExitCode>(&*exit)) {
    return {{"code", code->code}};
  }
  if (const auto* killed = std::get_if<KilledBySignal>(&*exit)) {
    return {{"signal", killed->signal}};
  }
  const auto& failure = std::get<StartFailure>(*exit);
  return {{"step", failure.step}, {"errno", failure.error}, {"detail", failure.detail}};
}

std::optional<WorkerExit> exit_of(const json& object) {
  if (object.is_null()) {
    return std::nullopt;
  }
  if (object.contains("code")) {
    return ExitCode{object.at("code").get<int>()};
  }
  if (object.contains("signal")) {
    return KilledBySignal{object.at("signal").get<int>()};
  }
  return StartFailure{object.at("step").get<std::string>(), object.at("errno").get<int>(),
                      object.value("detail", std::string())};
}

json user_json(const WorkerUser& user) {
  json out = json::object();
  if (user.credentials) {
    out["uid"] = user.credentials->uid;
    out["gid"] = user.credentials->gid;
    out["groups"] = user.credentials->groups;
  }
  if (user.user_env) {
    out["name"] = user.user_env->name;
    out["home"] = user.user_env->home;
  }
  return out;
}

WorkerUser user_of(const json& object) {
  WorkerUser user;
  if (object.contains("uid")) {
    user.credentials = Credentials{object.at("uid").get<uid_t>(), object.at("gid").get<gid_t>(),
                                   object.at("groups").get<std::vector<gid_t>>()};
  }
  if (object.contains("name")) {
    user.user_env = UserEnv{object.at("name").get<std::string>(), object.at("home").get<std::string>()};
  }
  return user;
}

}  // namespace

std::string write_upgrade_state(const UpgradeState& state) {
  json listeners = json::array();
  for (const HandedListener& listener : state.listeners) {
    json sockets = json::array();
    for (const HandedSocket& socket : listener.sockets) {
      sockets.push_back({{"slot", socket.slot}, {"fd", socket.fd}});
    }
    json steering = nullptr;
    if (listener.steering) {
      json targets = json::array();
      for (const auto& [slot, fd] : listener.steering->targets) {
        targets.push_back({slot, fd});
      }
      steering = {{"state_fd", listener.steering->state_fd},
                  {"sockets_fd", listener.steering->sockets_fd},
                  {"program_fd", listener.steering->program_fd},
                  {"capacity", listener.steering->capacity},
                  {"targets", targets}};
    }
    listeners.push_back({{"name", listener.name},
                         {"steering", steering},
                         {"bound_address", listener.bound_address},
                         {"backlog", listener.backlog},
                         {"unix_path", listener.unix_path},
                         {"unix_mode", listener.unix_mode},
                         {"per_slot", listener.per_slot},
                         {"sockets", sockets}});
  }
  json slots = json::array();
  for (const HandedSlot& slot : state.slots) {
    slots.push_back({{"state", slot_states.at(static_cast<std::size_t>(slot.state))},
                     {"restarts", slot.restarts},
                     {"failures", slot.failures},
                     {"last_exit", exit_json(slot.last_exit)},
                     {"restart_in_ms", slot.restart_in ? json(slot.restart_in->count()) : json(nullptr)}});
  }
  json workers = json::array();
  for (const HandedWorker& worker : state.workers) {
    workers.push_back({{"slot", worker.id.slot},
                       {"generation", worker.id.generation},
                       {"instance", worker.id.instance},
                       {"pid", worker.pid},
                       {"uptime_s", worker.uptime_s},
                       {"restarts", worker.restarts},
                       {"notify_status", optional_json(worker.notify_status)},
                       {"notify_fd", optional_json(worker.notify_fd)},
                       {"notify_path", optional_json(worker.notify_path)},
                       {"stdout_fd", optional_json(worker.stdout_fd)},
                       {"stderr_fd", optional_json(worker.stderr_fd)},
                       {"cgroup", optional_json(worker.cgroup)}});
  }
  const json document = {{"format", state.format},
                         {"from_version", state.from_version},
                         {"config", state.config},
                         {"config_file", optional_json(state.config_file)},
                         {"executable", state.executable},
                         {"user", user_json(state.user)},
                         {"generation", state.generation},
                         {"next_instance", state.next_instance},
                         {"counters", counters_json(state.counters)},
                         {"listeners", listeners},
                         {"socket_unit", state.socket_unit},
                         {"fd_store", state.fd_store},
                         {"control_fd", optional_json(state.control_fd)},
                         {"control_path", optional_json(state.control_path)},
                         {"client_fd", optional_json(state.client_fd)},
                         {"metrics_fd", optional_json(state.metrics_fd)},
                         {"metrics_address", state.metrics_address},
                         {"notify_directory", optional_json(state.notify_directory)},
                         {"notify_directory_lock", optional_json(state.notify_directory_lock)},
                         {"cgroup_parent", optional_json(state.cgroup_parent)},
                         {"cgroup_parent_fd", optional_json(state.cgroup_parent_fd)},
                         {"cgroup_parent_created", state.cgroup_parent_created},
                         {"slots", slots},
                         {"workers", workers}};
  // Strings that are not UTF-8 (a worker's STATUS=) are written with U+FFFD, never refused.
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

tl::expected<UpgradeState, std::string> read_upgrade_state(std::string_view text) {
  try {
    const json document = json::parse(text);
    UpgradeState state;
    state.format = document.at("format").get<int>();
    if (state.format > UpgradeState::current_format || state.format < 1) {
      return tl::make_unexpected("format " + std::to_string(state.format) + " is not one this clusterd reads (1 to " +
                                 std::to_string(UpgradeState::current_format) + ")");
    }
    state.from_version = document.value("from_version", std::string());
    state.config = document.at("config").get<std::string>();
    state.config_file = optional_of<std::string>(document, "config_file");
    state.executable = document.at("executable").get<std::string>();
    state.user = user_of(document.at("user"));
    state.generation = document.at("generation").get<std::uint64_t>();
    state.next_instance = document.at("next_instance").get<std::uint64_t>();
    state.counters = counters_of(document.value("counters", json::object()));
    for (const json& entry : document.at("listeners")) {
      HandedListener listener;
      listener.name = entry.at("name").get<std::string>();
      listener.bound_address = entry.at("bound_address").get<std::string>();
      listener.backlog = entry.at("backlog").get<int>();
      listener.unix_path = entry.value("unix_path", std::string());
      listener.unix_mode = entry.value("unix_mode", 0U);
      listener.per_slot = entry.value("per_slot", false);
      for (const json& socket : entry.at("sockets")) {
        listener.sockets.push_back({socket.at("slot").get<int>(), socket.at("fd").get<int>()});
      }
      if (const auto found = entry.find("steering"); found != entry.end() && !found->is_null()) {
        ReuseportSteering::Handover steering;
        steering.state_fd = found->at("state_fd").get<int>();
        steering.sockets_fd = found->at("sockets_fd").get<int>();
        steering.program_fd = found->at("program_fd").get<int>();
        steering.capacity = found->at("capacity").get<int>();
        for (const json& target : found->at("targets")) {
          steering.targets.emplace_back(target.at(0).get<int>(), target.at(1).get<int>());
        }
        listener.steering = std::move(steering);
      }
      state.listeners.push_back(std::move(listener));
    }
    state.socket_unit = document.value("socket_unit", false);
    state.fd_store = document.value("fd_store", std::vector<std::string>{});
    state.control_fd = optional_of<int>(document, "control_fd");
    state.control_path = optional_of<std::string>(document, "control_path");
    state.client_fd = optional_of<int>(document, "client_fd");
    state.metrics_fd = optional_of<int>(document, "metrics_fd");
    state.metrics_address = document.value("metrics_address", std::string());
    state.notify_directory = optional_of<std::string>(document, "notify_directory");
    state.notify_directory_lock = optional_of<int>(document, "notify_directory_lock");
    state.cgroup_parent = optional_of<std::string>(document, "cgroup_parent");
    state.cgroup_parent_fd = optional_of<int>(document, "cgroup_parent_fd");
    state.cgroup_parent_created = document.value("cgroup_parent_created", false);
    for (const json& entry : document.at("slots")) {
      HandedSlot slot;
      const auto state_name = entry.at("state").get<std::string>();
      const auto known = std::find(slot_states.begin(), slot_states.end(), state_name);
      if (known == slot_states.end()) {
        return tl::make_unexpected("a slot in an unknown state \"" + state_name + "\"");
      }
      slot.state = static_cast<SlotState>(known - slot_states.begin());
      slot.restarts = entry.value("restarts", 0);
      slot.failures = entry.value("failures", 0);
      slot.last_exit = exit_of(entry.value("last_exit", json(nullptr)));
      if (const auto in = optional_of<Duration::rep>(entry, "restart_in_ms")) {
        slot.restart_in = Duration(*in);
      }
      state.slots.push_back(std::move(slot));
    }
    for (const json& entry : document.at("workers")) {
      HandedWorker worker;
      worker.id = WorkerId{entry.at("slot").get<int>(), entry.at("generation").get<std::uint64_t>(),
                           entry.at("instance").get<std::uint64_t>()};
      worker.pid = entry.at("pid").get<int>();
      worker.uptime_s = entry.value("uptime_s", 0.0);
      worker.restarts = entry.value("restarts", 0);
      worker.notify_status = optional_of<std::string>(entry, "notify_status");
      worker.notify_fd = optional_of<int>(entry, "notify_fd");
      worker.notify_path = optional_of<std::string>(entry, "notify_path");
      worker.stdout_fd = optional_of<int>(entry, "stdout_fd");
      worker.stderr_fd = optional_of<int>(entry, "stderr_fd");
      worker.cgroup = optional_of<std::string>(entry, "cgroup");
      if (worker.pid <= 0 || worker.id.slot < 0 || static_cast<std::size_t>(worker.id.slot) >= state.slots.size()) {
        return tl::make_unexpected("a worker without a pid or slot");
      }
      state.workers.push_back(std::move(worker));
    }
    return state;
  } catch (const json::exception& error) {
    return tl::make_unexpected(std::string("not a state this clusterd reads: ") + error.what());
  }
}

std::vector<int> handed_fds(const UpgradeState& state) {
  std::vector<int> fds;
  const auto add = [&fds](const std::optional<int>& fd) {
    if (fd) {
      fds.push_back(*fd);
    }
  };
  for (const HandedListener& listener : state.listeners) {
    for (const HandedSocket& socket : listener.sockets) {
      fds.push_back(socket.fd);
    }
    if (listener.steering) {
      fds.insert(fds.end(), {listener.steering->state_fd, listener.steering->sockets_fd, listener.steering->program_fd});
    }
  }
  add(state.control_fd);
  add(state.client_fd);
  add(state.metrics_fd);
  add(state.notify_directory_lock);
  add(state.cgroup_parent_fd);
  for (const HandedWorker& worker : state.workers) {
    add(worker.notify_fd);
    add(worker.stdout_fd);
    add(worker.stderr_fd);
  }
  return fds;
}

}  // namespace clusterd
