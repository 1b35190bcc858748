// Parses the command line with CLI11 into CliOptions, or into the text and exit status of
// --help, --version and usage errors.
#include "cli.h"

#include <algorithm>
#include <array>
#include <utility>

#include <CLI/CLI.hpp>

#include "version.h"

namespace clusterd {
namespace {

constexpr std::string_view usage_lines =
    "Usage:\n"
    "  clusterd [OPTIONS] [--] PROGRAM [ARG...]    run PROGRAM as N workers, in the foreground\n"
    "  clusterd check [OPTIONS] [--] [PROGRAM...]  validate config and flags, print the effective config\n"
    "  clusterd status [--json]                    ask a running clusterd for its workers\n"
    "  clusterd reload [--json]                    rolling reload; returns when it finished or was "
    "abandoned\n"
    "  clusterd scale N [--json]                   set the worker count\n"
    "  clusterd stop [--json]                      graceful stop; returns when it is done\n"
    "  clusterd --help | --version\n";

// CLI11's own usage line ("clusterd [OPTIONS] [SUBCOMMAND]") cannot say that PROGRAM ends the
// options, which is the one thing a user of a supervisor must know; the lines above replace it.
class Formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override {
    if (app->get_parent() == nullptr) {
      return "\n" + std::string(usage_lines);
    }
    return CLI::Formatter::make_usage(app, std::move(name));
  }
};

CliExit usage_error(const std::string& message) {
  return CliExit{2, "clusterd: " + message + "\nrun 'clusterd --help' for usage\n"};
}

// CLI11's messages are written for programmers ("--workers: 1 required TEXT missing"); each
// error an operator can cause is rephrased here as one line naming the option.
CliExit from_cli11(const CLI::ParseError& error) {
  const std::string what = error.what();
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr) {
    const auto colon = what.find(':');
    if (colon != std::string::npos && what.starts_with("-")) {
      const std::string option = what.substr(0, colon);
      if (what.find("missing", colon) != std::string::npos) {
        return usage_error(option + ": expected a value");
      }
      return usage_error(option + ": takes no value");
    }
  }
  if (dynamic_cast<const CLI::ConversionError*>(&error) != nullptr) {
    // "Could not convert: --json = maybe": only the flags convert their value, and they take none
    // but CLI11's true/false spellings.
    const auto start = what.find("--");
    const auto end = what.find(" = ");
    if (start != std::string::npos && end != std::string::npos && start < end) {
      return usage_error(what.substr(start, end - start) + ": takes no value");
    }
  }
  return usage_error(what);
}

struct Parsed {
  CliOptions options;
  std::vector<std::string> rest;  // PROGRAM ARG..., or stray arguments of a client subcommand
  // Which options were given, to refuse those the chosen command does not use.
  std::vector<std::string> config_flags_given;
  std::vector<std::string> client_flags_given;
};

