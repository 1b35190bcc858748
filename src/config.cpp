// Builds the immutable Config from a TOML document and the command-line overrides, reporting
// every problem with its file, line, column and key.
//
// The overrides are merged into the parsed toml::table before anything is validated, so one
// validator walks every value whatever its origin. A flag's value is itself parsed as a one-line
// TOML document whose source path is the flag text ("--set restart.delay=5", "--workers"); the
// node keeps that path when it is moved into the table, which is how a diagnostic knows to name
// the flag (with line 0) instead of a line of the file.
#include "config.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "spawn_plan.h"

namespace clusterd {
namespace {

// ---------------------------------------------------------------------------------------------
// The keys this version knows. `text`: `--set` takes the value as written, without TOML quoting.

struct KnownKey {
  std::string_view section;  // "" for the top level
  std::string_view name;
  bool text;
};

constexpr std::array<KnownKey, 27> known_keys{{
    {"", "name", true},
    {"", "workers", false},
    {"", "command", false},
    {"", "directory", true},
    {"", "user", true},
    {"", "group", true},
    {"", "listen", false},
    {"", "env", false},
    {"", "restart", false},
    {"", "stop", false},
    {"", "log", false},
    {"listen", "name", true},
    {"listen", "address", true},
    {"listen", "backlog", false},
    {"listen", "mode", true},
    {"listen", "ipv6_only", false},
    {"restart", "policy", true},
    {"restart", "delay", true},
    {"restart", "max_delay", true},
    {"restart", "multiplier", false},
    {"restart", "reset_after", true},
    {"restart", "burst", false},
    {"restart", "interval", true},
    {"stop", "signal", true},
    {"stop", "grace", true},
    {"log", "level", true},
    {"log", "file", true},
}};

const KnownKey* find_known(std::string_view section, std::string_view name) {
  for (const auto& known : known_keys) {
    if (known.section == section && known.name == name) {
      return &known;
    }
  }
  return nullptr;
}

bool is_section(std::string_view name) {
  return name == "listen" || name == "env" || name == "restart" || name == "stop" || name == "log";
}

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

// `unknown key "dealy"; did you mean "restart.delay"?`. A close key of the same section wins; else
// the same name in another section (a key written under the wrong [header], the usual TOML trap).
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

// `--set rstart.delay=1s`: `unknown key "rstart.delay"; did you mean "restart.delay"?`.
std::string unknown_section_message(std::string_view section, std::string_view name) {
  std::string message = "unknown key \"" + std::string(section) + "." + std::string(name) + "\"";
  for (const auto& known : known_keys) {
    if (!known.section.empty() && known.name == name && edit_distance(section, known.section) <= 2) {
      return message + "; did you mean \"" + std::string(known.section) + "." + std::string(name) + "\"?";
    }
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// Rendering values in messages.

// A TOML basic string: every string clusterd writes or quotes stays on one line.
std::string quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          std::array<char, 8> escape{};
          std::snprintf(escape.data(), escape.size(), "\\u%04X", static_cast<unsigned>(c));
          out += escape.data();
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double, always with a '.' or exponent so TOML sees
// a float ("2.0", not "2").
std::string format_float(double value) {
  if (std::isnan(value)) {
    return "nan";
  }
  if (std::isinf(value)) {
    return value < 0 ? "-inf" : "inf";
  }
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  std::string text(buffer.data(), result.ptr);
  if (text.find_first_of(".e") == std::string::npos) {
    text += ".0";
  }
  return text;
}

std::string as_written(const toml::node& node) {
  if (const auto* s = node.as_string()) {
    return quote(s->get());
  }
  if (const auto* f = node.as_floating_point()) {
    return format_float(f->get());
  }
  std::ostringstream out;
  out << toml::toml_formatter{node};
  return out.str();
}

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "value";
  }
}

// ---------------------------------------------------------------------------------------------
// Collecting diagnostics.

// Collects diagnostics and knows which source paths are flags. Diagnostics come out ordered by
// origin (the file first, then the flags in the order given) and, within the file, by position:
// toml::table iterates its keys sorted, not in document order.
class Reporter {
 public:
  explicit Reporter(std::string file) : file_(std::move(file)) {}

  void add_flag(const std::string& origin) {
    flag_rank_.try_emplace(origin, static_cast<int>(flag_rank_.size()) + 1);
  }

