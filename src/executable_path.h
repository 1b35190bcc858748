// Where a worker's program is: the PATH search and relative-name rules of a start (interface §1).
#pragma once

#include <string>

#include <tl/expected.hpp>

namespace clusterd {

// Finds the program the way a start would (interface §1): a name with '/' is taken relative to
// `directory` (unless absolute), otherwise each entry of `path_variable` is tried. Returns the
// absolute path, or the errno of the failure (ENOENT, EACCES, …) for the message.
// An empty `directory` means clusterd's working directory; relative PATH entries (and an empty
// one, which means ".") are taken from `directory` too, because that is where the worker runs.
// An empty `path_variable` means "/bin:/usr/bin", as for execvp(3). A directory or another
// non-regular file is EACCES, as execve(2) says. Executability is checked for clusterd's own
// ids (access(2)); a worker's `user` may still be refused, which its exec then reports.
tl::expected<std::string, int> resolve_executable(const std::string& program,
                                                  const std::string& directory,
                                                  const std::string& path_variable);

}  // namespace clusterd