// One CLI11 pass over `args`. prefix_command(): the first argument that is neither an option nor
// a subcommand word ends the options, and it and everything after it is left in remaining().
std::variant<Parsed, CliExit> parse_once(const std::vector<std::string>& args) {
  Parsed parsed;
  CliOptions& options = parsed.options;
  ConfigOverrides& overrides = options.overrides;

  CLI::App app{"clusterd: runs a program as N workers that share listening sockets", "clusterd"};
  app.formatter(std::make_shared<Formatter>());
  app.prefix_command();
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("clusterd ") + version + " (commit " + git_commit + ")");

  // A repeated option takes its last value (`-w 2 ... -w 4` is 4), except the repeatable ones.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  app.add_option("-c,--config", options.config_file, "TOML file (config/clusterd.toml documents every key)")
      ->type_name("FILE");
  app.add_option("--name", overrides.name, "names the instance (default: base name of PROGRAM)")
      ->type_name("NAME");

  // The configuration overrides, which only run and check use.
  std::vector<CLI::Option*> config_options;
  const auto config_option = [&config_options](CLI::Option* option) { config_options.push_back(option); };
  config_option(
      app.add_option("-w,--workers", overrides.workers, "worker count 1-4096, or auto (usable CPUs)")
          ->type_name("N|auto"));
  // One value per -l and --set: a vector option would otherwise swallow PROGRAM too.
  config_option(app.add_option("-l,--listen", overrides.listen,
                               "a socket to open once and pass on; repeatable; replaces [[listen]]. "
                               "ADDR: 8000, :8000, HOST:PORT, [V6]:PORT, unix:PATH")
                    ->type_name("[NAME=]ADDR")
                    ->allow_extra_args(false)
                    ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll));
  config_option(app.add_option("--ready", overrides.ready,
                               "when a new worker counts as ready: auto (it sent READY=1 or waits for connections "
                               "on its sockets; the default), exec (exec succeeded), notify (it sent READY=1), "
                               "or a duration such as 2s (it stayed up that long)")
                    ->type_name("MODE"));
  config_option(app.add_option("--ready-timeout", overrides.ready_timeout,
                               "a worker not ready by then is stopped and counts as a failed start "
                               "(default 60s)")
                    ->type_name("DURATION"));
  config_option(
      app.add_option("--grace", overrides.grace, "time a stopping worker gets before SIGKILL (default 30s)")
          ->type_name("DURATION"));
  config_option(app.add_option("--stop-signal", overrides.stop_signal,
                               "the signal that asks a worker to stop (default TERM)")
                    ->type_name("SIGNAL"));
  config_option(app.add_option("--output", overrides.output,
                               "workers' stdout/stderr: inherit (clusterd's own) or prefix (whole lines "
                               "\"[SLOT PID] text\"); default inherit")
                    ->type_name("MODE"));
  config_option(
      app.add_option("--log-level", overrides.log_level, "trace, debug, info, warn or error (default info)")
          ->type_name("LEVEL"));
  config_option(
      app.add_option("--log-file", overrides.log_file, "append clusterd's log there (default stderr)")
          ->type_name("PATH"));
  config_option(app.add_option("--set", overrides.sets,
                               "set any config key, e.g. --set restart.max_delay=10s; repeatable")
                    ->type_name("KEY=VALUE")
                    ->allow_extra_args(false)
                    ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll));

  // For run and check the control socket to open (or none); for a client subcommand the socket of
  // the instance to ask. Moved into the overrides after parsing when the command is run or check.
  app.add_option("--control", options.control,
                 "run, check: the control socket to open, or none (default: NAME.sock in the runtime "
                 "directory); status, reload, scale, stop: the control socket of the instance to ask")
      ->type_name("PATH|none");

  // The client subcommands' options.
  // On the main app, not on each subcommand, so it may stand before the subcommand word too.
  CLI::Option* json =
      app.add_flag("--json", options.json, "print the reply as JSON (status, reload, scale, stop)");

  // fallthrough(): the main app's options are accepted after the subcommand word as well.
  const auto subcommand = [&app](const char* name, const char* description) {
    auto* sub = app.add_subcommand(name, description);
    sub->fallthrough();
    return sub;
  };
  auto* check = subcommand("check", "validate config and flags, print the effective config; exit 0 or 2");
  auto* status = subcommand("status", "ask a running clusterd for its state");
  auto* reload = subcommand("reload", "rolling reload of a running clusterd");
  auto* scale = subcommand("scale", "set the worker count of a running clusterd");
  auto* stop = subcommand("stop", "graceful stop of a running clusterd");
  scale->add_option("N", options.scale_to, "the new worker count, 1-4096");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return CliExit{0, app.help()};
  } catch (const CLI::CallForVersion& version_text) {
    return CliExit{0, std::string(version_text.what()) + "\n"};
  } catch (const CLI::ParseError& error) {
    return from_cli11(error);
  }

  const std::array<std::pair<CLI::App*, Command>, 5> commands{{
      {check, Command::check},
      {status, Command::status},
      {reload, Command::reload},
      {scale, Command::scale},
      {stop, Command::stop},
  }};
  for (const auto& [sub, command] : commands) {
    if (sub->parsed()) {
      options.command = command;
    }
  }
  parsed.rest = app.remaining(true);
  for (const auto* option : config_options) {
    if (option->count() > 0) {
      parsed.config_flags_given.push_back(option->get_name());
    }
  }
  if (json->count() > 0) {
    parsed.client_flags_given.push_back(json->get_name());
  }
  return parsed;
}

