// Which file system a path is on, from the text of /proc/self/mountinfo, and whether that file
// system can make a call wait on a server or a daemon for as long as it is unreachable.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace clusterd {

// The type of the file system `absolute_path` is on: the mount in `mountinfo` (proc(5)'s
// /proc/PID/mountinfo text) with the longest mount point that contains it, the last one mounted
// where several share it. nullopt when none does (a path that is not absolute, or no "/" mount).
std::optional<std::string> file_system_type_of(std::string_view mountinfo, std::string_view absolute_path);

// A network file system or FUSE ("nfs4", "cifs", "fuse.sshfs", …): an exec or chdir there waits
// as long as the server or the FUSE daemon does not answer.
bool file_system_may_hang(std::string_view type);

// Whether starting a program at `executable` in `directory` (empty: clusterd's own) may wait on
// such a file system: read from /proc/self/mountinfo after resolving symbolic links. True when
// that cannot be read or resolved: forking then costs a little, sharing could hang clusterd.
bool launch_may_hang(const std::string& executable, const std::string& directory);

}  // namespace clusterd
