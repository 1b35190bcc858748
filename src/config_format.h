// Config values written as TOML text, for diagnostics and for to_toml: strings, floats, modes, sizes.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace clusterd::config_detail {

// A TOML basic string ("a \"b\""): every string clusterd writes or quotes stays on one line.
std::string quote(std::string_view text);

// The shortest text that reads back as the same double, always with a '.' or an exponent so
// TOML sees a float ("2.0", not "2"); "nan", "inf", "-inf" as TOML spells them.
std::string format_float(double value);

// Bytes in the largest unit that holds them exactly, as parse_size reads them back: 536870912 →
// "512MiB", 1536 MiB → "1536MiB", 3072 → "3KiB". A count that is not a whole number of KiB (no
// config value is one) falls back to "…KiB" rounded up, so the text still parses.
std::string format_size(std::uint64_t bytes);

// 0660 → "0660": four octal digits, as `listen.mode` is written.
std::string format_mode(unsigned mode);

}  // namespace clusterd::config_detail
