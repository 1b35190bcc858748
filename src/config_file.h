// Reads the config file so that what is read is what was judged: the file and every directory on
// its path belong to root or clusterd's own user and may be written by no one else (like sshd's
// StrictModes), because whoever may change the file chooses the commands clusterd runs.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <sys/types.h>

#include <string>

#include <tl/expected.hpp>

namespace clusterd::config_detail {

// The text of the config file `path`, as a process of effective uid `euid` may trust it; else
// the message of the Diagnostic at `path`:
// - "cannot read config file: REASON" when it cannot be read (missing, a directory, EACCES);
// - "config file refused: WHY (FIX)" when a user other than root and `euid` could have changed
//   what it holds: the file, a directory on its path, or a symbolic link on the way is theirs,
//   or the file or a directory is writable by group or others (trusted_path.h's rules). WHY
//   names the path and FIX the chmod or chown that mends it.
// A symbolic link (the last name included: /etc/clusterd/clusterd.toml -> /srv/shop.toml) is
// followed only when its owner is trusted, and where it leads is judged the same way. The file is
// opened with O_NOFOLLOW relative to the directory that was checked, and the opened file is the
// one that is judged and read, so nothing can be swapped in between.
tl::expected<std::string, std::string> read_config_file(const std::string& path, uid_t euid);

}  // namespace clusterd::config_detail
