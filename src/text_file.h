// Reads a small text file whole: /proc and /sys entries, cgroup files.
#pragma once

#include <optional>
#include <string>

namespace clusterd {

// The file's content; nullopt when it cannot be opened or read.
std::optional<std::string> read_text_file(const std::string& path);

// The file `name` relative to the directory `directory` (openat(2)) read whole into `text`, whose
// memory is kept for the next call: many /proc files read in a row allocate once. false when it
// cannot be opened or read (`text` then holds nothing useful).
bool read_file_at(int directory, const char* name, std::string& text);

}  // namespace clusterd
