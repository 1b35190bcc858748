// Writes control replies for people: the status table and one-line answers.
#include "control_render.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "duration.h"
#include "printable.h"

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view none = "-";

// A string as it is, anything else in its JSON form; either way with terminal controls and
// bidirectional marks escaped (printable.h). Every field is someone else's text: a worker's
// STATUS= is the worker's, and the whole reply is the server's.
std::string shown(const Json& value) {
  if (value.is_string()) {
    return printable(value.get_ref<const std::string&>());
  }
  return printable(value.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

std::string text_field(const Json& object, std::string_view key) {
  if (!object.is_object()) {
    return std::string(none);
  }
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) {
    return std::string(none);
  }
  return shown(*found);
}

std::optional<double> number_field(const Json& object, std::string_view key) {
  if (!object.is_object()) {
    return std::nullopt;
  }
  const auto found = object.find(key);
  if (found == object.end() || !found->is_number()) {
    return std::nullopt;
  }
  return found->get<double>();
}

namespace {

std::string human_seconds(std::optional<double> seconds) {
  if (!seconds) {
    return std::string(none);
  }
  return format_duration_human(std::chrono::duration<double>(*seconds));
}

}  // namespace

std::string percent_text(std::optional<double> percent) {
  if (!percent || !std::isfinite(*percent) || *percent < 0) {
    return std::string(none);
  }
  return *percent < 9.95 ? fmt::format("{:.1f}%", *percent) : fmt::format("{:.0f}%", *percent);
}

std::string bytes_text(std::optional<double> bytes) {
  if (!bytes || !std::isfinite(*bytes) || *bytes < 0) {
    return std::string(none);
  }
  constexpr const char* units[] = {"K", "M", "G", "T"};
  double value = *bytes / 1024.0;
  std::size_t unit = 0;
  while (value >= 1023.95 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  return value < 99.95 && unit > 0 ? fmt::format("{:.1f}{}", value, units[unit])
                                   : fmt::format("{:.0f}{}", value, units[unit]);
}

std::optional<double> memory_bytes(const Json& worker) {
  const auto pss = number_field(worker, "pss_bytes");
  return pss ? pss : number_field(worker, "rss_bytes");
}

namespace {

// {"code":1} → "code 1"; {"signal":"KILL"} → "signal KILL"; {"exec_error":"…"} → "exec error: …".
std::string exit_text(const Json& worker) {
  const auto found = worker.find("last_exit");
  if (found == worker.end() || !found->is_object()) {
    return std::string(none);
  }
  if (found->contains("code")) {
    return "code " + text_field(*found, "code");
  }
  if (found->contains("signal")) {
    return "signal " + text_field(*found, "signal");
  }
  if (found->contains("exec_error")) {
    return "exec error: " + text_field(*found, "exec_error");
  }
  return shown(*found);
}

std::string state_text(const Json& worker) {
  std::string state = text_field(worker, "state");
  if (const auto next = number_field(worker, "next_restart_in_s")) {
    state += " (" + human_seconds(next) + ")";
  }
  return state;
}

}  // namespace

std::vector<std::string> table_lines(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t column = 0; column < row.size(); ++column) {
      widths[column] = std::max(widths[column], row[column].size());
    }
  }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t column = 0; column < row.size(); ++column) {
      line += row[column];
      if (column + 1 < row.size()) {
        line.append(widths[column] - row[column].size() + 2, ' ');
      }
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string instance_line(const Json& reply) {
  std::string out = text_field(reply, "name") + ": pid " + text_field(reply, "pid") + ", generation " +
                    text_field(reply, "generation");
  const auto ready = number_field(reply, "workers_ready");
  const auto wanted = number_field(reply, "workers_wanted");
  if (ready && wanted) {
    out += ", " + text_field(reply, "workers_ready") + "/" + text_field(reply, "workers_wanted") + " workers ready";
  } else if (wanted) {
    out += ", " + text_field(reply, "workers_wanted") + " workers wanted";
  }
  if (number_field(reply, "reloading_to")) {
    out += ", reloading to generation " + text_field(reply, "reloading_to");
  }
  if (const auto stopping = reply.find("stopping"); stopping != reply.end() && stopping->is_boolean() &&
                                                    stopping->get<bool>()) {
    out += ", stopping";
  }
  return out + " (clusterd " + text_field(reply, "version") + ")";
}

namespace {

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (const std::string& line : table_lines(rows)) {
    out += line + "\n";
  }
  return out;
}

std::string header(const Json& reply) {
  std::string out = instance_line(reply) + "\n";
  std::string listening;
  const auto listeners = reply.find("listeners");
  if (listeners != reply.end() && listeners->is_array()) {
    for (const Json& listener : *listeners) {
      std::string fd = "fd " + text_field(listener, "fd");
      if (text_field(listener, "reuseport") == "per-slot") {
        const std::string sockets = text_field(listener, "sockets");
        fd += ", per-slot: " + sockets + (sockets == "1" ? " socket" : " sockets");
        if (text_field(listener, "steered") == "false") {
          fd += ", unsteered";
        }
      }
      listening += (listening.empty() ? "" : ", ") + text_field(listener, "name") + " " +
                   text_field(listener, "address") + " (" + fd + ")";
    }
  }
  out += "  listening: " + (listening.empty() ? std::string("nothing") : listening) + "\n";
  const std::string config = text_field(reply, "config");
  out += "  config:    " + (config == none ? std::string("none (command line only)") : config) + "\n";
  return out;
}

}  // namespace

