// The validated configuration: TOML file + command-line overrides → an immutable Config, or every
// Diagnostic found (file, line, column, key, what was expected, what was found).
#pragma once

#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "address.h"
#include "duration.h"

namespace clusterd {

enum class RestartPolicyKind { always, on_failure, never };

struct RestartConfig {
  RestartPolicyKind policy = RestartPolicyKind::always;
  Duration delay = std::chrono::milliseconds(100);
  Duration max_delay = std::chrono::seconds(30);
  double multiplier = 2.0;
  Duration reset_after = std::chrono::seconds(30);
  std::optional<int> burst;  // unset: a slot never fails for good
  Duration interval = std::chrono::seconds(60);
};

struct StopConfig {
  int signal = SIGTERM;
  Duration grace = std::chrono::seconds(30);
};

struct ListenerConfig {
  std::string name;  // "fd3", "fd4", … when not given
  Address address;
  int backlog = 4096;
  unsigned mode = 0660;    // unix sockets only
  bool ipv6_only = false;  // true for [V6]:PORT unless set; false for :PORT (dual stack)
};

enum class LogLevel { trace, debug, info, warn, error };

struct LogConfig {
  LogLevel level = LogLevel::info;
  std::optional<std::string> file;  // unset: stderr
};

struct Config {
  std::string name;
  std::optional<int> workers;  // unset: "auto", resolved from the CPUs at start
  std::vector<std::string> command;
  std::string directory;  // empty: clusterd's working directory
  std::optional<std::string> user;
  std::optional<std::string> group;
  std::vector<ListenerConfig> listeners;
  std::map<std::string, std::string> env;
  RestartConfig restart;
  StopConfig stop;
  LogConfig log;
  std::optional<std::string> file;  // the config file it was read from, as given
};

// One problem with the operator's input. `file` is the config file, or the flag for problems
// found in the command line ("--set restart.delay=5", "--workers"); line and column are 0 then.
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;      // "restart.delay", "listen[1].address"; empty for syntax errors
  std::string message;  // what was expected and what was found

  // `clusterd.toml:12:11: workers: expected an integer 1-4096 or "auto", found -2`, or
  // `--set restart.delay=5: expected a duration with a unit such as "5s", found 5`.
  std::string to_string() const;
};
using Diagnostics = std::vector<Diagnostic>;

// What the command line says about the configuration. Every field overrides the file's key.
struct ConfigOverrides {
  std::optional<std::string> workers;      // -w, --workers
  std::vector<std::string> listen;         // -l, --listen (replace every [[listen]])
  std::optional<std::string> grace;        // --grace
  std::optional<std::string> stop_signal;  // --stop-signal
  std::optional<std::string> name;         // --name
  std::optional<std::string> log_level;    // --log-level
  std::optional<std::string> log_file;     // --log-file
  std::vector<std::string> sets;           // --set KEY=VALUE, in order
  std::vector<std::string> program;        // PROGRAM ARG...: replaces `command`
};

struct ConfigText {
  std::string path;  // as the operator gave it; used in diagnostics
  std::string text;
};

// Pure: parses and validates the file's text (if any) with the overrides applied on top.
// Reports every problem, not just the first.
tl::expected<Config, Diagnostics> build_config(const std::optional<ConfigText>& file,
                                               const ConfigOverrides& overrides);

// Reads `path` (if given) and calls build_config; an unreadable file is a Diagnostic.
tl::expected<Config, Diagnostics> load_config(const std::optional<std::string>& path,
                                              const ConfigOverrides& overrides);

// The effective configuration as TOML that `-c` accepts (what `clusterd check` prints).
std::string to_toml(const Config& config);

// "TERM" / "SIGTERM" / "15" → SIGTERM; nullopt for anything else.
std::optional<int> parse_signal(std::string_view text);
// SIGTERM → "TERM"; an unknown number → its decimal form.
std::string signal_name(int signal);

}  // namespace clusterd
