// Parses control request lines and builds and parses the JSON reply lines (interface §4.5).
#include "control_protocol.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "config.h"
#include "errno_text.h"

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view expected_requests =
    "expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade";

// Every reply goes through here. error_handler_t::replace: a worker's STATUS= text or a path is
// whatever bytes it is, and a reply must still be written (the default handler throws).
std::string dump(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Printable ASCII and tabs only: the requests are plain words, and anything else is shown back
// to the sender only as "not plain text", never echoed.
bool is_plain_text(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte == '\t' || (byte >= 0x20 && byte < 0x7f);
  });
}

// A word of the request as shown in an error: quoted, cut at 40 characters.
std::string shown(std::string_view word) {
  constexpr std::size_t limit = 40;
  if (word.size() > limit) {
    return "\"" + std::string(word.substr(0, limit)) + "...\"";
  }
  return "\"" + std::string(word) + "\"";
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    const std::size_t start = line.find_first_not_of(" \t", at);
    if (start == std::string_view::npos) {
      break;
    }
    const std::size_t end = std::min(line.find_first_of(" \t", start), line.size());
    words.push_back(line.substr(start, end - start));
    at = end;
  }
  return words;
}

std::optional<int> worker_count(std::string_view text) {
  if (text.empty() || text.size() > 4 || !std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return std::nullopt;
  }
  int count = 0;
  for (const char c : text) {
    count = count * 10 + (c - '0');
  }
  if (count < 1 || count > 4096) {
    return std::nullopt;
  }
  return count;
}

std::optional<int> slot_number(std::string_view text) {
  if (text == "0") {
    return 0;
  }
  if (text.starts_with('0')) {
    return std::nullopt;  // one spelling per slot
  }
  const auto count = worker_count(text);
  if (!count || *count > 4095) {
    return std::nullopt;
  }
  return *count;
}

// `logs [slot N] [lines N] [follow]`, each at most once, in any order.
tl::expected<Request, std::string> parse_logs(const std::vector<std::string_view>& words) {
  LogsRequest logs;
  bool slot_seen = false;
  bool lines_seen = false;
  for (std::size_t at = 1; at < words.size(); ++at) {
    const std::string_view word = words[at];
    if (word == "follow" && !logs.follow) {
      logs.follow = true;
      continue;
    }
    if ((word == "slot" && !slot_seen) || (word == "lines" && !lines_seen)) {
      const std::string_view value = at + 1 < words.size() ? words[at + 1] : std::string_view();
      ++at;
      if (word == "slot") {
        slot_seen = true;
        logs.slot = slot_number(value);
        if (!logs.slot) {
          return tl::make_unexpected("logs: slot: expected a slot number 0-4095, found " +
                                     (value.empty() ? std::string("nothing") : shown(value)));
        }
        continue;
      }
      lines_seen = true;
      const bool digits = !value.empty() && value.size() <= 6 &&
                          std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
      const int count = digits ? std::atoi(std::string(value).c_str()) : -1;
      if (count < 0 || count > LogsRequest::max_lines) {
        return tl::make_unexpected("logs: lines: expected a count 0-" + std::to_string(LogsRequest::max_lines) +
                                   ", found " + (value.empty() ? std::string("nothing") : shown(value)));
      }
      logs.lines = count;
      continue;
    }
    return tl::make_unexpected("logs: unexpected " + shown(word) + "; expected logs [slot N] [lines N] [follow]");
  }
  return logs;
}

// The state of a slot that has no process serving it; nullptr when it is not waiting for one.
const char* idle_slot_state(SlotState state) {
  switch (state) {
    case SlotState::backoff:
      return "backoff";
    case SlotState::failed:
      return "failed";
    case SlotState::done:
      return "exited";
    case SlotState::running:
      return nullptr;
  }
  return nullptr;
}

Json seconds(Duration duration) { return static_cast<double>(duration.count()) / 1000.0; }

// Fields every entry of a slot shares: its restarts, last exit and next restart.
void add_slot_fields(Json& entry, const SlotStatus& slot) {
  entry["restarts"] = slot.restarts;
  entry["last_exit"] = slot.last_exit ? exit_to_json(*slot.last_exit) : Json(nullptr);
  entry["next_restart_in_s"] = slot.next_restart_in ? seconds(*slot.next_restart_in) : Json(nullptr);
}

