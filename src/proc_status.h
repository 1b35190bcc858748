// Reads what a process costs out of the text of its /proc files: resident and proportional memory
// (/proc/PID/status, /proc/PID/smaps_rollup), CPU time (/proc/PID/stat) and its children.
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

// User plus system CPU time in clock ticks (fields 14 and 15 of /proc/<pid>/stat, counted after
// the command name's closing parenthesis, as the name may hold spaces and parentheses).
std::optional<std::uint64_t> parse_cpu_ticks(std::string_view proc_stat);

// The pids of /proc/<pid>/task/<tid>/children ("4101 4102 "); whatever does not parse is skipped.
std::vector<int> parse_children(std::string_view children);

}  // namespace clusterd
