// Config values written as TOML text, for diagnostics and for to_toml: strings, floats, modes, sizes.
#include "config_format.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

namespace clusterd::config_detail {

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

std::string format_size(std::uint64_t bytes) {
  constexpr std::uint64_t kib = std::uint64_t{1} << 10;
  constexpr std::uint64_t mib = std::uint64_t{1} << 20;
  constexpr std::uint64_t gib = std::uint64_t{1} << 30;
  if (bytes != 0 && bytes % gib == 0) {
    return std::to_string(bytes / gib) + "GiB";
  }
  if (bytes != 0 && bytes % mib == 0) {
    return std::to_string(bytes / mib) + "MiB";
  }
  return std::to_string(bytes / kib + (bytes % kib != 0 ? 1 : 0)) + "KiB";
}

std::string format_mode(unsigned mode) {
  std::array<char, 8> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%04o", mode);
  return buffer.data();
}

}  // namespace clusterd::config_detail
