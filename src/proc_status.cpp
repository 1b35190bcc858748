// Reads memory, CPU time and children out of the text of /proc files (proc(5)).
#include "proc_status.h"

#include <algorithm>
#include <array>
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

std::optional<ProcStat> parse_proc_stat(std::string_view proc_stat) {
  const std::size_t name_end = proc_stat.rfind(')');
  if (name_end == std::string_view::npos) {
    return std::nullopt;
  }
  // After ") ": field 3 (state) is word 0, so field F is word F - 3.
  constexpr std::size_t state = 0;
  constexpr std::size_t ppid = 1;
  constexpr std::size_t utime = 11;
  constexpr std::size_t stime = 12;
  constexpr std::size_t num_threads = 17;
  constexpr std::size_t rss = 21;
  std::array<std::string_view, rss + 1> words;
  std::string_view rest = proc_stat.substr(name_end + 1);
  for (std::string_view& word : words) {
    rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
    const std::size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    if (end == 0) {
      return std::nullopt;
    }
    word = rest.substr(0, end);
    rest.remove_prefix(end);
  }
  // Only the fields wanted are read as numbers: others may be negative (tpgid -1, nice).
  const auto parent = number(words[ppid]);
  const auto user = number(words[utime]);
  const auto system = number(words[stime]);
  const auto threads = number(words[num_threads]);
  const auto pages = number(words[rss]);
  if (!parent || !user || !system || !threads || !pages) {
    return std::nullopt;
  }
  return ProcStat{words[state].front(), static_cast<int>(*parent), *user + *system, static_cast<int>(*threads),
                  *pages};
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
