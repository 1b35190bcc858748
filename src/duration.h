// Durations and sizes as operators write them ("1m30s", "512MiB") and as clusterd prints them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clusterd {

using Duration = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// "250ms", "2s", "1m30s", "1h": one or more <integer><unit> parts, units h, m, s, ms, in
// decreasing order. A bare number has no unit and is refused (interface §1).
std::optional<Duration> parse_duration(std::string_view text);

// "512MiB": an integer with a unit KiB, MiB or GiB. A bare number is refused.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The shortest exact form parse_duration accepts: "1m30s", "250ms", "0s".
std::string format_duration(Duration duration);

// For log lines and people: "0.4s", "1.6s", "12m3s", "2h5m".
std::string format_duration_human(std::chrono::duration<double> duration);

}  // namespace clusterd
