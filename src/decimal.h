// Reads an unsigned decimal number the strict way systemd's safe_atou64 does.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace clusterd {

// Decimal digits only: no sign, no spaces, no "0x" (systemd's safe_atou64 also refuses a
// leading '-', which strtoull would wrap around). Empty text and values above 2^64 - 1 are nullopt.
inline std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) {
    return std::nullopt;
  }
  return value;
}

}  // namespace clusterd
