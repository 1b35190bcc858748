// The keys this version of the config knows, and the "did you mean" suggestion for one it does not.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <string>
#include <string_view>

namespace clusterd::config_detail {

struct KnownKey {
  std::string_view section;  // "" for the top level; "listen" for each [[listen]] table
  std::string_view name;
  bool text;  // `--set` takes the value as written, without TOML quoting
};

// The known key `name` of `section`; nullptr when this version has no such key.
const KnownKey* find_known(std::string_view section, std::string_view name);

// Whether `name` is a top-level key that holds a table: listen, env, restart, ready, stop,
// reload, recycle, control, log.
bool is_section(std::string_view name);

// `unknown key "dealy"; did you mean "restart.delay"?`. A close key of the same section wins; else
// the same name in another section (a key written under the wrong [header], the usual TOML trap).
// `shown_prefix` is how keys of `section` are shown ("restart.", "listen[1].", "").
std::string unknown_key_message(std::string_view section, std::string_view name,
                                std::string_view shown_prefix);

// For `--set rstart.delay=1s`, whose section is not a section at all:
// `unknown key "rstart.delay"; did you mean "restart.delay"?`.
std::string unknown_section_message(std::string_view section, std::string_view name);

}  // namespace clusterd::config_detail
