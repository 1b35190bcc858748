// Reads VmRSS out of the text of /proc/<pid>/status (proc(5)).
#include "proc_status.h"

#include <charconv>

namespace clusterd {

std::optional<std::uint64_t> parse_vm_rss(std::string_view proc_status) {
  constexpr std::string_view key = "VmRSS:";
  std::size_t at = 0;
  while (at < proc_status.size()) {
    const std::size_t end = std::min(proc_status.find('\n', at), proc_status.size());
    std::string_view line = proc_status.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with(key)) {
      continue;
    }
    line.remove_prefix(key.size());
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    std::uint64_t kibibytes = 0;
    const auto [rest, error] = std::from_chars(line.data(), line.data() + line.size(), kibibytes);
    if (error != std::errc{} || std::string_view(rest, line.data() + line.size()) != " kB") {
      return std::nullopt;
    }
    return kibibytes * 1024;  // proc(5) says "kB" but means KiB
  }
  return std::nullopt;
}

}  // namespace clusterd
