// Reads one TOML value as the type its key expects (string, integer in a range, duration, size, choice,
// user or group, section table), reporting a wrong type or an out-of-range value at the value.
#include "config_reader.h"

#include <algorithm>
#include <limits>

#include "config_format.h"
#include "config_schema.h"

namespace clusterd::config_detail {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), is_name_char);
}

std::optional<std::string> ValueReader::string(const toml::node& node, const std::string& key,
                                               std::string_view expected) {
  if (const auto* s = node.as_string()) {
    return s->get();
  }
  report_.wrong_type(node, key, expected);
  return std::nullopt;
}

std::optional<std::string> ValueReader::nonempty_string(const toml::node& node, const std::string& key,
                                                        std::string_view expected) {
  auto value = string(node, key, expected);
  if (value && value->empty()) {
    report_.bad_value(node, key, expected);
    return std::nullopt;
  }
  return value;
}

std::optional<std::int64_t> ValueReader::integer(const toml::node& node, const std::string& key,
                                                 std::int64_t min, std::int64_t max,
                                                 std::string_view expected) {
  const auto* i = node.as_integer();
  if (i == nullptr) {
    report_.wrong_type(node, key, expected);
    return std::nullopt;
  }
  if (i->get() < min) {
    report_.bad_value(node, key, expected);
    return std::nullopt;
  }
  if (i->get() > max) {
    report_.bad_value(node, key,
                      max == std::numeric_limits<int>::max() ? "an integer of at most " + std::to_string(max)
                                                             : std::string(expected));
    return std::nullopt;
  }
  return i->get();
}

std::optional<Duration> ValueReader::duration(const toml::node& node, const std::string& key, bool positive) {
  const auto* s = node.as_string();
  if (s == nullptr) {
    report_.wrong_type(node, key, duration_expected);
    return std::nullopt;
  }
  const auto value = parse_duration(s->get());
  if (!value) {
    report_.bad_value(node, key, duration_expected);
    return std::nullopt;
  }
  if (positive && value->count() <= 0) {
    report_.bad_value(node, key, "a duration greater than 0");
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> ValueReader::size(const toml::node& node, const std::string& key,
                                               bool positive) {
  const auto* s = node.as_string();
  if (s == nullptr) {
    report_.wrong_type(node, key, size_expected);
    return std::nullopt;
  }
  const auto value = parse_size(s->get());
  if (!value) {
    report_.bad_value(node, key, size_expected);
    return std::nullopt;
  }
  if (positive && *value == 0) {
    report_.bad_value(node, key, "a size greater than 0");
    return std::nullopt;
  }
  return value;
}

std::optional<std::size_t> ValueReader::choice(const toml::node& node, const std::string& key,
                                               const std::vector<std::string_view>& choices) {
  std::string expected;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    expected += i == 0 ? "" : (i + 1 == choices.size() ? " or " : ", ");
    expected += quote(choices[i]);
  }
  const auto value = string(node, key, expected);
  if (!value) {
    return std::nullopt;
  }
  const auto it = std::find(choices.begin(), choices.end(), *value);
  if (it == choices.end()) {
    report_.bad_value(node, key, expected);
    return std::nullopt;
  }
  return static_cast<std::size_t>(it - choices.begin());
}

std::optional<std::string> ValueReader::account(const toml::node& node, const std::string& key,
                                                std::string_view expected) {
  if (const auto* i = node.as_integer()) {
    if (i->get() < 0 || i->get() > std::numeric_limits<std::uint32_t>::max() - 1) {
      report_.bad_value(node, key, expected);
      return std::nullopt;
    }
    return std::to_string(i->get());
  }
  return nonempty_string(node, key, expected);
}

const toml::table* ValueReader::section(const toml::table& root, std::string_view name) {
  const auto* node = root.get(name);
  if (node == nullptr) {
    return nullptr;
  }
  const auto* table = node->as_table();
  if (table == nullptr) {
    report_.wrong_type(*node, std::string(name), "a table [" + std::string(name) + "]");
    return nullptr;
  }
  unknown_keys(*table, name, std::string(name) + ".");
  return table;
}

void ValueReader::unknown_keys(const toml::table& table, std::string_view section,
                               const std::string& prefix) {
  for (auto&& [key, value] : table) {
    if (find_known(section, key.str()) == nullptr) {
      report_.at(key.source(), prefix + std::string(key.str()),
                 unknown_key_message(section, key.str(), prefix));
    }
  }
}

// ----- top-level keys

}  // namespace clusterd::config_detail
