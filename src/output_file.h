// output.file: the file workers' lines go to instead of clusterd's stdout and stderr, opened as
// log.file is (log_file.h: a trusted directory, no link followed) and rotated by size.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

struct OpenedOutputFile {
  Fd fd;
  std::uint64_t size = 0;  // what it held when opened, appended to from there
};

// Opens `path` for appending (creating it); the error names the path, what is wrong and the fix.
tl::expected<OpenedOutputFile, std::string> open_output_file(const std::string& path, uid_t euid);

// Rotation by size: PATH.1 … PATH.(keep-1) move one up (PATH.keep, the oldest, is replaced), PATH
// becomes PATH.1, and a new, empty PATH is opened. Every rename is made relative to the
// directory checked once more as trusted, so no name another user planted is followed.
tl::expected<OpenedOutputFile, std::string> rotate_output_file(const std::string& path, int keep, uid_t euid);

}  // namespace clusterd