  bool from_flag(const toml::source_region& where) const {
    return where.path && flag_rank_.count(*where.path) > 0;
  }
  bool from_flag(const toml::node& node) const { return from_flag(node.source()); }

  void at(const toml::source_region& where, std::string key, std::string message) {
    Diagnostic diagnostic;
    diagnostic.file = where.path ? *where.path : file_;
    if (!from_flag(where) && where.path) {
      diagnostic.line = static_cast<int>(where.begin.line);
      diagnostic.column = static_cast<int>(where.begin.column);
    }
    diagnostic.key = std::move(key);
    diagnostic.message = std::move(message);
    add(std::move(diagnostic));
  }

  // Where no node exists (a missing key, a flag that is not KEY=VALUE).
  void at_origin(const std::string& origin, std::string key, std::string message) {
    add(Diagnostic{origin, 0, 0, std::move(key), std::move(message)});
  }

  // "found X": strings quoted and numbers bare as in the file; the TOML type is named when it is
  // the wrong one. A flag's value is shown exactly as typed: on the command line every value is
  // text, so a type name would only describe how clusterd happened to read it.
  std::string found(const toml::node& node, bool wrong_type) const {
    if (const auto* array = node.as_array()) {
      return array->empty() ? "an empty array" : "an array";
    }
    if (node.is_table()) {
      return "a table";
    }
    if (from_flag(node)) {
      if (const auto* s = node.as_string()) {
        return s->get().empty() ? "\"\"" : s->get();
      }
      return as_written(node);
    }
    return wrong_type ? type_name(node) + " " + as_written(node) : as_written(node);
  }

  void wrong_type(const toml::node& node, std::string key, std::string_view expected) {
    at(node.source(), std::move(key), "expected " + std::string(expected) + ", found " + found(node, true));
  }
  void bad_value(const toml::node& node, std::string key, std::string_view expected) {
    at(node.source(), std::move(key), "expected " + std::string(expected) + ", found " + found(node, false));
  }

  Diagnostics take() {
    std::stable_sort(found_.begin(), found_.end(), [](const Ranked& a, const Ranked& b) {
      return std::tie(a.rank, a.diagnostic.line, a.diagnostic.column) <
             std::tie(b.rank, b.diagnostic.line, b.diagnostic.column);
    });
    Diagnostics out;
    for (auto& ranked : found_) {
      out.push_back(std::move(ranked.diagnostic));
    }
    found_.clear();
    return out;
  }

  bool empty() const { return found_.empty(); }

 private:
  struct Ranked {
    int rank;
    Diagnostic diagnostic;
  };

  void add(Diagnostic diagnostic) {
    const auto it = flag_rank_.find(diagnostic.file);
    const int rank = it == flag_rank_.end() ? 0 : it->second;
    found_.push_back(Ranked{rank, std::move(diagnostic)});
  }

  std::string file_;
  std::map<std::string, int, std::less<>> flag_rank_;
  std::vector<Ranked> found_;
};

// ---------------------------------------------------------------------------------------------
// Merging the command line into the document.

// Parses a TOML snippet written by clusterd around a flag's value; nullopt when it does not parse
// (the caller decides what that means).
std::optional<toml::table> parse_snippet(const std::string& document, const std::string& origin) {
  try {
    return toml::parse(std::string_view{document}, std::string_view{origin});
  } catch (const toml::parse_error&) {
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
    if (rest.empty() && is_section(head)) {
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
      return existing->as_table();
    }
    return root_.insert_or_assign(section, toml::table{}).first->second.as_table();
  }

  toml::table& root_;
  Reporter& report_;
};

void merge_overrides(toml::table& root, const ConfigOverrides& overrides, Reporter& report) {
  Merger merger(root, report);
  // --set first: the dedicated flags are the more specific way to say the same thing, so they win.
  for (const auto& assignment : overrides.sets) {
    merger.apply_set(assignment);
  }
  merger.set_from_flag("", "workers", overrides.workers, "--workers");
  merger.set_from_flag("stop", "grace", overrides.grace, "--grace");
  merger.set_from_flag("stop", "signal", overrides.stop_signal, "--stop-signal");
  merger.set_from_flag("", "name", overrides.name, "--name");
  merger.set_from_flag("log", "level", overrides.log_level, "--log-level");
  merger.set_from_flag("log", "file", overrides.log_file, "--log-file");
  if (!overrides.listen.empty()) {
    merger.replace_listeners(overrides.listen);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: the merged document → Config.

constexpr std::string_view duration_expected = "a duration with a unit such as \"5s\"";
constexpr std::string_view name_expected = "1-64 characters of A-Za-z0-9._-";
constexpr std::string_view program_origin = "command line";

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), is_name_char);
}

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

// "0660" → 0660: octal digits only, at most 07777.
std::optional<unsigned> parse_mode(std::string_view text) {
  if (text.empty() || text.size() > 5) {
    return std::nullopt;
  }
  unsigned mode = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') {
      return std::nullopt;
    }
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 07777) {
    return std::nullopt;
  }
  return mode;
}

