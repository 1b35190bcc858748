// Collects the diagnostics of one build_config call, each at its value's position in the file or
// at the flag the value came from, and hands them out in report order.
//
// Internal to the config module (config*.cpp); the public API is config.h.
//
// A flag's value is parsed as a one-line TOML document whose source path is the flag text
// ("--set restart.delay=5", "--workers"); the node keeps that path when it is moved into the
// file's table. A source path registered with add_flag() therefore means "this came from that
// flag": its diagnostics name the flag, without a line, instead of a line of the file.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "toml_library.h"

#include "config.h"

namespace clusterd::config_detail {

// The origin of PROGRAM ARG... in diagnostics; ordered after the flags, like them without a line.
inline constexpr std::string_view program_origin = "command line";

class Reporter {
 public:
  // `file`: the config file's path as given ("" without one).
  explicit Reporter(std::string file) : file_(std::move(file)) {}

  // Registers a source path as a flag; flags are reported after the file, in registration order.
  void add_flag(const std::string& origin);

  bool from_flag(const toml::source_region& where) const;
  bool from_flag(const toml::node& node) const { return from_flag(node.source()); }

  // At a value: file:line:column, or the flag it came from.
  void at(const toml::source_region& where, std::string key, std::string message);
  // The diagnostic `at` would add, without adding it.
  Diagnostic diagnostic_at(const toml::source_region& where, std::string key, std::string message) const;
  // Where no value exists (a missing key, a flag that is not KEY=VALUE, PROGRAM's arguments).
  void at_origin(const std::string& origin, std::string key, std::string message);

  // "found X": strings quoted and numbers bare as in the file; the TOML type is named when it is
  // the wrong one (`wrong_type`). A flag's value is shown exactly as typed: on the command line
  // every value is text, so a type name would only describe how clusterd happened to read it.
  std::string found(const toml::node& node, bool wrong_type) const;

  // `expected EXPECTED, found TYPE VALUE` / `expected EXPECTED, found VALUE`.
  void wrong_type(const toml::node& node, std::string key, std::string_view expected);
  void bad_value(const toml::node& node, std::string key, std::string_view expected);

  // Every diagnostic so far, ordered by origin (the file first, then the flags in the order
  // given) and, within the file, by position: toml::table iterates its keys sorted, not in
  // document order, so the order of discovery means nothing.
  Diagnostics take();
  bool empty() const { return found_.empty(); }

  // A warning: valid, but most likely not what the operator meant (Config::warnings). Kept in
  // the order given, apart from the problems.
  void warn(Diagnostic diagnostic);
  std::vector<std::string> take_warnings();

 private:
  struct Ranked {
    int rank;  // 0: the file; 1, 2, …: the flags in the order registered
    Diagnostic diagnostic;
  };

  void add(Diagnostic diagnostic);

  std::string file_;
  std::map<std::string, int, std::less<>> flag_rank_;
  std::vector<Ranked> found_;
  std::vector<std::string> warnings_;
};

}  // namespace clusterd::config_detail
