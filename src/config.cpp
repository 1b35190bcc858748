// Validates the merged TOML table (the file with the command line merged in) into a Config, and
// is the entry point of the config module: build_config, load_config, Diagnostic::to_string.
//
// The pieces: config_overrides merges the flags into the table, config_reader reads single values
// by type, config_listeners validates [[listen]], config_lifecycle validates [ready], [reload] and
// [recycle], config_metrics validates [metrics], config_host asks the system about what a start depends on, config_report collects
// and orders the diagnostics, config_schema knows the keys, config_output validates `output`.
#include "config.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "toml_library.h"

#include "config_file.h"
#include "config_format.h"
#include "config_host.h"
#include "config_lifecycle.h"
#include "config_output.h"
#include "config_listeners.h"
#include "config_metrics.h"
#include "config_overrides.h"
#include "config_paths.h"
#include "config_reader.h"
#include "config_report.h"
#include "errno_text.h"
#include "spawn_plan.h"
#include "toml_syntax.h"

namespace clusterd {
namespace {

using namespace config_detail;

bool is_variable_name(std::string_view name) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  return !name.empty() && letter(name.front()) &&
         std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

// The default instance name is the base name of the program. Characters outside A-Za-z0-9._-
// become '_' rather than an error: the operator did not choose this name, and refusing to start
// "./my server" over it would be a surprise; --name overrides it.
std::string default_name(std::string_view program) {
  const auto slash = program.rfind('/');
  const auto base = slash == std::string_view::npos ? program : program.substr(slash + 1);
  std::string name;
  for (const char c : base.substr(0, 64)) {
    name += is_name_char(c) ? c : '_';
  }
  return name.empty() ? "clusterd" : name;
}

// The merged table → Config; every problem goes to the Reporter.
class Validator {
 public:
  Validator(Reporter& report, std::string file, const PathBases& paths)
      : report_(report), read_(report), file_(std::move(file)), paths_(paths) {}

  void build(const toml::table& root, const std::vector<std::string>& program, Config& config) {
    read_.unknown_keys(root, "", "");
    if (const auto* node = root.get("workers")) {
      workers(*node, config);
    }
    if (const auto* node = root.get("listen")) {
      auto tables = read_listeners(*node, read_, paths_);
      config.listeners = std::move(tables.listeners);
      extra_listener_names_ = std::move(tables.broken_names);
    }
    std::vector<std::string> names;
    for (const auto& listener : config.listeners) {
      names.push_back(listener.name);
    }
    names.insert(names.end(), extra_listener_names_.begin(), extra_listener_names_.end());
    if (!program.empty()) {
      program_command(program, names, config);
    } else if (const auto* node = root.get("command")) {
      command(*node, names, config);
    } else {
      report_.at_origin(file_.empty() ? std::string(program_origin) : file_, "command",
                        file_.empty() ? "expected PROGRAM, or -c FILE with a command, found neither"
                                      : "expected an array of strings (or PROGRAM on the command line), "
                                        "found nothing");
    }
    if (const auto* node = root.get("name")) {
      if (auto value = read_.string(*node, "name", name_expected)) {
        if (is_valid_name(*value)) {
          config.name = *value;
        } else {
          report_.bad_value(*node, "name", name_expected);
        }
      }
    } else if (!config.command.empty()) {
      config.name = default_name(config.command.front());
    }
    if (const auto* node = root.get("directory")) {
      if (auto value = read_.nonempty_string(*node, "directory", "a directory path")) {
        config.directory = paths_.resolve(*node, report_, *value);
      }
    }
    if (const auto* node = root.get("user")) {
      config.user = read_.account(*node, "user", "a user name or uid");
    }
    if (const auto* node = root.get("group")) {
      config.group = read_.account(*node, "group", "a group name or gid");
    }
    if (const auto* node = root.get("output")) {
      read_output(*node, read_, paths_, config.output);
    }
    if (const auto* node = root.get("env")) {
      env(*node, names, config);
    }
    if (const auto* node = root.get("inherit_env")) {
      inherit_env(*node, config);
    }
    if (const auto* table = read_.section(root, "restart")) {
      restart(*table, config.restart);
    }
    if (const auto* table = read_.section(root, "ready")) {
      read_ready(*table, read_, config.ready);
    }
    if (const auto* table = read_.section(root, "stop")) {
      stop(*table, config.stop);
    }
    if (const auto* table = read_.section(root, "reload")) {
      read_reload(*table, read_, config.reload);
    }
    if (const auto* table = read_.section(root, "recycle")) {
      read_recycle(*table, read_, config.recycle);
    }
    if (const auto* table = read_.section(root, "cgroup")) {
      cgroup(*table, config.cgroup);
    }
    if (const auto* table = read_.section(root, "control")) {
      control(*table, config.control);
    }
    if (const auto* table = read_.section(root, "log")) {
      log(*table, config.log);
    }
    if (const auto* table = read_.section(root, "metrics")) {
      read_metrics(*table, read_, config.metrics);
    }
  }

