// Validates the sections about a worker's life once it runs: [ready], [reload] and [recycle].
#include "config_lifecycle.h"

#include <optional>
#include <string>
#include <string_view>

#include "config_format.h"
#include "duration.h"

namespace clusterd::config_detail {
namespace {

constexpr std::string_view mode_expected =
    "\"auto\", \"exec\", \"notify\" or a duration with a unit such as \"2s\"";

// `text` is ready.mode's string; reset when it is not one of the three forms (after reporting).
void read_mode(const toml::node& node, ValueReader& read, std::optional<std::string>& text,
               ReadyConfig& ready) {
  if (*text == "auto") {
    ready.mode = ReadyMode::automatic;
  } else if (*text == "exec") {
    ready.mode = ReadyMode::exec;
  } else if (*text == "notify") {
    ready.mode = ReadyMode::notify;
  } else if (const auto uptime = parse_duration(*text); !uptime) {
    read.report().bad_value(node, "ready.mode", mode_expected);
    text.reset();
  } else if (uptime->count() <= 0) {
    read.report().bad_value(node, "ready.mode", "\"auto\", \"exec\", \"notify\" or a duration greater than 0");
    text.reset();
  } else {
    ready.mode = ReadyMode::uptime;
    ready.min_uptime = *uptime;
  }
}

// ready.min_uptime: auto mode's wait for a worker whose readiness cannot be seen otherwise. In a
// duration mode the duration is the minimum uptime, and the other modes have none.
void read_min_uptime(const toml::node& node, ValueReader& read, bool mode_given,
                     const std::optional<std::string>& mode_text, ReadyConfig& ready, bool timeout_ok) {
  const auto value = read.duration(node, "ready.min_uptime", true);
  if (!value || !mode_text) {
    return;
  }
  if (ready.mode != ReadyMode::automatic) {
    read.report().at(node.source(), "ready.min_uptime",
                     "only allowed with ready.mode = \"auto\", found ready.mode = " + quote(*mode_text) +
                         (mode_given ? "" : " (the default)") +
                         (ready.mode == ReadyMode::uptime ? "; the mode's duration is the minimum uptime" : ""));
    return;
  }
  if (value->count() <= 0) {
    read.report().bad_value(node, "ready.min_uptime", "a duration greater than 0");
    return;
  }
  if (timeout_ok && *value >= ready.timeout) {
    read.report().bad_value(
        node, "ready.min_uptime",
        "a duration shorter than ready.timeout (" + quote(format_duration(ready.timeout)) + ")");
    return;
  }
  ready.min_uptime = *value;
}

}  // namespace

void read_ready(const toml::table& table, ValueReader& read, ReadyConfig& ready) {
  // The mode as written, for the watchdog's message; nullopt when it is wrong (reported already),
  // so a bad mode does not also make a good watchdog an error.
  std::optional<std::string> mode_text = "auto";
  const auto* mode_node = table.get("mode");
  if (mode_node != nullptr) {
    mode_text = read.string(*mode_node, "ready.mode", mode_expected);
    if (mode_text) {
      read_mode(*mode_node, read, mode_text, ready);
    }
  }

  bool timeout_ok = true;
  if (const auto* node = table.get("timeout")) {
    const auto value = read.duration(*node, "ready.timeout", true);
    timeout_ok = value.has_value();
    ready.timeout = value.value_or(ready.timeout);
  }
  // The ready timeout runs from the fork, the minimum uptime from the exec, which comes later: with
  // min_uptime ≥ timeout no worker could ever be ready, and every start would fail, slowly.
  if (mode_node != nullptr && mode_text && ready.mode == ReadyMode::uptime && timeout_ok &&
      ready.min_uptime >= ready.timeout) {
    read.report().bad_value(
        *mode_node, "ready.mode",
        "a duration shorter than ready.timeout (" + quote(format_duration(ready.timeout)) + ")");
  }

  if (const auto* node = table.get("min_uptime")) {
    read_min_uptime(*node, read, mode_node != nullptr, mode_text, ready, timeout_ok);
  } else if (ready.mode == ReadyMode::automatic && ready.min_uptime >= ready.timeout) {
    // The default minimum uptime under a short ready.timeout: half of it, so a job runner can
    // still be ready in time.
    ready.min_uptime = ready.timeout / 2;
  }

  if (const auto* node = table.get("watchdog")) {
    const auto value = read.duration(*node, "ready.watchdog", true);
    if (value && mode_text && ready.mode != ReadyMode::notify) {
      // The watchdog is kept alive by WATCHDOG=1 datagrams on the worker's NOTIFY_SOCKET, which
      // only notify mode gives it (interface §2.4).
      read.report().at(node->source(), "ready.watchdog",
                       "only allowed with ready.mode = \"notify\", found ready.mode = " + quote(*mode_text) +
                           (mode_node == nullptr ? " (the default)" : ""));
    } else if (value) {
      ready.watchdog = *value;
    }
  }
}

void read_reload(const toml::table& table, ValueReader& read, ReloadConfig& reload) {
  if (const auto* node = table.get("batch")) {
    if (const auto value = read.integer(*node, "reload.batch", 1, 4096, "an integer 1-4096")) {
      reload.batch = static_cast<int>(*value);
    }
  }
}

void read_recycle(const toml::table& table, ValueReader& read, RecycleConfig& recycle) {
  if (const auto* node = table.get("max_lifetime")) {
    recycle.max_lifetime = read.duration(*node, "recycle.max_lifetime", true);
  }
  if (const auto* node = table.get("max_rss")) {
    recycle.max_rss = read.size(*node, "recycle.max_rss", true);
  }
  if (const auto* node = table.get("check_interval")) {
    recycle.check_interval =
        read.duration(*node, "recycle.check_interval", true).value_or(recycle.check_interval);
  }
}

}  // namespace clusterd::config_detail
