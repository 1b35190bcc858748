// Connects a client to a control socket it may believe: one that only root or the client's own
// user could have put at its path, served by a process of root or that user (SO_PEERCRED).
//
// Who could answer decides what `clusterd stop` prints: anyone who may create /tmp/clusterd-0, or
// a file in a directory others may write, could serve a fake clusterd there that says "ok" to a
// stop that stopped nothing. So the path is judged as trusted_path.h judges the files clusterd
// uses, and the server's uid after connect(), before a request is sent. This holds for an
// explicit --control PATH too: the operator named the path, not whoever serves it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

// Why a control server whose SO_PEERCRED is `server_uid` and `server_pid` is not believed by a
// client of effective uid `euid`: only root or `euid` may serve it. nullopt when it is believed.
// The text names the socket `path`, the server's uid and pid, and the fix.
std::optional<std::string> untrusted_server(std::string_view path, uid_t server_uid, pid_t server_pid,
                                            uid_t euid);

// Why connect_control failed, in one line for stderr (without "clusterd: ").
struct ConnectFailure {
  enum class Kind {
    unreachable,  // nothing answers there: missing, refused, permission denied, a bad path
    untrusted,    // another user could have put it there, or another user's process serves it
  };
  Kind kind = Kind::unreachable;
  std::string message;
};

// A connected socket to the control socket at `path` for a client of effective uid `euid`:
// - every directory from / to the one holding the socket is trusted (open_trusted_directory, as
//   DirectoryRole::holds_the_file: so not /tmp itself);
// - a symbolic link as its last name is followed when root or `euid` owns it, and its target
//   judged the same way (8 links at most);
// - after connect(), the server's SO_PEERCRED uid is root or `euid` (untrusted_server).
// Unreachable: "cannot connect to control socket PATH: REASON" (with a hint when nothing listens).
tl::expected<Fd, ConnectFailure> connect_control(const std::string& path, uid_t euid);

}  // namespace clusterd
