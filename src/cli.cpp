// Parses the command line with CLI11 into CliOptions, or into the text and exit status of
// --help, --version and usage errors.
#include "cli.h"

#include <algorithm>
#include <array>
#include <utility>

#include <CLI/CLI.hpp>

#include "control_protocol.h"
#include "spelling.h"
#include "version.h"

namespace clusterd {
namespace {

// Each refresh costs clusterd a /proc walk per worker process: ten a second is plenty for eyes.
constexpr Duration min_top_interval{100};

constexpr std::string_view usage_lines =
    "Usage:\n"
    "  clusterd [OPTIONS] [--] PROGRAM [ARG...]    run PROGRAM as N workers, in the foreground\n"
    "  clusterd check [OPTIONS] [--] [PROGRAM...]  validate config and flags, print the effective config\n"
    "  clusterd status [--json] [--pss]            ask a running clusterd for its workers\n"
    "  clusterd reload [--json]                    rolling reload; returns when it finished or was "
    "abandoned\n"
    "  clusterd scale N|+N|-N [--json]             set the worker count, or change it by N\n"
    "  clusterd restart SLOT|all [--json]          replace a slot's worker now, new one first; clears its "
    "backoff\n"
    "  clusterd stop [--json]                      graceful stop; returns when it is done\n"
    "  clusterd upgrade [--binary PATH] [--json]   replace clusterd's binary in place, keeping every worker\n"
    "  clusterd ls [--json]                        every instance found in the runtime directories\n"
    "  clusterd top [--interval DURATION]          live view of the workers; keys reload, scale, restart\n"
    "  clusterd logs [--slot N] [-n LINES] [-f]    workers' recent output lines, and new ones with -f\n"
    "  clusterd COMMAND --help                     the options of one command\n"
    "  clusterd --help | --version\n";

// A client subcommand's --help: what it does and the options it takes. CLI11's own would list
// none of them, since they are the main command's options (so they may stand on either side of
// the subcommand word).
struct ClientHelp {
  Command command;
  std::string_view usage;
  std::string_view what;
};
constexpr std::array<ClientHelp, 10> client_help{{
    {Command::status, "clusterd status [--pss] [OPTIONS]",
     "Asks a running clusterd for its state: one line per worker process, and a slot in backoff or failed.\n"
     "MEM is each worker tree's resident memory (RSS); with --pss its proportional memory (PSS: pages\n"
     "shared with other processes split between them), which takes clusterd about twice as long to read.\n"},
    {Command::reload, "clusterd reload [OPTIONS]",
     "Rolling reload: reads the config file again and replaces the workers, new ones first.\n"
     "Returns when it finished (exit 0) or was refused or abandoned (exit 1, the reason on stderr).\n"},
    {Command::scale, "clusterd scale N|+N|-N [OPTIONS]",
     "Sets the worker count to N (1-4096), or changes it by N; returns at once.\n"},
    {Command::restart, "clusterd restart SLOT|all [OPTIONS]",
     "Replaces the worker of slot SLOT (or of every slot, one at a time) now: the new worker takes over\n"
     "once ready, and the old one is stopped gracefully. A slot in backoff or failed starts at once.\n"
     "Either way the slot's restart count and last exit are cleared. Returns at once.\n"},
    {Command::stop, "clusterd stop [OPTIONS]",
     "Graceful stop: every worker gets the stop signal and its grace; returns when clusterd has exited.\n"},
    {Command::upgrade, "clusterd upgrade [--binary PATH] [OPTIONS]",
     "Replaces the running clusterd's binary without touching a worker: clusterd executes the binary\n"
     "(default: the file it was started from, as installed now) in its own process and hands it its\n"
     "sockets and workers. Returns when the new binary answers (exit 0), or with why the running one\n"
     "goes on (exit 1): a worker is not ready, the binary is unusable, or it refused the state.\n"},
    {Command::metrics, "clusterd metrics [OPTIONS]",
     "Prints the instance's metrics in the Prometheus text format: workers wanted and ready, restarts,\n"
     "exits by reason, reloads, and each worker's CPU and memory (read now).\n"},
    {Command::ls, "clusterd ls [--json]",
     "Lists every clusterd this user can reach in the runtime directories, one line each.\n"
     "An instance whose control.socket is elsewhere is not listed: ask it with --control PATH.\n"},
    {Command::top, "clusterd top [--interval DURATION] [OPTIONS]",
     "A live view of the workers in the terminal, like htop: state, pid, CPU, memory, uptime, restarts\n"
     "and last exit per slot, and the pool's totals, refreshed every DURATION (default 1s, at least 100ms).\n"
     "Keys: q quit; r reload; + one worker more; - one fewer; R, a slot number, y: restart that slot.\n"
     "Exits 0 when you quit, 1 when clusterd goes away, 2 when stdin or stdout is not a terminal.\n"},
    {Command::logs, "clusterd logs [--slot N] [-n LINES] [-f] [-t] [OPTIONS]",
     "Prints the last LINES lines the workers wrote (default 10; of slot N, or of every slot), as\n"
     "\"[SLOT PID] text\", stdout and stderr together; with -f, then every new line until clusterd stops\n"
     "or you press Ctrl-C. Needs output = \"prefix\", where clusterd keeps output.recent_lines per slot.\n"
     "A follower that reads too slowly is cut off (exit 1) rather than ever slowing clusterd or a worker.\n"},
}};

constexpr std::string_view client_options =
    "  --json               print the reply as JSON\n"
    "  --name NAME          ask the instance named NAME\n"
    "  --control PATH       ask the instance whose control socket is PATH\n"
    "  -c,--config FILE     ask the instance FILE configures (by its name and control.socket)\n"
    "  -h,--help            print this help\n"
    "Without --name, --control or -c: the one instance found in the runtime directories.\n";

std::string help_of(Command command) {
  for (const ClientHelp& help : client_help) {
    if (help.command == command) {
      std::string text = "Usage: " + std::string(help.usage) + "\n\n" + std::string(help.what) + "\n";
      if (command == Command::ls) {
        return text + "Options:\n  --json               print the list as JSON\n  -h,--help            print this help\n";
      }
      if (command == Command::top) {
        return text + "Options:\n  --interval DURATION  how often the view is refreshed: 1s, 250ms (default 1s)\n" +
               std::string(client_options.substr(client_options.find("  --name")));
      }
      if (command == Command::logs) {
        return text +
               "Options:\n"
               "  --slot N             only slot N's lines\n"
               "  -n,--lines LINES     how many recent lines: 0-100000 (default 10)\n"
               "  -f,--follow          then print new lines as they come\n"
               "  -t,--timestamps      each line after the local time clusterd read it\n" +
               std::string(client_options);
      }
      if (command == Command::upgrade) {
        return text +
               "Options:\n"
               "  --binary PATH        the binary to run, an absolute path (default: clusterd's own, as installed)\n" +
               std::string(client_options);
      }
      const std::string_view pss =
          command == Command::status ? "  --pss                MEM is PSS, and --json has pss_bytes\n" : "";
      return text + "Options:\n" + std::string(pss) + std::string(client_options);
    }
  }
  return {};
}


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
  std::optional<std::string> interval;  // top --interval, as written
  std::vector<std::string> rest;  // PROGRAM ARG..., or stray arguments of a client subcommand
  // Which options were given, to refuse those the chosen command does not use.
  std::vector<std::string> config_flags_given;
  std::vector<std::string> client_flags_given;
  // Every long option the command line knows, for "did you mean" after an unknown one.
  std::vector<std::string> long_options;
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
                 "directory); the client commands: the control socket of the instance to ask")
      ->type_name("PATH|none");