// To `places` decimals, as the nearest double (so the JSON shows 12.3, not 12.300000000000001).
Json rounded(double value, int places) {
  const double scale = std::pow(10.0, places);
  return std::round(value * scale) / scale;
}

// The cost fields of one entry: null without a process, or for one that could not be read.
void add_cost_fields(Json& entry, const WorkerCost* cost, std::optional<double> started_at) {
  entry["cpu_percent"] = cost != nullptr ? Json(rounded(cost->cpu_percent, 1)) : Json(nullptr);
  entry["cpu_s"] = cost != nullptr ? Json(rounded(cost->tree.cpu_seconds, 2)) : Json(nullptr);
  entry["rss_bytes"] = cost != nullptr ? Json(cost->tree.rss_bytes) : Json(nullptr);
  entry["pss_bytes"] = cost != nullptr && cost->tree.pss_bytes ? Json(*cost->tree.pss_bytes) : Json(nullptr);
  entry["processes"] = cost != nullptr ? Json(cost->tree.processes) : Json(nullptr);
  if (cost != nullptr && cost->cgroup) {
    const CgroupCost& cgroup = *cost->cgroup;
    entry["cgroup"] = {{"path", cgroup.path},
                       {"cpu_s", rounded(cgroup.cpu_seconds, 2)},
                       {"processes", cgroup.processes},
                       {"memory_bytes", cgroup.memory_bytes ? Json(*cgroup.memory_bytes) : Json(nullptr)}};
  } else {
    entry["cgroup"] = nullptr;
  }
  entry["started_at"] = started_at ? Json(rounded(*started_at, 3)) : Json(nullptr);
}

Json workers_json(const InstanceStatus& status) {
  const StatusSnapshot& snapshot = status.snapshot;
  Json workers = Json::array();
  for (const SlotStatus& slot : snapshot.slots) {
    bool served = false;
    for (const WorkerStatus& worker : slot.workers) {
      Json entry;
      entry["slot"] = slot.slot;
      entry["pid"] = worker.pid > 0 ? Json(worker.pid) : Json(nullptr);
      entry["generation"] = worker.id.generation;
      entry["state"] = state_name(worker.state);
      entry["uptime_s"] = worker.pid > 0 ? seconds(worker.uptime) : Json(nullptr);
      add_slot_fields(entry, slot);
      entry["notify_status"] = worker.notify_status ? Json(*worker.notify_status) : Json(nullptr);
      // Only while a SIGKILL is pending: the entry of a worker that is not stopping stays as it was.
      if (worker.kill_in) {
        entry["kill_in_s"] = seconds(*worker.kill_in);
      }
      add_cost_fields(entry, status.cost_of(worker),
                      worker.pid > 0 ? std::optional(status.started_at(worker)) : std::nullopt);
      workers.push_back(std::move(entry));
      served = served || worker.state != WorkerState::stopping;
    }
    // A stopping worker (an old one of a reload, say) does not serve the slot: its backoff or
    // failure is still what an operator must see.
    const char* idle_state = idle_slot_state(slot.state);
    if (idle_state != nullptr && !served) {
      Json entry;
      entry["slot"] = slot.slot;
      entry["pid"] = nullptr;
      entry["generation"] = nullptr;
      entry["state"] = idle_state;
      entry["uptime_s"] = nullptr;
      add_slot_fields(entry, slot);
      entry["notify_status"] = nullptr;
      add_cost_fields(entry, nullptr, std::nullopt);
      workers.push_back(std::move(entry));
    }
  }
  return workers;
}

}  // namespace