std::string format_mode(unsigned mode) {
  std::array<char, 8> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%04o", mode);
  return buffer.data();
}

class Validator {
 public:
  Validator(Reporter& report, std::string file) : report_(report), file_(std::move(file)) {}

  void build(const toml::table& root, const std::vector<std::string>& program, Config& config) {
    unknown_keys(root, "", "");
    if (const auto* node = root.get("workers")) {
      workers(*node, config);
    }
    if (const auto* node = root.get("listen")) {
      listeners(*node, config);
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
      if (auto value = string(*node, "name", name_expected)) {
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
      if (auto value = nonempty_string(*node, "directory", "a directory path")) {
        config.directory = *value;
      }
    }
    if (const auto* node = root.get("user")) {
      config.user = account(*node, "user", "a user name or uid");
    }
    if (const auto* node = root.get("group")) {
      config.group = account(*node, "group", "a group name or gid");
    }
    if (const auto* node = root.get("env")) {
      env(*node, config);
    }
    if (const auto* table = section(root, "restart")) {
      restart(*table, config.restart);
    }
    if (const auto* table = section(root, "stop")) {
      stop(*table, config.stop);
    }
    if (const auto* table = section(root, "log")) {
      log(*table, config.log);
    }
  }

 private:
  // ----- scalars

  std::optional<std::string> string(const toml::node& node, const std::string& key,
                                    std::string_view expected) {
    if (const auto* s = node.as_string()) {
      return s->get();
    }
    report_.wrong_type(node, key, expected);
    return std::nullopt;
  }

  std::optional<std::string> nonempty_string(const toml::node& node, const std::string& key,
                                             std::string_view expected) {
    auto value = string(node, key, expected);
    if (value && value->empty()) {
      report_.bad_value(node, key, expected);
      return std::nullopt;
    }
    return value;
  }

  // An integer in [min, max]; `expected` describes the range, or only its lower end when the
  // upper one is just what an int holds: then a value above it gets its own message.
  std::optional<std::int64_t> integer(const toml::node& node, const std::string& key, std::int64_t min,
                                      std::int64_t max, std::string_view expected) {
    const auto* i = node.as_integer();
    if (i == nullptr) {
      report_.wrong_type(node, key, expected);
      return std::nullopt;
    }
    if (i->get() < min) {
      report_.bad_value(node, key, expected);
      return std::nullopt;
    }
    if (i->get() > max) {
      report_.bad_value(node, key,
                        max == std::numeric_limits<int>::max()
                            ? "an integer of at most " + std::to_string(max)
                            : std::string(expected));
      return std::nullopt;
    }
    return i->get();
  }

  // A duration string; `positive` refuses "0s" as well.
  std::optional<Duration> duration(const toml::node& node, const std::string& key, bool positive) {
    const auto* s = node.as_string();
    if (s == nullptr) {
      report_.wrong_type(node, key, duration_expected);
      return std::nullopt;
    }
    const auto value = parse_duration(s->get());
    if (!value) {
      report_.bad_value(node, key, duration_expected);
      return std::nullopt;
    }
    if (positive && value->count() <= 0) {
      report_.bad_value(node, key, "a duration greater than 0");
      return std::nullopt;
    }
    return value;
  }

  // One of `choices`, returned as its index.
  std::optional<std::size_t> choice(const toml::node& node, const std::string& key,
                                    const std::vector<std::string_view>& choices) {
    std::string expected;
    for (std::size_t i = 0; i < choices.size(); ++i) {
      expected += i == 0 ? "" : (i + 1 == choices.size() ? " or " : ", ");
      expected += quote(choices[i]);
    }
    const auto value = string(node, key, expected);
    if (!value) {
      return std::nullopt;
    }
    const auto it = std::find(choices.begin(), choices.end(), *value);
    if (it == choices.end()) {
      report_.bad_value(node, key, expected);
      return std::nullopt;
    }
    return static_cast<std::size_t>(it - choices.begin());
  }

  // `user`/`group`: a name, or a numeric id, which TOML may also hold as an integer.
  std::optional<std::string> account(const toml::node& node, const std::string& key,
                                     std::string_view expected) {
    if (const auto* i = node.as_integer()) {
      if (i->get() < 0 || i->get() > std::numeric_limits<std::uint32_t>::max() - 1) {
        report_.bad_value(node, key, expected);
        return std::nullopt;
      }
      return std::to_string(i->get());
    }
    return nonempty_string(node, key, expected);
  }

  const toml::table* section(const toml::table& root, std::string_view name) {
    const auto* node = root.get(name);
    if (node == nullptr) {
      return nullptr;
    }
    const auto* table = node->as_table();
    if (table == nullptr) {
      report_.wrong_type(*node, std::string(name), "a table [" + std::string(name) + "]");
      return nullptr;
    }
    unknown_keys(*table, name, std::string(name) + ".");
    return table;
  }

  // `prefix`: how the section's keys are shown ("restart.", "listen[1].", "" at the top level).
  void unknown_keys(const toml::table& table, std::string_view section, const std::string& prefix) {
    for (auto&& [key, value] : table) {
      if (find_known(section, key.str()) == nullptr) {
        report_.at(key.source(), prefix + std::string(key.str()),
                   unknown_key_message(section, key.str(), prefix));
      }
    }
  }

  // ----- top-level keys

  void workers(const toml::node& node, Config& config) {
    constexpr std::string_view expected = "an integer 1-4096 or \"auto\"";
    if (const auto* s = node.as_string()) {
      if (s->get() != "auto") {
        report_.bad_value(node, "workers", expected);
      }
      return;  // "auto": left unset, resolved from the CPUs at start
    }
    if (auto value = integer(node, "workers", 1, 4096, expected)) {
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
      auto value = string(element, key, i == 0 ? "a program name or path" : "a string");
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

  void listeners(const toml::node& node, Config& config) {
    const auto* array = node.as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
      if (array == nullptr || !array->empty()) {
        report_.wrong_type(node, "listen", "an array of tables ([[listen]])");
      }
      return;
    }
    std::vector<std::string> names;
    std::vector<const toml::node*> name_nodes;  // the name as written; null for a default fdN
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto& table = *array->get(i)->as_table();
      const std::string prefix = "listen[" + std::to_string(i) + "].";
      unknown_keys(table, "listen", prefix);
      const toml::node* name_node = table.get("name");
      std::optional<std::string> name = "fd" + std::to_string(3 + i);
      if (name_node != nullptr) {
        name = string(*name_node, prefix + "name", name_expected);
        if (name && !is_valid_name(*name)) {
          report_.bad_value(*name_node, prefix + "name", name_expected);
        }
      }
      name_nodes.push_back(name && name_node != nullptr ? name_node : nullptr);
      const bool valid_name = name && is_valid_name(*name);
      const auto duplicate = std::find(names.begin(), names.end(), name.value_or(""));
      const bool unique = duplicate == names.end();
      if (valid_name && !unique) {
        // Reported at a name the operator wrote, naming the other listener that has it. One of the
        // two was written: default names (fd3, fd4, …) differ from each other.
        const auto j = static_cast<std::size_t>(duplicate - names.begin());
        const bool here = name_nodes[i] != nullptr;
        const toml::node& where = here ? *name_nodes[i] : *name_nodes[j];
        report_.at(where.source(), "listen[" + std::to_string(here ? i : j) + "].name",
                   "expected a name unique among listeners, found " + report_.found(where, false) +
                       " (listen[" + std::to_string(here ? j : i) + "] has it too)");
      }
      names.push_back(name.value_or(""));
      auto listener = listener_settings(table, prefix);
      if (listener && valid_name && unique) {
        listener->name = *name;
        config.listeners.push_back(std::move(*listener));
      } else if (name) {
        // Placeholders naming a broken listener are not reported a second time.
        extra_listener_names_.push_back(*name);
      }
    }
  }

  // One [[listen]] table but its name; nullopt after reporting what is wrong with it.
  std::optional<ListenerConfig> listener_settings(const toml::table& table, const std::string& prefix) {
    constexpr std::string_view address_expected = "an address such as \":8000\" or \"unix:/run/app.sock\"";
    ListenerConfig listener;
    bool valid = true;
    const toml::node* address_node = table.get("address");
    bool address_ok = false;
    if (address_node == nullptr) {
      report_.at(table.source(), prefix + "address",
                 "expected " + std::string(address_expected) + ", found nothing");
    } else if (auto text = string(*address_node, prefix + "address", address_expected)) {
      if (auto address = parse_address(*text)) {
        listener.address = *address;
        address_ok = true;
      } else {
        report_.at(address_node->source(), prefix + "address", address.error());
      }
    }
    valid = address_ok;
    const bool is_unix = address_ok && listener.address.family == AddressFamily::unix_path;
    const bool is_ipv6 = address_ok && listener.address.family == AddressFamily::ipv6;
    listener.ipv6_only = is_ipv6 && !listener.address.any_dual_stack;

    if (const auto* backlog = table.get("backlog")) {
      const auto value = integer(*backlog, prefix + "backlog", 1, std::numeric_limits<int>::max(),
                                 "an integer of at least 1");
      valid = valid && value;
      listener.backlog = static_cast<int>(value.value_or(listener.backlog));
    }
    if (const auto* mode = table.get("mode")) {
      constexpr std::string_view expected = "an octal mode such as \"0660\"";
      const auto text = string(*mode, prefix + "mode", expected);
      auto value = text ? parse_mode(*text) : std::nullopt;
      if (text && !value) {
        report_.bad_value(*mode, prefix + "mode", expected);
      } else if (value && address_ok && !is_unix) {
        report_.at(mode->source(), prefix + "mode",
                   "mode applies only to unix: addresses, not " + report_.found(*address_node, false));
        value.reset();
      }
      valid = valid && value;
      listener.mode = value.value_or(listener.mode);
    }
    if (const auto* v6 = table.get("ipv6_only")) {
      const auto* flag = v6->as_boolean();
      if (flag == nullptr) {
        report_.wrong_type(*v6, prefix + "ipv6_only", "true or false");
        valid = false;
      } else if (address_ok && !is_ipv6) {
        report_.at(v6->source(), prefix + "ipv6_only",
                   "ipv6_only applies only to IPv6 addresses, not " + report_.found(*address_node, false));
        valid = false;
      } else {
        listener.ipv6_only = flag->get();
      }
    }
    return valid ? std::optional(std::move(listener)) : std::nullopt;
  }

  void env(const toml::node& node, Config& config) {
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
      if (auto text = string(value, shown, "a string")) {
        config.env[name] = *text;
      }
    }
  }

