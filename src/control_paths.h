// Where control sockets live (interface §4.4): the default directories, the path a start opens
// (creating and checking its directory), and the sockets a client subcommand finds.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "config.h"

namespace clusterd {

// The directories in the order of interface §4.4, from the environment's values (nullopt or
// empty: unset; a relative path is ignored, as systemd never sets one) and the effective uid:
// $RUNTIME_DIRECTORY (its first entry: systemd separates several with ':'), then
// $XDG_RUNTIME_DIR/clusterd, then /run/clusterd for root or /tmp/clusterd-UID for anyone else.
// `every_base`: both /run/clusterd and /tmp/clusterd-UID, for a client, which may ask an instance
// started by a unit (RuntimeDirectory=clusterd) or from a shell.
std::vector<std::string> control_directories(const std::optional<std::string>& runtime_directory,
                                             const std::optional<std::string>& xdg_runtime_dir, uid_t euid,
                                             bool every_base);

// The same from this process's environment and effective uid.
std::vector<std::string> control_directories_here(bool every_base);

// The rules behind control_directories, shared with the notify socket directory (which skips
// a base it cannot use and tries the next): every default directory in order, repeats kept,
// each with where it came from, and a line for each variable ignored for being relative.
struct DefaultDirectory {
  std::string path;
  bool from_runtime_directory = false;  // chosen for us by systemd; the others have predictable names
};
struct DefaultDirectories {
  std::vector<DefaultDirectory> directories;
  std::vector<std::string> ignored;  // "$XDG_RUNTIME_DIR=run: not an absolute path"
};
DefaultDirectories default_directories(const std::optional<std::string>& runtime_directory,
                                       const std::optional<std::string>& xdg_runtime_dir, uid_t euid,
                                       bool every_base);
DefaultDirectories default_directories_here(bool every_base);

// Makes `path` usable as a private directory: created 0700 when missing (`create`; without it a
// missing directory is fine if its parent exists), and then it must be a directory owned by
// clusterd's euid and writable by neither group nor others. The one-line problem names the
// directory as `what` ("control socket directory") followed by its path.
std::optional<std::string> prepare_private_directory(const std::string& path, bool create, std::string_view what);

// The path a start opens for `control` of instance `name`; nullopt for "none". The default is
// NAME.sock in the first of control_directories_here(false); that directory is created 0700 when
// missing, and an existing one must be a directory owned by clusterd's uid and writable by
// neither group nor others. An explicit control.socket is the operator's choice: its directory
// must exist, and is neither created nor judged. `create`: false for `check`, which creates
// nothing (a missing directory is fine then if its parent exists). The error is one line for
// stderr, then exit 2.
tl::expected<std::optional<std::string>, std::string> control_socket_path(const ControlConfig& control,
                                                                         const std::string& name, bool create);

// What a client found: the sockets in `directories` named NAME.sock (or any *.sock without a
// name), in directory order, and every path it looked at, for the message when there is none.
// A directory is searched only when open_trusted_directory (trusted_path.h) trusts it for a
// process of `euid`: owned by root or `euid` and writable by no one else, nor anything above it
// but a sticky directory. In another, any user could have put a socket of their own (a fake
// clusterd) under the name a client looks for: such a directory is in `untrusted`, not `tried`.
// A missing directory is tried and passed over.
struct ControlSearch {
  std::vector<std::string> found;
  std::vector<std::string> tried;      // "DIR/NAME.sock", or "DIR/*.sock" without a name
  std::vector<std::string> untrusted;  // why each existing directory was not searched
};
ControlSearch find_control_sockets(const std::vector<std::string>& directories,
                                   const std::optional<std::string>& name, uid_t euid);

}  // namespace clusterd