  // The client subcommands' options.
  // On the main app, not on each subcommand, so it may stand before the subcommand word too.
  CLI::Option* json =
      app.add_flag("--json", options.json, "print the reply as JSON (the client commands)");
  app.add_flag("--pss", options.pss, "status: each worker's proportional memory (PSS) as well");
  CLI::Option* interval = app.add_option("--interval", parsed.interval, "top: how often the view is refreshed "
                                         "(default 1s, at least 100ms)")
                              ->type_name("DURATION");

  // fallthrough(): the main app's options are accepted after the subcommand word as well.
  const auto subcommand = [&app](const char* name, const char* description) {
    auto* sub = app.add_subcommand(name, description);
    sub->fallthrough();
    return sub;
  };
  auto* check = subcommand("check", "validate config and flags, print the effective config; exit 0 or 2");
  auto* status = subcommand("status", "ask a running clusterd for its state");
  auto* reload = subcommand("reload", "rolling reload of a running clusterd");
  auto* scale = subcommand("scale", "set the worker count of a running clusterd, or change it by N");
  auto* restart = subcommand("restart", "replace a slot's worker now, new one first; clears its backoff");
  auto* stop = subcommand("stop", "graceful stop of a running clusterd");
  auto* metrics = subcommand("metrics", "print a running clusterd's metrics in the Prometheus text format");
  auto* ls = subcommand("ls", "list the instances found in the runtime directories");
  auto* top = subcommand("top", "a live view of a running clusterd's workers; keys reload, scale, restart");
  auto* logs = subcommand("logs", "print the workers' recent output lines, and follow new ones");
  auto* upgrade = subcommand("upgrade", "replace a running clusterd's binary in place, keeping every worker");
  upgrade->add_option("--binary", options.upgrade_binary, "the binary to run (an absolute path; default: "
                      "the one clusterd was started from)")->type_name("PATH");
  logs->add_option("--slot", options.logs_slot, "only this slot's lines")->type_name("N");
  logs->add_option("-n,--lines", options.logs_lines, "how many recent lines (default 10)")->type_name("LINES");
  logs->add_flag("-f,--follow", options.follow, "then print new lines as they come");
  logs->add_flag("-t,--timestamps", options.timestamps, "each line after the time clusterd read it");
  scale->add_option("N", options.scale_to, "the new worker count 1-4096, or +N / -N");
  restart->add_option("SLOT", options.restart_slot, "a slot number, or all");

