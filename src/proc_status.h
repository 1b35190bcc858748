// Reads a worker's resident memory (VmRSS) out of the text of /proc/<pid>/status.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace clusterd {

// "VmRSS:\t  12345 kB" → 12345 * 1024 bytes; nullopt when the line is missing (a kernel thread,
// or a zombie) or malformed.
std::optional<std::uint64_t> parse_vm_rss(std::string_view proc_status);

}  // namespace clusterd