 private:
  // ----- top-level keys

  void workers(const toml::node& node, Config& config) {
    constexpr std::string_view expected = "an integer 1-4096 or \"auto\"";
    if (const auto* s = node.as_string()) {
      if (s->get() != "auto") {
        report_.bad_value(node, "workers", expected);
      }
      return;  // "auto": left unset, resolved from the CPUs at start
    }
    if (auto value = read_.integer(node, "workers", 1, 4096, expected)) {
      config.workers = static_cast<int>(*value);
    }
  }

  void command(const toml::node& node, const std::vector<std::string>& listener_names, Config& config) {
    constexpr std::string_view expected = "a non-empty array of strings";
    const auto* array = node.as_array();
    if (array == nullptr) {
      report_.wrong_type(node, "command", expected);
      return;
    }
    if (array->empty()) {
      report_.bad_value(node, "command", expected);
      return;
    }
    std::vector<std::string> command;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto& element = *array->get(i);
      const std::string key = "command[" + std::to_string(i) + "]";
      auto value = read_.string(element, key, i == 0 ? "a program name or path" : "a string");
      if (!value) {
        continue;
      }
      if (i == 0 && value->empty()) {
        report_.bad_value(element, key, "a program name or path");
        continue;
      }
      // Slot 0 stands for every slot: whether a placeholder is known does not depend on it.
      if (auto expanded = expand_argument(*value, listener_names, 0); !expanded) {
        report_.at(element.source(), key, expanded.error());
        continue;
      }
      command.push_back(std::move(*value));
    }
    if (command.size() == array->size()) {
      config.command = std::move(command);
    }
  }

  // PROGRAM ARG... is not routed through TOML: an argument is any bytes, not necessarily UTF-8.
  void program_command(const std::vector<std::string>& program,
                       const std::vector<std::string>& listener_names, Config& config) {
    report_.add_flag(std::string(program_origin));  // ordered after the flags, like them without a line
    bool valid = true;
    for (std::size_t i = 0; i < program.size(); ++i) {
      const std::string key = "command[" + std::to_string(i) + "]";
      if (i == 0 && program[i].empty()) {
        report_.at_origin(std::string(program_origin), key, "expected a program name or path, found \"\"");
        valid = false;
      } else if (auto expanded = expand_argument(program[i], listener_names, 0); !expanded) {
        report_.at_origin(std::string(program_origin), key, expanded.error());
        valid = false;
      }
    }
    if (valid) {
      config.command = program;
    }
  }
  void env(const toml::node& node, const std::vector<std::string>& listener_names, Config& config) {
    const auto* table = node.as_table();
    if (table == nullptr) {
      report_.wrong_type(node, "env", "a table [env]");
      return;
    }
    for (auto&& [key, value] : *table) {
      const std::string name(key.str());
      const std::string shown = "env." + name;
      // A key made by `--set env.NAME=V` has no source of its own; its value knows the flag.
      const auto& where = key.source().path ? key.source() : value.source();
      if (!is_variable_name(name)) {
        report_.at(where, shown,
                   "expected a variable name of A-Za-z0-9_ not starting with a digit, found " + quote(name));
        continue;
      }
      if (is_reserved_variable(name)) {
        report_.at(where, shown,
                   "expected a variable that clusterd does not set or remove, found " + quote(name));
        continue;
      }
      if (auto text = read_.string(value, shown, "a string")) {
        // Values take the command's placeholders (nginx wants NGINX="{fd:http};").
        if (auto expanded = expand_argument(*text, listener_names, 0); !expanded) {
          report_.at(value.source(), shown, expanded.error());
          continue;
        }
        config.env[name] = *text;
      }
    }
  }

