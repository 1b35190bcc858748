// The command line → what to do (run, check or a client subcommand) and the configuration overrides;
// or, for --help, --version and usage errors, what to print and the exit status.
//
// Pure: parses a vector of strings, prints nothing, touches no file. Whether the overrides make a
// valid configuration is config.h's job (build_config), not this one's.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config.h"
#include "duration.h"

namespace clusterd {

enum class Command { run, check, status, reload, scale, restart, stop, metrics, ls, top, logs, upgrade };

struct CliOptions {
  Command command = Command::run;
  std::optional<std::string> config_file;  // -c, --config
  ConfigOverrides overrides;               // run and check (name also for clients); program = PROGRAM ARG...
  bool json = false;                       // client subcommands only
  bool pss = false;                        // status only: ask for each worker's PSS as well
  std::optional<std::string> scale_to;     // scale N|+N|-N, as written (checked by parse_cli)
  std::optional<std::string> restart_slot; // restart SLOT|all, as written (checked by parse_cli)
  std::optional<std::string> upgrade_binary;  // upgrade --binary PATH
  Duration interval = std::chrono::seconds(1);  // top --interval: how often the view is refreshed
  // logs: the slot (nullopt: all), how many recent lines, whether to follow, with timestamps.
  std::optional<int> logs_slot;
  int logs_lines = 10;
  bool follow = false;
  bool timestamps = false;
  // --control PATH: the instance a client subcommand asks. For run and check, --control PATH|none
  // is the control.socket override and is found in overrides.control instead.
  std::optional<std::string> control;
};

// What to print instead of running: --help and --version (code 0, for stdout), or a usage error
// (code 2, for stderr: one line naming the option, then a hint to run --help). `text` ends in '\n'.
struct CliExit {
  int code = 0;
  std::string text;
};

// `args` are the arguments without argv[0]. Option parsing stops at PROGRAM: what follows it is
// the workers' (`clusterd -w 2 ./srv --port 1`); `--` is needed only before a PROGRAM that starts
// with '-' or is a subcommand word.
std::variant<CliOptions, CliExit> parse_cli(const std::vector<std::string>& args);

}  // namespace clusterd
