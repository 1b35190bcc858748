// Merges the command line (-w, --listen, --ready, --ready-timeout, --grace, --stop-signal, --name,
// --control, --log-level, --log-file, --output, --set) into the config file's TOML table, each value
// remembering the flag it came from.
#include "config_overrides.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config_format.h"
#include "config_schema.h"

namespace clusterd::config_detail {
namespace {

// Parses a TOML snippet written by clusterd around a flag's value; nullopt when it does not parse
// (the caller decides what that means).
std::optional<toml::table> parse_snippet(const std::string& document, const std::string& origin) {
  try {
    return toml::parse(std::string_view{document}, std::string_view{origin});
  } catch (const toml::parse_error&) {
    return std::nullopt;
  } catch (const TomlCheckFailed&) {
    return std::nullopt;
  }
}

// The flag's value as a node: numbers, booleans and arrays as TOML (`--set restart.burst=5`),
// anything else, and every `text` key, as the string written (`--set restart.delay=5s`). A value
// already in TOML quotes is read as TOML, so `--set name='"a b"'` works as expected too.
std::optional<toml::table> flag_value(std::string_view value, bool text, const std::string& origin) {
  const bool quoted = !value.empty() && (value.front() == '"' || value.front() == '\'');
  if (!text || quoted) {
    auto parsed = parse_snippet("v = " + std::string(value) + "\n", origin);
    if (parsed && parsed->size() == 1 && parsed->contains("v") && (!text || parsed->get("v")->is_string())) {
      return parsed;
    }
  }
  return parse_snippet("v = " + quote(value) + "\n", origin);
}

class Merger {
 public:
  Merger(toml::table& root, Reporter& report) : root_(root), report_(report) {}

  // Sets `section.name` (or top-level `name`) from a flag; `origin` names the flag in diagnostics.
  void set(std::string_view section, std::string_view name, std::string_view value, bool text,
           const std::string& origin, const std::string& key) {
    report_.add_flag(origin);
    auto parsed = flag_value(value, text, origin);
    if (!parsed) {
      // toml++ refuses what is not UTF-8, and TOML cannot hold it either.
      report_.at_origin(origin, key, "expected UTF-8 text, found bytes that are not");
      return;
    }
    toml::table* target = &root_;
    if (!section.empty()) {
      target = section_table(section);
      if (target == nullptr) {
        return;  // the file's own value of `section` is not a table; that is reported already
      }
    }
    target->insert_or_assign(name, std::move(*parsed->get("v")));
  }

  void set_from_flag(std::string_view section, std::string_view name, const std::optional<std::string>& value,
                     const std::string& flag) {
    if (value) {
      const auto* known = find_known(section, name);
      set(section, name, *value, known != nullptr && known->text, flag,
          section.empty() ? std::string(name) : std::string(section) + "." + std::string(name));
    }
  }

  // `--set KEY=VALUE`.
  void apply_set(const std::string& assignment) {
    const std::string origin = "--set " + assignment;
    report_.add_flag(origin);
    const auto equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      report_.at_origin(origin, "", "expected KEY=VALUE, found " + assignment);
      return;
    }
    const std::string key = assignment.substr(0, equals);
    const std::string_view value = std::string_view(assignment).substr(equals + 1);
    const auto dot = key.find('.');
    const std::string head = key.substr(0, dot);
    const std::string rest = dot == std::string::npos ? std::string() : key.substr(dot + 1);

    if (head == "listen") {
      report_.at_origin(origin, key, "listeners are set with --listen [NAME=]ADDR, not --set");
      return;
    }
    if (head == "env" && !rest.empty()) {
      // The variable name is everything after "env."; validation checks it like one of [env].
      set("env", rest, value, true, origin, key);
      return;
    }
    // `output` is both: the mode alone (--set output=prefix), or a table (--set output.file=…).
    if (rest.empty() && is_section(head) && head != "output") {
      report_.at_origin(origin, key, "expected " + head + ".KEY=VALUE, found " + assignment);
      return;
    }
    const std::string section = rest.empty() ? std::string() : head;
    const std::string name = rest.empty() ? head : rest;
    const auto* known = find_known(section, name);
    if (known == nullptr && (section.empty() || is_section(section))) {
      report_.at_origin(origin, key,
                        unknown_key_message(section, name, section.empty() ? "" : section + "."));
      return;
    }
    if (known == nullptr) {
      report_.at_origin(origin, key, unknown_section_message(section, name));
      return;
    }
    set(section, name, value, known->text, origin, key);
  }

  // `--listen [NAME=]ADDR`, every one of them together replacing the file's [[listen]] tables.
  void replace_listeners(const std::vector<std::string>& specs) {
    toml::array listeners;
    for (const auto& spec : specs) {
      const std::string origin = "--listen " + spec;
      report_.add_flag(origin);
      std::string document = "[[listen]]\n";
      // NAME= is split off only when what precedes '=' could be a name: "unix:/a=b" is an address.
      const auto equals = spec.find('=');
      const bool named = equals != std::string::npos && spec.find_first_of(":/[", 0) > equals;
      if (named) {
        document += "name = " + quote(spec.substr(0, equals)) + "\n";
      }
      document += "address = " + quote(named ? spec.substr(equals + 1) : spec) + "\n";
      auto parsed = parse_snippet(document, origin);
      if (!parsed) {
        report_.at_origin(origin, "listen", "expected UTF-8 text, found bytes that are not");
        continue;
      }
      listeners.push_back(std::move(*(*parsed)["listen"].as_array()->get(0)));
    }
    root_.insert_or_assign("listen", std::move(listeners));
  }

 private:
  toml::table* section_table(std::string_view section) {
    if (auto* existing = root_.get(section)) {
      // `output = "prefix"` in the file and `--set output.file=…`: the string is the table's mode.
      if (section == "output" && existing->is_string()) {
        toml::table table;
        table.insert("mode", *existing);
        return root_.insert_or_assign(section, std::move(table)).first->second.as_table();
      }
      return existing->as_table();
    }
    return root_.insert_or_assign(section, toml::table{}).first->second.as_table();
  }

  toml::table& root_;
  Reporter& report_;
};

}  // namespace

void merge_overrides(toml::table& root, const ConfigOverrides& overrides, Reporter& report) {
  Merger merger(root, report);
  // --set first: the dedicated flags are the more specific way to say the same thing, so they win.
  for (const auto& assignment : overrides.sets) {
    merger.apply_set(assignment);
  }
  merger.set_from_flag("", "workers", overrides.workers, "--workers");
  merger.set_from_flag("ready", "mode", overrides.ready, "--ready");
  merger.set_from_flag("ready", "timeout", overrides.ready_timeout, "--ready-timeout");
  merger.set_from_flag("stop", "grace", overrides.grace, "--grace");
  merger.set_from_flag("stop", "signal", overrides.stop_signal, "--stop-signal");
  merger.set_from_flag("", "name", overrides.name, "--name");
  merger.set_from_flag("control", "socket", overrides.control, "--control");
  merger.set_from_flag("log", "level", overrides.log_level, "--log-level");
  merger.set_from_flag("log", "file", overrides.log_file, "--log-file");
  // --output sets the mode, wherever the file keeps it.
  const auto* output = root.get("output");
  if (output != nullptr && output->is_table()) {
    merger.set_from_flag("output", "mode", overrides.output, "--output");
  } else {
    merger.set_from_flag("", "output", overrides.output, "--output");
  }
  if (!overrides.listen.empty()) {
    merger.replace_listeners(overrides.listen);
  }
}

}  // namespace clusterd::config_detail
