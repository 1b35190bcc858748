// Parses one sd_notify datagram into the fields clusterd acts on (protocols §2.1, §2.3 step 7).
#include "notify_message.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "decimal.h"

namespace clusterd {
namespace {

// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing above U+10FFFF.
// STATUS ends up in `status` replies, and nlohmann-json refuses to serialise invalid UTF-8
// (it throws), so a bad STATUS is dropped here like systemd drops it (utf8_is_valid()).
bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) {
      return false;
    }
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) {
        return false;
      }
      code = (code << 6) | (next & 0x3F);
    }
    const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

// Applies one KEY=VALUE line. `seen_*` make the first occurrence of a valued key decide.
struct Parser {
  NotifyMessage message;
  bool seen_status = false;
  bool seen_extend_timeout = false;
  bool seen_errno = false;

  void line(std::string_view text) {
    const std::size_t equals = text.find('=');
    if (equals == std::string_view::npos || equals == 0 || text.find('\0') != std::string_view::npos) {
      return;
    }
    const std::string_view key = text.substr(0, equals);
    const std::string_view value = text.substr(equals + 1);
    if (text == "READY=1") {
      message.ready = true;
    } else if (text == "STOPPING=1") {
      message.stopping = true;
    } else if (text == "RELOADING=1") {
      message.reloading = true;
    } else if (text == "WATCHDOG=1") {
      message.watchdog = true;
    } else if (text == "WATCHDOG=trigger") {
      message.watchdog_trigger = true;
    } else if (key == "STATUS") {
      if (!std::exchange(seen_status, true) && is_valid_utf8(value)) {
        message.status = std::string(value);
      }
    } else if (key == "EXTEND_TIMEOUT_USEC") {
      if (!std::exchange(seen_extend_timeout, true)) {
        if (const auto usec = parse_decimal(value)) {
          // systemd's USEC_INFINITY is UINT64_MAX; anything beyond the signed range is "forever".
          constexpr auto most = static_cast<std::uint64_t>(std::numeric_limits<std::chrono::microseconds::rep>::max());
          message.extend_timeout = std::chrono::microseconds(static_cast<std::int64_t>(std::min(*usec, most)));
        }
      }
    } else if (key == "ERRNO") {
      if (!std::exchange(seen_errno, true)) {
        const auto number = parse_decimal(value);
        if (number && *number <= static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
          message.errno_value = static_cast<int>(*number);
        }
      }
    } else if (key == "MAINPID") {
      message.mainpid = true;
    }
  }
};

}  // namespace

NotifyMessage parse_notify_message(std::string_view datagram) {
  Parser parser;
  while (!datagram.empty()) {
    const std::size_t newline = datagram.find('\n');
    parser.line(datagram.substr(0, newline));
    if (newline == std::string_view::npos) {
      break;
    }
    datagram.remove_prefix(newline + 1);
  }
  return parser.message;
}

}  // namespace clusterd
