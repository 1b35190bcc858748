// Lays out the screen of `clusterd top` from a status reply and the window's size.
#include "top_screen.h"

#include <algorithm>

#include "control_render.h"

namespace clusterd {

using Json = nlohmann::ordered_json;

PoolTotals pool_totals(const Json& reply) {
  PoolTotals totals;
  const auto workers = reply.find("workers");
  if (workers == reply.end() || !workers->is_array()) {
    return totals;
  }
  const auto add = [](std::optional<double>& sum, std::optional<double> value) {
    if (value) {
      sum = sum.value_or(0) + *value;
    }
  };
  for (const Json& worker : *workers) {
    add(totals.cpu_percent, number_field(worker, "cpu_percent"));
    add(totals.memory_bytes, memory_bytes(worker));
    totals.processes += static_cast<int>(number_field(worker, "processes").value_or(0));
  }
  return totals;
}

std::string totals_line(const Json& reply) {
  const PoolTotals totals = pool_totals(reply);
  std::string reload = "none";
  if (const auto stopping = reply.find("stopping");
      stopping != reply.end() && stopping->is_boolean() && stopping->get<bool>()) {
    reload = "none, stopping";
  } else if (number_field(reply, "reloading_to")) {
    reload = "to generation " + text_field(reply, "reloading_to");
  }
  return "workers " + text_field(reply, "workers_ready") + "/" + text_field(reply, "workers_wanted") +
         " ready, CPU " + percent_text(totals.cpu_percent) + ", memory " + bytes_text(totals.memory_bytes) + ", " +
         std::to_string(totals.processes) + (totals.processes == 1 ? " process" : " processes") +
         "; reload: " + reload;
}

std::string fit_to_width(std::string_view text, int columns) {
  int shown = 0;
  for (std::size_t at = 0; at < text.size(); ++at) {
    // A UTF-8 continuation byte (10xxxxxx) belongs to the code point before it.
    if ((static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) {
      continue;
    }
    if (shown == columns) {
      return std::string(text.substr(0, at));
    }
    ++shown;
  }
  return std::string(text);
}

std::vector<std::string> top_screen(const std::optional<Json>& status, std::string_view message,
                                    std::string_view footer, WindowSize size) {
  const int body_rows = std::max(size.rows - 2, 0);
  std::vector<std::string> body;
  if (status) {
    body.push_back(instance_line(*status));
    body.push_back(totals_line(*status));
    body.emplace_back();
    const std::vector<std::string> table = table_lines(status_rows(*status));
    body.insert(body.end(), table.begin(), table.end());
    if (table.size() == 1) {
      body.emplace_back("no workers");
    }
    if (static_cast<int>(body.size()) > body_rows && body_rows > 0) {
      const std::size_t kept = static_cast<std::size_t>(body_rows - 1);
      const std::size_t hidden = body.size() - kept;
      body.resize(kept);
      body.push_back("... " + std::to_string(hidden) + " more " + (hidden == 1 ? "line" : "lines") +
                     " (a taller window shows them)");
    }
  }
  body.resize(static_cast<std::size_t>(body_rows));
  body.emplace_back(message);
  body.emplace_back(footer);
  // Too few rows even for the message and the footer: the footer goes last.
  if (static_cast<int>(body.size()) > size.rows) {
    body.erase(body.begin(), body.end() - std::max(size.rows, 0));
  }
  for (std::string& line : body) {
    line = fit_to_width(line, std::max(size.columns, 0));
  }
  return body;
}

}  // namespace clusterd