  // true, false, or the names of clusterd's variables that pass (["PATH", "LANG"]).
  void inherit_env(const toml::node& node, Config& config) {
    constexpr std::string_view expected = "true, false or an array of variable names";
    if (const auto* flag = node.as_boolean()) {
      if (flag->get()) {
        config.inherit_env.reset();
      } else {
        config.inherit_env.emplace();
      }
      return;
    }
    const auto* array = node.as_array();
    if (array == nullptr) {
      report_.wrong_type(node, "inherit_env", expected);
      return;
    }
    std::vector<std::string> names;
    bool valid = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto& element = *array->get(i);
      const std::string key = "inherit_env[" + std::to_string(i) + "]";
      auto name = read_.string(element, key, "a variable name");
      if (!name) {
        valid = false;
      } else if (!is_variable_name(*name)) {
        report_.at(element.source(), key,
                   "expected a variable name of A-Za-z0-9_ not starting with a digit, found " + quote(*name));
        valid = false;
      } else if (is_reserved_variable(*name)) {
        // clusterd sets or removes these itself; listing one would promise what cannot happen.
        report_.at(element.source(), key,
                   "expected a variable that clusterd does not set or remove, found " + quote(*name));
        valid = false;
      } else if (std::find(names.begin(), names.end(), *name) != names.end()) {
        report_.at(element.source(), key, "expected each name once, found " + quote(*name) + " again");
        valid = false;
      } else {
        names.push_back(std::move(*name));
      }
    }
    if (valid) {
      config.inherit_env = std::move(names);
    }
  }

  // ----- sections

  void cgroup(const toml::table& table, CgroupConfig& cgroup) {
    if (const auto* node = table.get("mode")) {
      if (auto index = read_.choice(*node, "cgroup.mode", {"auto", "on", "off"})) {
        cgroup.mode = std::array{CgroupMode::automatic, CgroupMode::on, CgroupMode::off}[*index];
      }
    }
  }

  void restart(const toml::table& table, RestartConfig& restart) {
    if (const auto* node = table.get("policy")) {
      if (auto index = read_.choice(*node, "restart.policy", {"always", "on-failure", "never"})) {
        restart.policy = std::array{RestartPolicyKind::always, RestartPolicyKind::on_failure,
                                    RestartPolicyKind::never}[*index];
      }
    }
    bool delay_ok = true;
    if (const auto* node = table.get("delay")) {
      auto value = read_.duration(*node, "restart.delay", true);
      delay_ok = value.has_value();
      restart.delay = value.value_or(restart.delay);
    }
    if (const auto* node = table.get("max_delay")) {
      if (auto value = read_.duration(*node, "restart.max_delay", true)) {
        if (delay_ok && *value < restart.delay) {
          report_.bad_value(
              *node, "restart.max_delay",
              "a duration of at least restart.delay (" + quote(format_duration(restart.delay)) + ")");
        } else {
          restart.max_delay = *value;
        }
      }
    } else if (delay_ok && restart.max_delay < restart.delay) {
      // The default cap (30s) is below a larger delay the operator chose: it is not an error of
      // theirs, so the cap follows the delay.
      restart.max_delay = restart.delay;
    }
    if (const auto* node = table.get("multiplier")) {
      constexpr std::string_view expected = "a number of at least 1.0";
      std::optional<double> value;
      if (const auto* f = node->as_floating_point()) {
        value = f->get();
      } else if (const auto* i = node->as_integer()) {
        value = static_cast<double>(i->get());
      } else {
        report_.wrong_type(*node, "restart.multiplier", expected);
      }
      // inf would make every restart after the second wait max_delay; say so rather than allow it.
      if (value && !(std::isfinite(*value) && *value >= 1.0)) {
        report_.bad_value(*node, "restart.multiplier", expected);
        value.reset();
      }
      restart.multiplier = value.value_or(restart.multiplier);
    }
    if (const auto* node = table.get("reset_after")) {
      restart.reset_after = read_.duration(*node, "restart.reset_after", true).value_or(restart.reset_after);
    }
    if (const auto* node = table.get("burst")) {
      if (auto value = read_.integer(*node, "restart.burst", 1, std::numeric_limits<int>::max(),
                                     "an integer of at least 1")) {
        restart.burst = static_cast<int>(*value);
      }
    }
    if (const auto* node = table.get("interval")) {
      restart.interval = read_.duration(*node, "restart.interval", true).value_or(restart.interval);
    }
  }

  void stop(const toml::table& table, StopConfig& stop) {
    if (const auto* node = table.get("signal")) {
      constexpr std::string_view expected = "a signal name such as \"TERM\"";
      if (auto text = read_.string(*node, "stop.signal", expected)) {
        if (auto number = parse_signal(*text)) {
          stop.signal = *number;
        } else {
          report_.bad_value(*node, "stop.signal", expected);
        }
      }
    }
    if (const auto* node = table.get("grace")) {
      stop.grace = read_.duration(*node, "stop.grace", false).value_or(stop.grace);
    }
    if (const auto* node = table.get("dump_signal")) {
      constexpr std::string_view expected = "a signal name such as \"ABRT\" or \"QUIT\"";
      if (auto text = read_.string(*node, "stop.dump_signal", expected)) {
        if (auto number = parse_signal(*text); number && *number != SIGKILL && *number != SIGSTOP) {
          stop.dump_signal = *number;
        } else {
          report_.bad_value(*node, "stop.dump_signal", expected);
        }
      }
    }
    if (const auto* node = table.get("dump_before")) {
      if (auto value = read_.duration(*node, "stop.dump_before", true)) {
        if (!table.get("dump_signal")) {
          report_.at(node->source(), "stop.dump_before",
                     "is set without stop.dump_signal; set the signal that asks for the dump (\"ABRT\")");
        } else if (*value >= stop.grace) {
          report_.bad_value(*node, "stop.dump_before",
                            "a duration less than stop.grace (" + quote(format_duration(stop.grace)) + ")");
        } else {
          stop.dump_before = *value;
        }
      }
    }
  }

