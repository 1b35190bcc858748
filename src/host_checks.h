// The HostChecks that build_config asks (config.h), answered by this system: the file system,
// PATH and the user and group databases. Reads only; creates nothing.
#pragma once

#include <string>

#include <tl/expected.hpp>

#include "config.h"

namespace clusterd {

// The real checks, each answering as a start would find it:
// - directory: an existing directory (stat);
// - program: find_program below;
// - user, group: a known user; a known group or a numeric gid (credentials.h);
// - log_file: check_log_file (log_file.h): its directory exists and is trusted (no user but root
//   and clusterd's own may write it), and the file is either missing, and clusterd may create it
//   there, or a regular file with one link, no symbolic link, owned by root or clusterd's user,
//   that clusterd may write. Nothing is created: a missing directory is an error, not made, and
//   `check` must not change the system.
// Access is checked for clusterd's own effective ids. May block on NSS (user, group).
HostChecks system_host_checks();

// PROGRAM (or command[0]) found as a start finds it: resolve_executable (executable_path.h) from
// `directory` with clusterd's PATH ("/usr/local/bin:/usr/bin:/bin" when unset). Returns the
// absolute path, or what is wrong: `cannot execute "srv": No such file or directory (searched
// PATH)`, `cannot execute "./data": Permission denied`, `cannot execute "./dir": is a directory`.
tl::expected<std::string, std::string> find_program(const std::string& program, const std::string& directory);

}  // namespace clusterd
