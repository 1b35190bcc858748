// Opens log.file for appending so that no link another user planted is followed, and judges an
// existing log file without opening it (what `check` and the pre-flight host checks ask).
//
// clusterd usually runs as root and reopens its log on SIGUSR1 (logrotate). Whoever may write
// the log's directory could put a symbolic link (or a hard link) to any file at the log's name
// between two rotations, and a root clusterd would then create or append to that file. So the
// directory must be trusted (trusted_path.h, as the directory that holds the file), the name is
// opened with O_NOFOLLOW relative to that directory's fd, and the opened file must be a regular
// file with one link, owned by clusterd's user or root.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

// Why the existing log file `path` whose lstat (or fstat) is `status` may not be appended to by a
// process of effective uid `euid`: a symbolic link, not a regular file, more than one hard link
// (another user could have made the name a second link to a file of theirs or of root's), or
// owned by someone other than root and `euid`. nullopt when it may. Pure.
std::optional<std::string> untrusted_log_file(std::string_view path, const struct stat& status, uid_t euid);

// Opens (creating it, mode 0644 less the umask, when missing) `path` for appending: its directory
// through open_trusted_directory, the file with O_NOFOLLOW | O_APPEND relative to it, then judged
// by untrusted_log_file on fstat. The error names the path, what is wrong and the fix.
// `key` names the setting in messages about its directory ("log.file directory /var/log: …").
// `mode`: a new file's (less the umask).
tl::expected<Fd, std::string> open_log_file(const std::string& path, uid_t euid, std::string_view key = "log.file",
                                            mode_t mode = 0644);

// What open_log_file would refuse, found without creating or opening anything for writing:
// `cannot open "PATH" for appending: REASON`; nullopt when it would open. Errors of the path
// itself (missing directory, not a directory, EACCES) keep their errno wording.
std::optional<std::string> check_log_file(const std::string& path, uid_t euid, std::string_view key = "log.file");

}  // namespace clusterd