tl::expected<Request, std::string> parse_request(std::string_view line) {
  if (line.size() > max_request_line) {
    return tl::make_unexpected("request line longer than " + std::to_string(max_request_line) + " bytes");
  }
  if (line.ends_with('\r')) {
    line.remove_suffix(1);
  }
  if (!is_plain_text(line)) {
    return tl::make_unexpected("request is not plain text; " + std::string(expected_requests));
  }
  const std::vector<std::string_view> words = split_words(line);
  if (words.empty()) {
    return tl::make_unexpected("empty request; " + std::string(expected_requests));
  }
  const std::string_view verb = words.front();
  // The argument of scale and restart, as shown in an error: everything after the verb.
  const auto argument_text = [&]() -> std::string {
    if (words.size() == 1) {
      return "nothing";
    }
    const auto arguments = line.substr(static_cast<std::size_t>(words[1].data() - line.data()));
    return shown(arguments.substr(0, arguments.find_last_not_of(" \t") + 1));
  };
  if (verb == "scale") {
    std::string_view word = words.size() == 2 ? words[1] : std::string_view{};
    const bool relative = word.starts_with('+') || word.starts_with('-');
    const auto count = worker_count(relative ? word.substr(1) : word);
    if (!count) {
      return tl::make_unexpected("scale: expected a worker count 1-4096, or +N or -N to change it by N, found " +
                                 argument_text());
    }
    return ScaleRequest{word.starts_with('-') ? -*count : *count, relative};
  }
  if (verb == "restart") {
    if (words.size() == 2 && words[1] == "all") {
      return RestartRequest{};
    }
    const auto slot = words.size() == 2 ? slot_number(words[1]) : std::nullopt;
    if (!slot) {
      return tl::make_unexpected("restart: expected a slot number 0-4095 or all, found " + argument_text());
    }
    return RestartRequest{*slot};
  }
  if (verb == "logs") {
    return parse_logs(words);
  }
  if (verb == "upgrade") {
    if (words.size() > 2 || (words.size() == 2 && !words[1].starts_with('/'))) {
      return tl::make_unexpected("upgrade: expected nothing or the binary's absolute path, found " + argument_text());
    }
    return UpgradeRequest{words.size() == 2 ? std::optional<std::string>(words[1]) : std::nullopt};
  }
  if (verb == "status" && words.size() == 2 && words[1] == "pss") {
    return StatusRequest{true};
  }
  std::optional<Request> request;
  if (verb == "status") {
    request = StatusRequest{};
  } else if (verb == "reload") {
    request = ReloadRequest{};
  } else if (verb == "stop") {
    request = StopRequest{};
  } else if (verb == "metrics") {
    request = MetricsRequest{};
  } else {
    return tl::make_unexpected("unknown request " + shown(verb) + "; " + std::string(expected_requests));
  }
  if (words.size() > 1) {
    const std::string_view only = verb == "status" ? " but pss" : "";
    return tl::make_unexpected(std::string(verb) + " takes no argument" + std::string(only) + ", found " +
                               shown(words[1]));
  }
  return *request;
}

std::string request_line(const Request& request) {
  if (const auto* scale = std::get_if<ScaleRequest>(&request)) {
    const std::string sign = !scale->relative ? "" : scale->workers < 0 ? "-" : "+";
    return "scale " + sign + std::to_string(std::abs(scale->workers));
  }
  if (const auto* restart = std::get_if<RestartRequest>(&request)) {
    return "restart " + (restart->slot ? std::to_string(*restart->slot) : std::string("all"));
  }
  if (std::holds_alternative<ReloadRequest>(request)) {
    return "reload";
  }
  if (std::holds_alternative<StopRequest>(request)) {
    return "stop";
  }
  if (std::holds_alternative<MetricsRequest>(request)) {
    return "metrics";
  }
  if (const auto* upgrade = std::get_if<UpgradeRequest>(&request)) {
    return upgrade->binary ? "upgrade " + *upgrade->binary : "upgrade";
  }
  if (const auto* logs = std::get_if<LogsRequest>(&request)) {
    std::string line = "logs";
    if (logs->slot) {
      line += " slot " + std::to_string(*logs->slot);
    }
    if (logs->lines != LogsRequest::default_lines) {
      line += " lines " + std::to_string(logs->lines);
    }
    return logs->follow ? line + " follow" : line;
  }
  return std::get<StatusRequest>(request).pss ? "status pss" : "status";
}

Json exit_to_json(const WorkerExit& exit) {
  Json json = Json::object();
  if (const auto* code = std::get_if<ExitCode>(&exit)) {
    json["code"] = code->code;
  } else if (const auto* killed = std::get_if<KilledBySignal>(&exit)) {
    json["signal"] = signal_name(killed->signal);
  } else if (const auto* failure = std::get_if<StartFailure>(&exit)) {
    // The step is named only when it is not exec itself (`chdir: No such file or directory`).
    const std::string reason = errno_text(failure->error);
    json["exec_error"] = failure->step == "exec" ? reason : failure->step + ": " + reason;
  }
  return json;
}

const WorkerCost* InstanceStatus::cost_of(const WorkerStatus& worker) const {
  const auto found = worker.pid > 0 ? costs.find(worker.pid) : costs.end();
  return found == costs.end() ? nullptr : &found->second;
}