  const std::array<std::pair<CLI::App*, Command>, 11> commands{{
      {check, Command::check},
      {status, Command::status},
      {reload, Command::reload},
      {scale, Command::scale},
      {restart, Command::restart},
      {stop, Command::stop},
      {metrics, Command::metrics},
      {ls, Command::ls},
      {top, Command::top},
      {logs, Command::logs},
      {upgrade, Command::upgrade},
  }};
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    if (check->parsed()) {
      // check takes every option a run does: the main help, which lists them (CLI11's help of the
      // subcommand would list none).
      return parse_once({"--help"});
    }
    for (const auto& [sub, command] : commands) {
      if (sub->parsed()) {
        return CliExit{0, help_of(command)};
      }
    }
    return CliExit{0, app.help()};
  } catch (const CLI::CallForVersion& version_text) {
    return CliExit{0, std::string(version_text.what()) + "\n"};
  } catch (const CLI::ParseError& error) {
    return from_cli11(error);
  }

  for (const auto& [sub, command] : commands) {
    if (sub->parsed()) {
      options.command = command;
    }
  }
  parsed.rest = app.remaining(true);
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      parsed.long_options.push_back("--" + name);
    }
  }
  for (const auto* option : config_options) {
    if (option->count() > 0) {
      parsed.config_flags_given.push_back(option->get_name());
    }
  }
  for (const CLI::Option* option : {json, interval}) {
    if (option->count() > 0) {
      parsed.client_flags_given.push_back(option->get_name());
    }
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
    case Command::restart:
      return "restart";
    case Command::stop:
      return "stop";
    case Command::metrics:
      return "metrics";
    case Command::ls:
      return "ls";
    case Command::top:
      return "top";
    case Command::logs:
      return "logs";
    case Command::upgrade:
      return "upgrade";
  }
  return "";
}

// "--jsn: unknown option; did you mean --json?"
CliExit unknown_option(const std::string& option, const std::vector<std::string>& long_options) {
  std::string message = option + ": unknown option";
  const std::vector<std::string_view> names(long_options.begin(), long_options.end());
  if (const auto best = option.starts_with("--") ? closest_word(option, names) : std::nullopt) {
    message += "; did you mean " + std::string(*best) + "?";
  }
  return usage_error(message);
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
      return unknown_option(first.substr(0, first.find('=')), parsed.long_options);
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
  if (parsed.interval && options.command != Command::top) {
    return usage_error("--interval: only for top");
  }
  if (!client && !parsed.client_flags_given.empty()) {
    return usage_error(parsed.client_flags_given.front() +
                       ": only for status, reload, scale, restart, stop, metrics, ls, top, logs and upgrade");
  }
  if (options.json && options.command == Command::top) {
    return usage_error("--json: top draws a live view for people; for JSON use 'clusterd status --json'");
  }
  if (options.pss && options.command != Command::status) {
    return usage_error(std::string("--pss: only for status, not ") + command_name(options.command));
  }
  if (options.command == Command::ls && (options.control || options.config_file || options.overrides.name)) {
    return usage_error("ls: lists every instance it finds; --name, --control and -c choose one for the other commands");
  }
  // The argument is checked by the rule clusterd itself applies to the request line.
  const auto check_request = [](std::string verb, const std::optional<std::string>& argument) -> std::optional<CliExit> {
    if (auto request = parse_request(verb + (argument ? " " + *argument : "")); !request) {
      return usage_error(request.error());
    }
    return std::nullopt;
  };
  if (options.command == Command::scale) {
    return check_request("scale", options.scale_to);
  }
  if (options.command == Command::restart) {
    return check_request("restart", options.restart_slot);
  }
  if (options.command == Command::upgrade) {
    return check_request("upgrade", options.upgrade_binary);
  }
  if (options.command == Command::logs) {
    if (options.logs_slot && (*options.logs_slot < 0 || *options.logs_slot > 4095)) {
      return usage_error("--slot " + std::to_string(*options.logs_slot) + ": expected a slot number 0-4095");
    }
    if (options.logs_lines < 0 || options.logs_lines > LogsRequest::max_lines) {
      return usage_error("--lines " + std::to_string(options.logs_lines) + ": expected a count 0-" +
                         std::to_string(LogsRequest::max_lines));
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
  if (parsed.interval) {
    const auto interval = parse_duration(*parsed.interval);
    if (!interval) {
      return usage_error("--interval " + *parsed.interval + ": expected a duration such as 1s or 250ms");
    }
    if (*interval < min_top_interval) {
      return usage_error("--interval " + *parsed.interval + ": below the minimum of 100ms; give 100ms or more");
    }
    parsed.options.interval = *interval;
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
