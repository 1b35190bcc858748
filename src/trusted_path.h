// Decides whether a user other than root or clusterd's own could change what a path names, and
// opens directories and files so that no link another user planted is followed.
//
// clusterd usually runs as root. A file it creates, writes or reads as configuration is only as
// safe as the directories above it: whoever may write one of them can swap a name in it for a
// symlink between clusterd's check and its use. So a path is trusted when every directory on it,
// from /, is owned by root or by clusterd's effective uid and is writable by no one else. A
// world-writable directory with the sticky bit (/tmp) may be on the way, since others cannot
// rename what is not theirs in it, but it may not hold the file: there anyone could have created
// the name first.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

// Where a directory is on the way to the file clusterd uses.
enum class DirectoryRole {
  on_the_way,       // an ancestor: the sticky bit makes world write harmless
  holds_the_file,   // the directory in which clusterd creates, replaces or reads the file
};

// Why the directory `path` whose lstat is `status` is not trusted by a process of uid `euid`, in a
// sentence that names the fix; nullopt when it is trusted.
std::optional<std::string> untrusted_directory(std::string_view path, const struct stat& status, uid_t euid,
                                               DirectoryRole role);

// Why the existing file `path` whose stat is `status` is not trusted as configuration by `euid`:
// not a regular file, owned by another user, or writable by group or others; nullopt when trusted.
std::optional<std::string> untrusted_file(std::string_view path, const struct stat& status, uid_t euid);

// Opens `directory` (absolute, or relative to the working directory) with O_PATH after checking
// every directory from / down to it, one openat() at a time without following a symlink, so
// what was checked is what is opened. `what` names the use in the message ("log.file directory").
// The fd serves as the dirfd of openat(), mkdirat(), unlinkat() and bind() through /proc.
tl::expected<Fd, std::string> open_trusted_directory(const std::string& directory, uid_t euid,
                                                     std::string_view what);

// The directory part and the last name of `path` ("/a/b/c" → "/a/b", "c"; "c" → ".", "c").
std::pair<std::string, std::string> split_directory(const std::string& path);

}  // namespace clusterd
