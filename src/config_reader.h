// Reads one TOML value as the type its key expects (string, integer in a range, duration, size, choice,
// user or group, section table), reporting a wrong type or an out-of-range value at the value.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "toml_library.h"

#include "config_report.h"
#include "duration.h"

namespace clusterd::config_detail {

inline constexpr std::string_view duration_expected = "a duration with a unit such as \"5s\"";
inline constexpr std::string_view size_expected = "a size with a unit KiB, MiB or GiB such as \"512MiB\"";
inline constexpr std::string_view name_expected = "1-64 characters of A-Za-z0-9._-";

// The characters of `name` and of listener names: A-Za-z0-9._-.
bool is_name_char(char c);
// 1-64 of is_name_char.
bool is_valid_name(std::string_view name);

// Every read returns the value, or nullopt after reporting what is wrong with it.
class ValueReader {
 public:
  explicit ValueReader(Reporter& report) : report_(report) {}

  Reporter& report() { return report_; }

  std::optional<std::string> string(const toml::node& node, const std::string& key,
                                    std::string_view expected);
  // A string that is not "".
  std::optional<std::string> nonempty_string(const toml::node& node, const std::string& key,
                                             std::string_view expected);
  // An integer in [min, max]; `expected` describes the range, or only its lower end when the
  // upper one is just what an int holds: then a value above it gets its own message.
  std::optional<std::int64_t> integer(const toml::node& node, const std::string& key, std::int64_t min,
                                      std::int64_t max, std::string_view expected);
  // A duration string with units ("1m30s"); `positive` refuses "0s" as well.
  std::optional<Duration> duration(const toml::node& node, const std::string& key, bool positive);
  // A size string with a unit ("512MiB") in bytes; a bare number, in TOML or in the string, is
  // refused (interface §1). `positive` refuses "0MiB" as well.
  std::optional<std::uint64_t> size(const toml::node& node, const std::string& key, bool positive);
  // One of `choices`, returned as its index.
  std::optional<std::size_t> choice(const toml::node& node, const std::string& key,
                                    const std::vector<std::string_view>& choices);
  // `user`/`group`: a name, or a numeric id, which TOML may also hold as an integer; as a string.
  std::optional<std::string> account(const toml::node& node, const std::string& key,
                                     std::string_view expected);
  // The table of section `name` (after reporting its unknown keys); nullptr when absent or not a
  // table (reported).
  const toml::table* section(const toml::table& root, std::string_view name);
  // Reports every key of `table` that `section` does not know. `prefix`: how the section's keys
  // are shown ("restart.", "listen[1].", "" at the top level).
  void unknown_keys(const toml::table& table, std::string_view section, const std::string& prefix);

 private:
  Reporter& report_;
};

}  // namespace clusterd::config_detail