  // ----- sections

  void restart(const toml::table& table, RestartConfig& restart) {
    if (const auto* node = table.get("policy")) {
      if (auto index = choice(*node, "restart.policy", {"always", "on-failure", "never"})) {
        restart.policy = std::array{RestartPolicyKind::always, RestartPolicyKind::on_failure,
                                    RestartPolicyKind::never}[*index];
      }
    }
    bool delay_ok = true;
    if (const auto* node = table.get("delay")) {
      auto value = duration(*node, "restart.delay", true);
      delay_ok = value.has_value();
      restart.delay = value.value_or(restart.delay);
    }
    if (const auto* node = table.get("max_delay")) {
      if (auto value = duration(*node, "restart.max_delay", true)) {
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
      restart.reset_after = duration(*node, "restart.reset_after", true).value_or(restart.reset_after);
    }
    if (const auto* node = table.get("burst")) {
      if (auto value = integer(*node, "restart.burst", 1, std::numeric_limits<int>::max(),
                               "an integer of at least 1")) {
        restart.burst = static_cast<int>(*value);
      }
    }
    if (const auto* node = table.get("interval")) {
      restart.interval = duration(*node, "restart.interval", true).value_or(restart.interval);
    }
  }

  void stop(const toml::table& table, StopConfig& stop) {
    if (const auto* node = table.get("signal")) {
      constexpr std::string_view expected = "a signal name such as \"TERM\"";
      if (auto text = string(*node, "stop.signal", expected)) {
        if (auto number = parse_signal(*text)) {
          stop.signal = *number;
        } else {
          report_.bad_value(*node, "stop.signal", expected);
        }
      }
    }
    if (const auto* node = table.get("grace")) {
      stop.grace = duration(*node, "stop.grace", false).value_or(stop.grace);
    }
  }

  void log(const toml::table& table, LogConfig& log) {
    if (const auto* node = table.get("level")) {
      if (auto index = choice(*node, "log.level", {"trace", "debug", "info", "warn", "error"})) {
        log.level = static_cast<LogLevel>(*index);
      }
    }
    if (const auto* node = table.get("file")) {
      if (auto value = nonempty_string(*node, "log.file", "a file path")) {
        log.file = *value;
      }
    }
  }

  Reporter& report_;
  std::string file_;
  std::vector<std::string> extra_listener_names_;
};

// ---------------------------------------------------------------------------------------------
// Signals.

struct SignalName {
  std::string_view name;
  int number;
};

constexpr std::array<SignalName, 31> signal_names{{
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
}};

// Linux numbers signals 1-64 (_NSIG - 1); real-time ones have no fixed name, only a number.
constexpr int max_signal = 64;

}  // namespace

