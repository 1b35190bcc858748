// Reads memory, CPU time and children out of the text of /proc files (proc(5)).
#include "proc_status.h"

#include <charconv>

namespace clusterd {

namespace {

// The value of the "KEY:   1234 kB" line of `text`, in bytes.
std::optional<std::uint64_t> kib_line(std::string_view text, std::string_view key) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
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

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t value = 0;
  const auto [rest, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || rest != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<std::uint64_t> parse_vm_rss(std::string_view proc_status) { return kib_line(proc_status, "VmRSS:"); }

std::optional<std::uint64_t> parse_pss(std::string_view smaps_rollup) { return kib_line(smaps_rollup, "Pss:"); }

std::optional<std::uint64_t> parse_cpu_ticks(std::string_view proc_stat) {
  const std::size_t name_end = proc_stat.rfind(')');
  if (name_end == std::string_view::npos) {
    return std::nullopt;
  }
  // After ") ": field 3 (state) is word 0, so utime (14) is word 11 and stime (15) word 12.
  std::string_view rest = proc_stat.substr(name_end + 1);
  std::optional<std::uint64_t> utime;
  for (int word = 0; word <= 12; ++word) {
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    const std::size_t end = std::min(rest.find(' '), rest.size());
    if (end == 0) {
      return std::nullopt;
    }
    if (word == 11) {
      utime = number(rest.substr(0, end));
    } else if (word == 12) {
      const auto stime = number(rest.substr(0, end));
      if (!utime || !stime) {
        return std::nullopt;
      }
      return *utime + *stime;
    }
    rest.remove_prefix(end);
  }
  return std::nullopt;
}

std::vector<int> parse_children(std::string_view children) {
  std::vector<int> pids;
  while (!children.empty()) {
    const std::size_t end = std::min(children.find(' '), children.size());
    int pid = 0;
    const auto word = children.substr(0, end);
    const auto [rest, error] = std::from_chars(word.data(), word.data() + word.size(), pid);
    if (error == std::errc{} && rest == word.data() + word.size() && pid > 0) {
      pids.push_back(pid);
    }
    children.remove_prefix(std::min(end + 1, children.size()));
  }
  return pids;
}

}  // namespace clusterd
