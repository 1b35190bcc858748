// Collects the diagnostics of one build_config call, each at its value's position in the file or
// at the flag the value came from, and hands them out in report order.
#include "config_report.h"

#include <algorithm>
#include <sstream>
#include <tuple>
#include <utility>

#include "config_format.h"

namespace clusterd::config_detail {
namespace {

// A value as the file shows it: strings quoted, floats in their shortest exact form.
std::string as_written(const toml::node& node) {
  if (const auto* s = node.as_string()) {
    return quote(s->get());
  }
  if (const auto* f = node.as_floating_point()) {
    return format_float(f->get());
  }
  std::ostringstream out;
  out << toml::toml_formatter{node};
  return out.str();
}

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "value";
  }
}

}  // namespace

void Reporter::add_flag(const std::string& origin) {
  flag_rank_.try_emplace(origin, static_cast<int>(flag_rank_.size()) + 1);
}

bool Reporter::from_flag(const toml::source_region& where) const {
  return where.path && flag_rank_.count(*where.path) > 0;
}

Diagnostic Reporter::diagnostic_at(const toml::source_region& where, std::string key,
                                   std::string message) const {
  Diagnostic diagnostic;
  diagnostic.file = where.path ? *where.path : file_;
  if (!from_flag(where) && where.path) {
    diagnostic.line = static_cast<int>(where.begin.line);
    diagnostic.column = static_cast<int>(where.begin.column);
  }
  diagnostic.key = std::move(key);
  diagnostic.message = std::move(message);
  return diagnostic;
}

void Reporter::at(const toml::source_region& where, std::string key, std::string message) {
  add(diagnostic_at(where, std::move(key), std::move(message)));
}

void Reporter::warn(Diagnostic diagnostic) {
  warnings_.push_back(diagnostic.to_string());
}

std::vector<std::string> Reporter::take_warnings() {
  return std::exchange(warnings_, {});
}

void Reporter::at_origin(const std::string& origin, std::string key, std::string message) {
  add(Diagnostic{origin, 0, 0, std::move(key), std::move(message)});
}

std::string Reporter::found(const toml::node& node, bool wrong_type) const {
  if (const auto* array = node.as_array()) {
    return array->empty() ? "an empty array" : "an array";
  }
  if (node.is_table()) {
    return "a table";
  }
  if (from_flag(node)) {
    if (const auto* s = node.as_string()) {
      return s->get().empty() ? "\"\"" : s->get();
    }
    return as_written(node);
  }
  return wrong_type ? type_name(node) + " " + as_written(node) : as_written(node);
}

void Reporter::wrong_type(const toml::node& node, std::string key, std::string_view expected) {
  at(node.source(), std::move(key), "expected " + std::string(expected) + ", found " + found(node, true));
}

void Reporter::bad_value(const toml::node& node, std::string key, std::string_view expected) {
  at(node.source(), std::move(key), "expected " + std::string(expected) + ", found " + found(node, false));
}

Diagnostics Reporter::take() {
  std::stable_sort(found_.begin(), found_.end(), [](const Ranked& a, const Ranked& b) {
    return std::tie(a.rank, a.diagnostic.line, a.diagnostic.column) <
           std::tie(b.rank, b.diagnostic.line, b.diagnostic.column);
  });
  Diagnostics out;
  for (auto& ranked : found_) {
    out.push_back(std::move(ranked.diagnostic));
  }
  found_.clear();
  return out;
}

void Reporter::add(Diagnostic diagnostic) {
  const auto it = flag_rank_.find(diagnostic.file);
  const int rank = it == flag_rank_.end() ? 0 : it->second;
  found_.push_back(Ranked{rank, std::move(diagnostic)});
}

}  // namespace clusterd::config_detail