double InstanceStatus::started_at(const WorkerStatus& worker) const {
  return now_unix - std::chrono::duration<double>(worker.uptime).count();
}

const char* state_name(WorkerState state) {
  switch (state) {
    case WorkerState::starting:
      return "starting";
    case WorkerState::ready:
      return "ready";
    case WorkerState::stopping:
      return "stopping";
  }
  return "starting";
}

std::string status_reply(const InstanceStatus& status) {
  const StatusSnapshot& snapshot = status.snapshot;
  Json json;
  json["ok"] = true;
  json["name"] = status.name;
  json["pid"] = status.pid;
  json["version"] = status.version;
  json["generation"] = snapshot.generation;
  json["config"] = status.config ? Json(*status.config) : Json(nullptr);
  json["workers_wanted"] = snapshot.workers_wanted;
  json["workers_ready"] = snapshot.workers_ready;
  json["reloading_to"] = snapshot.reloading_to ? Json(*snapshot.reloading_to) : Json(nullptr);
  json["stopping"] = snapshot.stopping;
  Json listeners = Json::array();
  for (const ListenerStatus& listener : status.listeners) {
    Json entry{{"name", listener.name}, {"address", listener.address}, {"fd", listener.fd}};
    if (listener.per_slot) {
      // Only for per-slot listeners: a shared listener's entry stays what it always was.
      entry["reuseport"] = "per-slot";
      entry["sockets"] = listener.sockets;
      entry["steered"] = listener.steered;
    }
    listeners.push_back(std::move(entry));
  }
  json["listeners"] = std::move(listeners);
  json["workers"] = workers_json(status);
  return dump(json);
}

std::string reload_reply(bool ok, std::uint64_t generation, std::string_view error,
                         const std::vector<std::string>& restart_needed) {
  Json json;
  json["ok"] = ok;
  if (!ok) {
    json["error"] = error;
  }
  json["generation"] = generation;
  if (!restart_needed.empty()) {
    json["restart_needed"] = restart_needed;
  }
  return dump(json);
}

std::string metrics_reply(std::string_view text) {
  Json json;
  json["ok"] = true;
  json["metrics"] = text;
  return dump(json);
}

std::string scale_reply(int workers_wanted) {
  Json json;
  json["ok"] = true;
  json["workers_wanted"] = workers_wanted;
  return dump(json);
}

std::string restart_reply(const std::vector<int>& slots) {
  Json json;
  json["ok"] = true;
  json["slots"] = slots;
  return dump(json);
}

std::string logs_reply(const std::vector<std::string>& records) {
  std::string reply = R"({"ok":true,"lines":[)";
  for (const std::string& record : records) {
    reply += record;
    reply += ',';
  }
  if (!records.empty()) {
    reply.pop_back();
  }
  return reply + "]}";
}

std::string log_line_record(int slot, int pid, int stream, double time, std::string_view text) {
  Json line;
  line["slot"] = slot;
  line["pid"] = pid;
  line["stream"] = stream == 2 ? "stderr" : "stdout";
  line["time"] = rounded(time, 3);
  line["text"] = text;
  return dump(line);
}

std::string logs_end_record() { return dump(Json{{"ok", true}, {"end", "clusterd stopped"}}); }

std::string ok_reply() { return dump(Json{{"ok", true}}); }

std::string upgrade_reply(int pid, std::string_view version, std::string_view from_version, int workers,
                          const std::vector<int>& restarted) {
  Json json;
  json["ok"] = true;
  json["pid"] = pid;
  json["version"] = version;
  json["from_version"] = from_version;
  json["workers"] = workers;
  json["restarted"] = restarted;
  return dump(json);
}

std::string error_reply(std::string_view error) {
  Json json;
  json["ok"] = false;
  json["error"] = error;
  return dump(json);
}

tl::expected<Json, std::string> parse_reply(std::string_view line) {
  Json json = Json::parse(line, nullptr, false);
  if (json.is_discarded()) {
    return tl::make_unexpected(std::string("the reply is not JSON"));
  }
  if (!json.is_object() || !json.contains("ok") || !json["ok"].is_boolean()) {
    return tl::make_unexpected(std::string("the reply has no \"ok\": true or false"));
  }
  if (!json["ok"].get<bool>() && !(json.contains("error") && json["error"].is_string())) {
    return tl::make_unexpected(std::string("the reply says \"ok\": false without an \"error\""));
  }
  return json;
}

}  // namespace clusterd