// ---------------------------------------------------------------------------------------------

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
                                               const ConfigOverrides& overrides) {
  toml::table root;
  if (file) {
    try {
      root = toml::parse(std::string_view{file->text}, std::string_view{file->path});
    } catch (const toml::parse_error& error) {
      // toml++ stops at the first syntax error; nothing after it can be trusted.
      return tl::unexpected(Diagnostics{Diagnostic{file->path, static_cast<int>(error.source().begin.line),
                                                   static_cast<int>(error.source().begin.column), "",
                                                   std::string(error.description())}});
    }
  }
  Reporter report(file ? file->path : std::string());
  merge_overrides(root, overrides, report);
  Config config;
  Validator(report, file ? file->path : std::string()).build(root, overrides.program, config);
  if (!report.empty()) {
    return tl::unexpected(report.take());
  }
  if (file) {
    config.file = file->path;
  }
  return config;
}

tl::expected<Config, Diagnostics> load_config(const std::optional<std::string>& path,
                                              const ConfigOverrides& overrides) {
  if (!path) {
    return build_config(std::nullopt, overrides);
  }
  const auto unreadable = [&path](int error) {
    return tl::unexpected(Diagnostics{
        Diagnostic{*path, 0, 0, "", "cannot read config file: " + std::string(std::strerror(error))}});
  };
  // stdio rather than iostreams: fopen and fread set errno, which is what the message needs
  // ("No such file or directory", "Is a directory", "Permission denied").
  std::FILE* stream = std::fopen(path->c_str(), "rbe");
  if (stream == nullptr) {
    return unreadable(errno);
  }
  std::string text;
  std::array<char, 65536> buffer{};
  std::size_t got = 0;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), stream)) > 0) {
    text.append(buffer.data(), got);
  }
  const int error = std::ferror(stream) ? errno : 0;
  std::fclose(stream);
  if (error != 0) {
    return unreadable(error);
  }
  return build_config(ConfigText{*path, std::move(text)}, overrides);
}

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

  for (const auto& listener : config.listeners) {
    out += "\n[[listen]]\n";
    line("name", quote(listener.name));
    line("address", quote(format_address(listener.address)));
    line("backlog", std::to_string(listener.backlog));
    if (listener.address.family == AddressFamily::unix_path) {
      line("mode", quote(format_mode(listener.mode)));
    }
    if (listener.address.family == AddressFamily::ipv6) {
      line("ipv6_only", listener.ipv6_only ? "true" : "false");
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

  out += "\n[stop]\n";
  line("signal", quote(signal_name(config.stop.signal)));
  line("grace", quote(format_duration(config.stop.grace)));

  out += "\n[log]\n";
  constexpr std::array<std::string_view, 5> levels{"trace", "debug", "info", "warn", "error"};
  line("level", quote(levels[static_cast<std::size_t>(config.log.level)]));
  optional_line("file", config.log.file ? std::optional(quote(*config.log.file)) : std::nullopt,
                "unset (stderr)");
  return out;
}

std::optional<int> parse_signal(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int number = 0;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    if (result.ec == std::errc{} && number >= 1 && number <= max_signal) {
      return number;
    }
    return std::nullopt;
  }
  // Names are matched without regard to case and with or without "SIG", as kill(1) does.
  std::string upper;
  for (const char c : text) {
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  std::string_view name = upper;
  if (name.starts_with("SIG")) {
    name.remove_prefix(3);
  }
  for (const auto& known : signal_names) {
    if (known.name == name) {
      return known.number;
    }
  }
  return std::nullopt;
}

std::string signal_name(int signal) {
  for (const auto& known : signal_names) {
    if (known.number == signal) {
      return std::string(known.name);
    }
  }
  return std::to_string(signal);
}

}  // namespace clusterd
