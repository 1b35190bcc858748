// Reads a small text file whole: /proc and /sys entries, cgroup files.
#pragma once

#include <optional>
#include <string>

namespace clusterd {

// The file's content; nullopt when it cannot be opened or read.
std::optional<std::string> read_text_file(const std::string& path);

}  // namespace clusterd