  // An absolute path: the client subcommands must find it from anywhere, so it cannot depend on
  // the working directory clusterd was started in. It must fit in sun_path, like a unix listener.
  void control(const toml::table& table, ControlConfig& control) {
    const auto* node = table.get("socket");
    if (node == nullptr) {
      return;
    }
    constexpr std::string_view expected = "an absolute path or \"none\"";
    auto value = read_.string(*node, "control.socket", expected);
    if (!value) {
      return;
    }
    if (*value == "none") {
      control.enabled = false;
      return;
    }
    if (!value->starts_with('/') || value->find('\0') != std::string::npos) {
      report_.bad_value(*node, "control.socket", expected);
      return;
    }
    if (value->size() > max_control_path) {
      report_.at(node->source(), "control.socket",
                 "the path is " + std::to_string(value->size()) + " bytes, the limit is " +
                     std::to_string(max_control_path));
      return;
    }
    control.socket = *value;
  }

  void log(const toml::table& table, LogConfig& log) {
    if (const auto* node = table.get("level")) {
      if (auto index = read_.choice(*node, "log.level", {"trace", "debug", "info", "warn", "error"})) {
        log.level = static_cast<LogLevel>(*index);
      }
    }
    if (const auto* node = table.get("file")) {
      if (auto value = read_.nonempty_string(*node, "log.file", "a file path")) {
        log.file = paths_.resolve(*node, report_, *value);
      }
    }
  }

  Reporter& report_;
  ValueReader read_;
  std::string file_;
  const PathBases& paths_;
  std::vector<std::string> extra_listener_names_;
};

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  if (!out.empty()) {
    out += ": ";
  }
  if (!key.empty()) {
    out += key + ": ";
  }
  return out + message;
}

tl::expected<Config, Diagnostics> build_config(const std::optional<ConfigText>& file,
                                               const ConfigOverrides& overrides, const HostChecks* host) {
  toml::table root;
  if (file) {
    try {
      root = toml::parse(std::string_view{file->text}, std::string_view{file->path});
    } catch (const toml::parse_error& error) {
      // toml++ stops at the first syntax error; nothing after it can be trusted.
      const auto line = static_cast<int>(error.source().begin.line);
      const auto column = static_cast<int>(error.source().begin.column);
      return tl::unexpected(Diagnostics{Diagnostic{
          file->path, line, column, "", plain_syntax_error(error.description(), file->text, line, column)}});
    } catch (const TomlCheckFailed& error) {
      return tl::unexpected(Diagnostics{Diagnostic{
          file->path, 0, 0, "",
          std::string("not valid TOML: the TOML reader failed its check ") + error.what() +
              "; look for a stray or unbalanced bracket, quote or non-ASCII character"}});
    }
  }
  Reporter report(file ? file->path : std::string());
  merge_overrides(root, overrides, report);
  Config config;
  if (file) {
    config.file = file->path;
  }
  const std::string working_directory =
      host != nullptr && host->working_directory ? host->working_directory() : std::string();
  const PathBases paths(file ? file->path : std::string(), working_directory);
  Validator(report, file ? file->path : std::string(), paths).build(root, overrides.program, config);
  if (host != nullptr) {
    check_host(root, config, !overrides.program.empty(), *host, report);
  }
  if (!report.empty()) {
    return tl::unexpected(report.take());
  }
  config.warnings = report.take_warnings();
  return config;
}

tl::expected<Config, Diagnostics> load_config(const std::optional<std::string>& path,
                                              const ConfigOverrides& overrides, const HostChecks* host) {
  if (!path) {
    return build_config(std::nullopt, overrides, host);
  }
  // Whoever may change the file chooses the commands clusterd runs: a file or directory another
  // user could change is refused, for a start, a reload and `check` alike (config_file.h).
  auto text = read_config_file(*path, ::geteuid());
  if (!text) {
    return tl::unexpected(Diagnostics{Diagnostic{*path, 0, 0, "", text.error()}});
  }
  return build_config(ConfigText{*path, std::move(*text)}, overrides, host);
}

}  // namespace clusterd