const char* command_name(Command command) {
  switch (command) {
    case Command::run:
      return "run";
    case Command::check:
      return "check";
    case Command::status:
      return "status";
    case Command::reload:
      return "reload";
    case Command::scale:
      return "scale";
    case Command::stop:
      return "stop";
  }
  return "";
}

bool is_worker_count(const std::string& text) {
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const int count = std::stoi(text);
  return count >= 1 && count <= 4096;
}

// Refuses what the chosen command would otherwise silently ignore. `after_marker`: `rest` followed
// "--", so it is PROGRAM ARG... as written even where it starts with '-'.
std::optional<CliExit> check_fits(const Parsed& parsed, bool after_marker) {
  const auto& options = parsed.options;
  const bool client = options.command != Command::run && options.command != Command::check;
  if (!parsed.rest.empty()) {
    const std::string& first = parsed.rest.front();
    // With prefix_command() CLI11 leaves an unknown option in remaining() instead of failing; one
    // that stands before PROGRAM was meant for clusterd.
    if (!after_marker && first.size() > 1 && first.front() == '-') {
      return usage_error(first.substr(0, first.find('=')) + ": unknown option");
    }
    if (client) {
      return usage_error(std::string(command_name(options.command)) + ": unexpected argument \"" + first +
                         "\"");
    }
  }
  if (client && !parsed.config_flags_given.empty()) {
    return usage_error(parsed.config_flags_given.front() + ": only for run and check, not " +
                       command_name(options.command));
  }
  if (!client && !parsed.client_flags_given.empty()) {
    return usage_error(parsed.client_flags_given.front() + ": only for status, reload, scale and stop");
  }
  if (options.command == Command::scale) {
    if (!options.scale_to) {
      return usage_error("scale: expected a worker count 1-4096, found nothing");
    }
    if (!is_worker_count(*options.scale_to)) {
      return usage_error("scale: expected a worker count 1-4096, found \"" + *options.scale_to + "\"");
    }
  }
  return std::nullopt;
}

}  // namespace

std::variant<CliOptions, CliExit> parse_cli(const std::vector<std::string>& args) {
  // CLI11 takes a subcommand word after "--" as the subcommand still (`clusterd -- check` would
  // check), and interface §1 promises the opposite. So the arguments before the first "--" are
  // parsed alone: if they hold no PROGRAM, everything after "--" is PROGRAM ARG... as written;
  // if they do, that "--" is one of PROGRAM's own arguments, and all of them are parsed again.
  const auto marker = std::find(args.begin(), args.end(), "--");
  auto result = parse_once(std::vector<std::string>(args.begin(), marker));
  bool after_marker = false;
  if (auto* parsed = std::get_if<Parsed>(&result); parsed != nullptr && marker != args.end()) {
    if (parsed->rest.empty()) {
      parsed->rest.assign(marker + 1, args.end());
      after_marker = true;
    } else {
      result = parse_once(args);
    }
  }
  if (auto* exit = std::get_if<CliExit>(&result)) {
    return std::move(*exit);
  }
  auto& parsed = std::get<Parsed>(result);
  if (auto exit = check_fits(parsed, after_marker)) {
    return std::move(*exit);
  }
  if (parsed.options.command == Command::run || parsed.options.command == Command::check) {
    parsed.options.overrides.program = std::move(parsed.rest);
    parsed.options.overrides.control = std::exchange(parsed.options.control, std::nullopt);
  } else if (parsed.options.control == "none") {
    return usage_error(std::string(command_name(parsed.options.command)) +
                       ": --control none names no instance to ask; give the socket's path");
  }
  return std::move(parsed.options);
}

}  // namespace clusterd
