// The keys this version of the config knows, and the "did you mean" suggestion for one it does not.
#include "config_schema.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

#include "spelling.h"

namespace clusterd::config_detail {
namespace {

constexpr std::array<KnownKey, 55> known_keys{{
    {"", "name", true},
    {"", "workers", false},
    {"", "command", false},
    {"", "directory", true},
    {"", "user", true},
    {"", "group", true},
    {"", "output", true},
    {"", "inherit_env", false},
    {"", "listen", false},
    {"", "env", false},
    {"", "restart", false},
    {"", "ready", false},
    {"", "stop", false},
    {"", "reload", false},
    {"", "recycle", false},
    {"", "cgroup", false},
    {"", "control", false},
    {"", "log", false},
    {"", "metrics", false},
    {"listen", "name", true},
    {"listen", "address", true},
    {"listen", "backlog", false},
    {"listen", "mode", true},
    {"listen", "ipv6_only", false},
    {"listen", "reuseport", true},
    {"restart", "policy", true},
    {"restart", "delay", true},
    {"restart", "max_delay", true},
    {"restart", "multiplier", false},
    {"restart", "reset_after", true},
    {"restart", "burst", false},
    {"restart", "interval", true},
    {"ready", "mode", true},
    {"ready", "timeout", true},
    {"ready", "min_uptime", true},
    {"ready", "watchdog", true},
    {"stop", "signal", true},
    {"stop", "grace", true},
    {"stop", "dump_signal", true},
    {"stop", "dump_before", true},
    {"reload", "batch", false},
    {"recycle", "max_lifetime", true},
    {"recycle", "max_rss", true},
    {"recycle", "check_interval", true},
    {"cgroup", "mode", true},
    {"output", "mode", true},
    {"output", "file", true},
    {"output", "timestamps", false},
    {"output", "max_size", true},
    {"output", "keep", false},
    {"output", "recent_lines", false},
    {"control", "socket", true},
    {"log", "level", true},
    {"log", "file", true},
    {"metrics", "listen", true},
}};

// Names people write for a key that has another name here: what they meant is the key of the
// same section, not a key of that name in another one (`[metrics] address` is not
// `listen.address`, which a listener's address is).
struct MeantKey {
  std::string_view section;
  std::string_view written;
  std::string_view meant;
};
constexpr std::array<MeantKey, 10> meant_keys{{
    {"metrics", "address", "listen"},
    {"metrics", "bind", "listen"},
    {"metrics", "port", "listen"},
    {"control", "path", "socket"},
    {"control", "address", "socket"},
    {"log", "path", "file"},
    {"output", "path", "file"},
    {"", "cwd", "directory"},
    {"", "working_directory", "directory"},
    {"", "processes", "workers"},
}};

}  // namespace

const KnownKey* find_known(std::string_view section, std::string_view name) {
  for (const auto& known : known_keys) {
    if (known.section == section && known.name == name) {
      return &known;
    }
  }
  return nullptr;
}

bool is_section(std::string_view name) {
  return name == "listen" || name == "env" || name == "restart" || name == "ready" || name == "stop" ||
         name == "reload" || name == "recycle" || name == "cgroup" || name == "control" || name == "log" ||
         name == "metrics" || name == "output";
}

std::string unknown_key_message(std::string_view section, std::string_view name,
                                std::string_view shown_prefix) {
  std::string message = "unknown key \"" + std::string(name) + "\"";
  for (const auto& meant : meant_keys) {
    if (meant.section == section && meant.written == name) {
      return message + "; did you mean \"" + std::string(shown_prefix) + std::string(meant.meant) + "\"?";
    }
  }
  std::vector<std::string_view> names;
  for (const auto& known : known_keys) {
    if (known.section == section) {
      names.push_back(known.name);
    }
  }
  const auto best = closest_word(name, names);
  if (best) {
    return message + "; did you mean \"" + std::string(shown_prefix) + std::string(*best) + "\"?";
  }
  for (const auto& known : known_keys) {
    if (known.section == section || known.name != name) {
      continue;
    }
    if (known.section.empty()) {
      return message + "; did you mean \"" + std::string(name) + "\" at the top level, before any [section]?";
    }
    return message + "; did you mean \"" + std::string(known.section) + "." + std::string(name) + "\"?";
  }
  return message;
}

std::string unknown_section_message(std::string_view section, std::string_view name) {
  std::string message = "unknown key \"" + std::string(section) + "." + std::string(name) + "\"";
  for (const auto& known : known_keys) {
    if (!known.section.empty() && known.name == name && edit_distance(section, known.section) <= 2) {
      return message + "; did you mean \"" + std::string(known.section) + "." + std::string(name) + "\"?";
    }
  }
  return message;
}

}  // namespace clusterd::config_detail
