// The effective Config written back as TOML that `-c` accepts (what `clusterd check` prints).
#include "config.h"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "config_format.h"

namespace clusterd {

using config_detail::format_float;
using config_detail::format_mode;
using config_detail::format_size;
using config_detail::quote;

std::string to_toml(const Config& config) {
  std::string out;
  const auto line = [&out](std::string_view key, const std::string& value) {
    out.append(key).append(" = ").append(value).append("\n");
  };
  // A key without a value cannot be written in TOML; a comment still shows that it exists.
  const auto optional_line = [&](std::string_view key, const std::optional<std::string>& value,
                                 std::string_view unset) {
    if (value) {
      line(key, *value);
    } else {
      out.append("# ").append(key).append(": ").append(unset).append("\n");
    }
  };
  const auto bare_key = [](const std::string& key) {
    const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
             c == '-';
    });
    return bare ? key : quote(key);
  };

  line("name", quote(config.name));
  line("workers", config.workers ? std::to_string(*config.workers) : quote("auto"));
  std::string command = "[";
  for (std::size_t i = 0; i < config.command.size(); ++i) {
    command += (i == 0 ? "" : ", ") + quote(config.command[i]);
  }
  line("command", command + "]");
  optional_line("directory", config.directory.empty() ? std::nullopt : std::optional(quote(config.directory)),
                "unset (clusterd's working directory)");
  optional_line("user", config.user ? std::optional(quote(*config.user)) : std::nullopt, "unset");
  optional_line("group", config.group ? std::optional(quote(*config.group)) : std::nullopt,
                "unset (the user's primary group)");
  if (!config.inherit_env) {
    line("inherit_env", "true");
  } else if (config.inherit_env->empty()) {
    line("inherit_env", "false");
  } else {
    std::string names = "[";
    for (std::size_t i = 0; i < config.inherit_env->size(); ++i) {
      names += (i == 0 ? "" : ", ") + quote((*config.inherit_env)[i]);
    }
    line("inherit_env", names + "]");
  }

  for (const auto& listener : config.listeners) {
    out += "\n[[listen]]\n";
    line("name", quote(listener.name));
    // `:PORT` stays `:PORT`: written as bound ("[::]:PORT") it would lose the IPv4 fallback on a
    // host without IPv6 when read back.
    const auto& address = listener.address;
    line("address", quote(address.any_dual_stack ? ":" + std::to_string(address.port) : format_address(address)));
    line("backlog", std::to_string(listener.backlog));
    if (listener.address.family == AddressFamily::unix_path) {
      line("mode", quote(format_mode(listener.mode)));
    }
    if (listener.address.family == AddressFamily::ipv6) {
      line("ipv6_only", listener.ipv6_only ? "true" : "false");
    }
    if (listener.address.family != AddressFamily::unix_path) {
      optional_line("reuseport",
                    listener.reuseport
                        ? std::optional(quote(*listener.reuseport == ReusePort::per_slot ? "per-slot" : "shared"))
                        : std::nullopt,
                    "unset (per-slot where clusterd can steer connections, else shared)");
    }
  }

  out += "\n[env]\n";
  for (const auto& [name, value] : config.env) {
    line(bare_key(name), quote(value));
  }

  const auto& restart = config.restart;
  out += "\n[restart]\n";
  constexpr std::array<std::string_view, 3> policies{"always", "on-failure", "never"};
  line("policy", quote(policies[static_cast<std::size_t>(restart.policy)]));
  line("delay", quote(format_duration(restart.delay)));
  line("max_delay", quote(format_duration(restart.max_delay)));
  line("multiplier", format_float(restart.multiplier));
  line("reset_after", quote(format_duration(restart.reset_after)));
  optional_line("burst", restart.burst ? std::optional(std::to_string(*restart.burst)) : std::nullopt,
                "unset (off)");
  line("interval", quote(format_duration(restart.interval)));

  const auto& ready = config.ready;
  out += "\n[ready]\n";
  switch (ready.mode) {
    case ReadyMode::automatic:
      line("mode", quote("auto"));
      line("min_uptime", quote(format_duration(ready.min_uptime)));
      break;
    case ReadyMode::exec:
      line("mode", quote("exec"));
      break;
    case ReadyMode::notify:
      line("mode", quote("notify"));
      break;
    case ReadyMode::uptime:
      line("mode", quote(format_duration(ready.min_uptime)));
      break;
  }
  line("timeout", quote(format_duration(ready.timeout)));
  const auto optional_duration = [](const std::optional<Duration>& value) {
    return value ? std::optional(quote(format_duration(*value))) : std::nullopt;
  };
  optional_line("watchdog", optional_duration(ready.watchdog), "unset (off)");

  out += "\n[stop]\n";
  line("signal", quote(signal_name(config.stop.signal)));
  line("grace", quote(format_duration(config.stop.grace)));
  optional_line("dump_signal",
                config.stop.dump_signal ? std::optional(quote(signal_name(*config.stop.dump_signal))) : std::nullopt,
                "unset (no stack dump before SIGKILL)");
  if (config.stop.dump_signal) {
    optional_line("dump_before", optional_duration(config.stop.dump_before),
                  "unset (5s, or half of grace when that is shorter)");
  }

  out += "\n[reload]\n";
  line("batch", std::to_string(config.reload.batch));

  const auto& recycle = config.recycle;
  out += "\n[recycle]\n";
  optional_line("max_lifetime", optional_duration(recycle.max_lifetime), "unset (off)");
  optional_line("max_rss",
                recycle.max_rss ? std::optional(quote(format_size(*recycle.max_rss))) : std::nullopt,
                "unset (off)");
  line("check_interval", quote(format_duration(recycle.check_interval)));

  // The other keys need prefix mode: written beside "inherit" they would not read back.
  const auto& output = config.output;
  out += "\n[output]\n";
  line("mode", quote(output.mode == OutputMode::prefix ? "prefix" : "inherit"));
  if (output.mode == OutputMode::prefix) {
    optional_line("file", output.file ? std::optional(quote(*output.file)) : std::nullopt,
                  "unset (clusterd's stdout and stderr)");
    line("timestamps", output.timestamps ? "true" : "false");
    if (output.file) {
      optional_line("max_size", output.max_size ? std::optional(quote(format_size(*output.max_size))) : std::nullopt,
                    "unset (never rotated by size; SIGUSR1 reopens the file)");
      line("keep", std::to_string(output.keep));
    }
    line("recent_lines", std::to_string(output.recent_lines));
  }

  out += "\n[cgroup]\n";
  constexpr std::array<std::string_view, 3> cgroup_modes{"auto", "on", "off"};
  line("mode", quote(cgroup_modes[static_cast<std::size_t>(config.cgroup.mode)]));

  out += "\n[control]\n";
  if (!config.control.enabled) {
    line("socket", quote("none"));
  } else {
    optional_line("socket", config.control.socket ? std::optional(quote(*config.control.socket)) : std::nullopt,
                  "unset (NAME.sock in $RUNTIME_DIRECTORY, else in $XDG_RUNTIME_DIR/clusterd, else in "
                  "/run/clusterd as root or /tmp/clusterd-UID)");
  }

  out += "\n[metrics]\n";
  optional_line("listen",
                config.metrics.listen ? std::optional(quote(format_address(*config.metrics.listen))) : std::nullopt,
                "unset (no HTTP endpoint; `clusterd metrics` still answers)");

  out += "\n[log]\n";
  constexpr std::array<std::string_view, 5> levels{"trace", "debug", "info", "warn", "error"};
  line("level", quote(levels[static_cast<std::size_t>(config.log.level)]));
  optional_line("file", config.log.file ? std::optional(quote(*config.log.file)) : std::nullopt,
                "unset (stderr)");
  return out;
}

}  // namespace clusterd
