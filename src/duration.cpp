// Parses and formats durations ("1m30s") and sizes ("512MiB") as operators write them.
#include "duration.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

namespace clusterd {
namespace {

struct DurationUnit {
  std::string_view name;
  std::int64_t milliseconds;
};

// Largest first: the order parse_duration requires and format_duration writes.
constexpr std::array<DurationUnit, 4> duration_units{{
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads the decimal digits at the front of `text` into `value`; false on overflow or when there
// are none. A sign is not a digit, so "-1s" and "+1s" are refused here.
bool take_integer(std::string_view& text, std::uint64_t& value) {
  std::size_t length = 0;
  value = 0;
  while (length < text.size() && is_digit(text[length])) {
    const auto digit = static_cast<std::uint64_t>(text[length] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      return false;
    }
    value = value * 10 + digit;
    ++length;
  }
  text.remove_prefix(length);
  return length > 0;
}

// The unit at the front of `text`, as an index into duration_units; -1 if none. "ms" is tried
// before "m": "1ms" cannot mean one minute followed by something, because "s" alone would need
// digits in front of it.
int take_unit(std::string_view& text) {
  if (text.starts_with("ms")) {
    text.remove_prefix(2);
    return 3;
  }
  for (int index = 0; index < 3; ++index) {
    if (text.starts_with(duration_units[static_cast<std::size_t>(index)].name)) {
      text.remove_prefix(1);
      return index;
    }
  }
  return -1;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  constexpr auto max_ms = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
  std::uint64_t total_ms = 0;
  int previous_unit = -1;
  while (!text.empty()) {
    std::uint64_t value = 0;
    if (!take_integer(text, value)) {
      return std::nullopt;
    }
    const int unit = take_unit(text);
    // Units strictly decreasing: each at most once, and "30s1m" is refused rather than guessed.
    if (unit < 0 || unit <= previous_unit) {
      return std::nullopt;
    }
    previous_unit = unit;
    const auto scale = static_cast<std::uint64_t>(duration_units[static_cast<std::size_t>(unit)].milliseconds);
    if (value > max_ms / scale || value * scale > max_ms - total_ms) {
      return std::nullopt;
    }
    total_ms += value * scale;
  }
  return Duration{static_cast<Duration::rep>(total_ms)};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  if (!take_integer(text, value)) {
    return std::nullopt;
  }
  std::uint64_t scale = 0;
  if (text == "KiB") {
    scale = std::uint64_t{1} << 10;
  } else if (text == "MiB") {
    scale = std::uint64_t{1} << 20;
  } else if (text == "GiB") {
    scale = std::uint64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / scale) {
    return std::nullopt;
  }
  return value * scale;
}

std::string format_duration(Duration duration) {
  // Canonical rather than fewest characters: every unit that is not zero, largest first, so
  // 90000ms is "1m30s" (not "90s") and the output reads the way operators write durations.
  if (duration.count() == 0) {
    return "0s";
  }
  std::string text;
  // A negative duration cannot be written in the config; it gets a sign so that a bug shows
  // instead of printing a wrong positive value.
  std::uint64_t rest = 0;
  if (duration.count() < 0) {
    text = "-";
    rest = static_cast<std::uint64_t>(-(duration.count() + 1)) + 1;
  } else {
    rest = static_cast<std::uint64_t>(duration.count());
  }
  for (const auto& unit : duration_units) {
    const auto scale = static_cast<std::uint64_t>(unit.milliseconds);
    const std::uint64_t count = rest / scale;
    rest %= scale;
    if (count > 0) {
      text += std::to_string(count);
      text += unit.name;
    }
  }
  return text;
}

std::string format_duration_human(std::chrono::duration<double> duration) {
  // One rule, three ranges, always two components so columns line up in logs:
  //   below 60 s (after rounding to a tenth): seconds with one decimal, "0.4s", "59.9s";
  //   below 1 h (after rounding to a second): "XmYs", "1m0s", "12m3s";
  //   from 1 h (rounded to a minute): "XhYm", "2h5m".
  double seconds = duration.count();
  if (std::isnan(seconds)) {
    return "?";
  }
  std::string sign;
  if (seconds < 0) {
    sign = "-";
    seconds = -seconds;
  }
  // Far beyond any real uptime; keeps the integer conversions below defined.
  constexpr double max_seconds = 1e15;
  if (seconds > max_seconds) {
    return sign + "inf";
  }
  const auto tenths = static_cast<std::int64_t>(std::llround(seconds * 10));
  if (tenths < 600) {
    return sign + std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
  }
  const auto whole_seconds = static_cast<std::int64_t>(std::llround(seconds));
  if (whole_seconds < 3600) {
    return sign + std::to_string(whole_seconds / 60) + "m" + std::to_string(whole_seconds % 60) + "s";
  }
  const auto minutes = static_cast<std::int64_t>(std::llround(seconds / 60));
  return sign + std::to_string(minutes / 60) + "h" + std::to_string(minutes % 60) + "m";
}

}  // namespace clusterd
