// The keys this version of the config knows, and the "did you mean" suggestion for one it does not.
#include "config_schema.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

namespace clusterd::config_detail {
namespace {

constexpr std::array<KnownKey, 43> known_keys{{
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
    {"", "control", false},
    {"", "log", false},
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
    {"reload", "batch", false},
    {"recycle", "max_lifetime", true},
    {"recycle", "max_rss", true},
    {"recycle", "check_interval", true},
    {"control", "socket", true},
    {"log", "level", true},
    {"log", "file", true},
}};

// Optimal string alignment distance: a swapped pair of letters ("restrat") counts as one edit,
// which is the typo people make most.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

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
         name == "reload" || name == "recycle" || name == "control" || name == "log";
}

std::string unknown_key_message(std::string_view section, std::string_view name,
                                std::string_view shown_prefix) {
  std::string message = "unknown key \"" + std::string(name) + "\"";
  const KnownKey* best = nullptr;
  std::size_t best_distance = 3;
  for (const auto& known : known_keys) {
    if (known.section != section) {
      continue;
    }
    const auto distance = edit_distance(name, known.name);
    if (distance < best_distance && distance < known.name.size()) {
      best = &known;
      best_distance = distance;
    }
  }
  if (best != nullptr) {
    return message + "; did you mean \"" + std::string(shown_prefix) + std::string(best->name) + "\"?";
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
