// Reads what a process costs out of the text of its /proc files: CPU time, threads and resident
// memory (/proc/PID/stat; VmRSS of /proc/PID/status), proportional memory (/proc/PID/smaps_rollup)
// and its children.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace clusterd {

// "VmRSS:\t  12345 kB" → 12345 * 1024 bytes; nullopt when the line is missing (a kernel thread,
// or a zombie) or malformed.
std::optional<std::uint64_t> parse_vm_rss(std::string_view proc_status);

// "Pss:    2048 kB" out of /proc/<pid>/smaps_rollup → bytes; nullopt when missing or malformed.
std::optional<std::uint64_t> parse_pss(std::string_view smaps_rollup);

// What one read of /proc/<pid>/stat says about a process's cost.
struct ProcStat {
  char state = '?';              // field 3: 'R', 'S', … 'Z' (a zombie, or a leader thread that exited)
  int parent = 0;                // ppid (field 4)
  std::uint64_t cpu_ticks = 0;   // user plus system CPU time (fields 14 and 15), in clock ticks
  int threads = 0;               // num_threads (field 20)
  std::uint64_t rss_pages = 0;   // rss (field 24): the count VmRSS shows in kB, in pages
};

// Fields are counted after the command name's closing parenthesis, as the name may hold spaces
// and parentheses. nullopt when a field is missing or not a number.
std::optional<ProcStat> parse_proc_stat(std::string_view proc_stat);

// The pids of /proc/<pid>/task/<tid>/children ("4101 4102 "); whatever does not parse is skipped.
std::vector<int> parse_children(std::string_view children);

}  // namespace clusterd
