// Parses one sd_notify datagram ("READY=1\nSTATUS=…") into the fields clusterd acts on.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace clusterd {

// systemd reads notifications into a PIPE_BUF buffer and drops longer ones (protocols §2.1:
// NOTIFY_BUFFER_MAX): clusterd accepts, and sends, exactly what systemd accepts.
inline constexpr std::size_t notify_buffer_max = 4096;

// What one datagram said. Pure data: a field not given keeps its default. A datagram that
// carried nothing clusterd acts on (`BARRIER=1`, unknown keys) parses to all defaults.
struct NotifyMessage {
  bool ready = false;                                       // READY=1
  bool stopping = false;                                    // STOPPING=1
  bool reloading = false;                                   // RELOADING=1
  bool watchdog = false;                                    // WATCHDOG=1
  bool watchdog_trigger = false;                            // WATCHDOG=trigger
  std::optional<std::string> status;                        // STATUS=, valid UTF-8 only
  std::optional<std::chrono::microseconds> extend_timeout;  // EXTEND_TIMEOUT_USEC=
  std::optional<int> errno_value;                           // ERRNO=, ≥ 0
  bool mainpid = false;  // MAINPID= given: logged and ignored (a worker may not redirect supervision)

  bool operator==(const NotifyMessage&) const = default;
};

// Newline-separated KEY=VALUE lines, trailing newline optional (protocols §2.1), read the way
// systemd's manager reads them (src/core/service.c, service_notify_message): a flag is set by an
// exact line anywhere (`READY=1`; `READY=yes` is nothing), and for a key with a value the first
// occurrence decides, even when it is invalid (strv_find_startswith()). Skipped: lines without
// '=', lines containing NUL, unparsable or negative numbers, a STATUS that is not UTF-8, and the
// keys clusterd does not act on (BARRIER=1, MONOTONIC_USEC=, FDSTORE=, X_…, unknown ones).
NotifyMessage parse_notify_message(std::string_view datagram);

}  // namespace clusterd