std::vector<std::vector<std::string>> status_rows(const Json& reply) {
  std::vector<std::vector<std::string>> rows{{"SLOT", "PID", "GEN", "STATE", "UPTIME", "CPU", "MEM", "RESTARTS", "LAST EXIT"}};
  const auto workers = reply.find("workers");
  bool any_status = false;
  if (workers != reply.end() && workers->is_array()) {
    for (const Json& worker : *workers) {
      rows.push_back({text_field(worker, "slot"), text_field(worker, "pid"), text_field(worker, "generation"),
                      state_text(worker), human_seconds(number_field(worker, "uptime_s")),
                      percent_text(number_field(worker, "cpu_percent")), bytes_text(memory_bytes(worker)),
                      text_field(worker, "restarts"), exit_text(worker)});
      any_status = any_status || text_field(worker, "notify_status") != none;
    }
  }
  if (any_status && workers != reply.end()) {
    rows.front().push_back("STATUS");
    std::size_t row = 1;
    for (const Json& worker : *workers) {
      rows[row++].push_back(text_field(worker, "notify_status"));
    }
  }
  return rows;
}

std::string render_status(const Json& reply) {
  const std::string out = header(reply);
  const auto rows = status_rows(reply);
  if (rows.size() == 1) {
    return out + "\nno workers\n";
  }
  return out + "\n" + table(rows);
}

std::string render_reply(const Request& request, const Json& reply) {
  if (std::holds_alternative<StatusRequest>(request)) {
    return render_status(reply);
  }
  if (std::holds_alternative<ReloadRequest>(request)) {
    std::string out = "reload finished: generation " + text_field(reply, "generation") + "\n";
    if (const auto keys = reply.find("restart_needed"); keys != reply.end() && keys->is_array()) {
      std::string names;
      for (const Json& key : *keys) {
        names += (names.empty() ? "" : ", ") + shown(key);
      }
      out += "not applied until clusterd restarts: " + names + "\n";
    }
    return out;
  }
  if (std::holds_alternative<UpgradeRequest>(request)) {
    std::string out = "upgraded in place to " + text_field(reply, "version") + " (from " +
                      text_field(reply, "from_version") + "): pid " + text_field(reply, "pid") + ", " +
                      text_field(reply, "workers") + " workers kept\n";
    if (const auto restarted = reply.find("restarted"); restarted != reply.end() && restarted->is_array() &&
                                                        !restarted->empty()) {
      std::string slots;
      for (const Json& slot : *restarted) {
        slots += (slots.empty() ? "" : ", ") + shown(slot);
      }
      out += "not taken over, started anew: slot " + slots + " (the log says why)\n";
    }
    return out;
  }
  if (std::holds_alternative<ScaleRequest>(request)) {
    return "workers wanted: " + text_field(reply, "workers_wanted") + "\n";
  }
  if (std::holds_alternative<MetricsRequest>(request)) {
    const auto text = reply.find("metrics");
    if (text == reply.end() || !text->is_string()) {
      return std::string(none) + "\n";
    }
    // Line by line, so that only what is not printable is escaped and the newlines stay.
    std::string out;
    const std::string& metrics = text->get_ref<const std::string&>();
    for (std::size_t at = 0; at < metrics.size();) {
      const std::size_t end = std::min(metrics.find('\n', at), metrics.size());
      out += printable(std::string_view(metrics).substr(at, end - at)) + "\n";
      at = end + 1;
    }
    return out;
  }
  if (std::holds_alternative<RestartRequest>(request)) {
    const auto slots = reply.find("slots");
    if (slots == reply.end() || !slots->is_array()) {
      return "restarting\n";
    }
    if (slots->size() == 1) {
      return "restarting slot " + shown(slots->front()) + "\n";
    }
    return "restarting slots 0-" + std::to_string(slots->size() - 1) + ", one at a time\n";
  }
  return "";
}

std::string render_list(const std::vector<ListedInstance>& instances) {
  std::vector<std::vector<std::string>> rows{{"NAME", "PID", "GEN", "WORKERS", "STATE", "SOCKET"}};
  for (const ListedInstance& instance : instances) {
    if (!instance.status) {
      rows.push_back({std::string(none), std::string(none), std::string(none), std::string(none), "no answer",
                      instance.socket + " (" + instance.error + ")"});
      continue;
    }
    const Json& status = *instance.status;
    std::string state = "running";
    if (const auto stopping = status.find("stopping"); stopping != status.end() && stopping->is_boolean() &&
                                                       stopping->get<bool>()) {
      state = "stopping";
    } else if (number_field(status, "reloading_to")) {
      state = "reloading";
    }
    rows.push_back({text_field(status, "name"), text_field(status, "pid"), text_field(status, "generation"),
                    text_field(status, "workers_ready") + "/" + text_field(status, "workers_wanted"), state,
                    instance.socket});
  }
  return table(rows);
}

Json list_json(const std::vector<ListedInstance>& instances) {
  Json list = Json::array();
  for (const ListedInstance& instance : instances) {
    Json entry;
    entry["socket"] = instance.socket;
    entry["ok"] = instance.status.has_value();
    if (!instance.status) {
      entry["error"] = instance.error;
    } else {
      for (const char* key : {"name", "pid", "generation", "workers_ready", "workers_wanted", "reloading_to",
                              "stopping"}) {
        if (const auto value = instance.status->find(key); value != instance.status->end()) {
          entry[key] = *value;
        }
      }
    }
    list.push_back(std::move(entry));
  }
  return list;
}

}  // namespace clusterd
