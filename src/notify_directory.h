// The private directory for workers' notify sockets: where it goes, and its removal.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "control_paths.h"
#include "fd.h"

namespace clusterd {

// A private directory for workers' notify sockets (protocols §2.3 step 1), removed, with
// anything left in it, on destruction. Move-only. It does not create sockets itself; it only
// chooses where they go and guarantees their paths fit in sun_path.
class NotifyDirectory {
 public:
  // Bytes kept free after the directory path for "/" + a socket file name: any name up to
  // socket_name_room - 1 bytes fits in sun_path (107 bytes).
  static constexpr std::size_t socket_name_room = 32;

  // Creates "<base>/<name>.notify.XXXXXX" (mkdtemp, then fchmod 0711 through the directory's
  // own fd: workers may pass through, not list) under the first usable base of:
  // $RUNTIME_DIRECTORY (its first entry), $XDG_RUNTIME_DIR/clusterd, /run/clusterd (root) or
  // /tmp/clusterd-<uid> (non-root), and as a last resort /tmp itself. Directories of the same
  // name that a SIGKILLed clusterd left behind (their lock is free) are removed first. A base
  // clusterd creates is 0700; an existing one must be a directory owned by us and writable by
  // neither group nor others (interface §4.4). Every base, $RUNTIME_DIRECTORY and /tmp included,
  // must also be trusted with every directory above it (trusted_path.h), the base itself being
  // allowed to be world-writable only with the sticky bit (as /tmp is); a base that is not is
  // skipped with a warning that says why, whatever the control socket's settings. When
  // `worker_uid` is given and some directory on a base's path is not searchable by that uid
  // (judged from the mode bits: its owner's bit for the owner, else both the group and the
  // other bit, since the worker's groups are not known here), that base is skipped, which
  // ends at /tmp. `name` is shortened when needed to leave socket_name_room. The error lists
  // why each base was refused.
  static tl::expected<NotifyDirectory, std::string> create(const std::string& name, std::optional<uid_t> worker_uid);
  // The same, with the bases given instead of the control socket's defaults (tests name their
  // own, so that no test touches /run/clusterd); /tmp still comes last.
  static tl::expected<NotifyDirectory, std::string> create(const std::string& name, std::optional<uid_t> worker_uid,
                                                           DefaultDirectories bases);

  // The directory an earlier clusterd of this process made, with its lock (`clusterd upgrade`).
  static NotifyDirectory adopt(std::string path, Fd lock) { return NotifyDirectory(std::move(path), std::move(lock)); }
  int lock_fd() const { return lock_.get(); }

  NotifyDirectory(NotifyDirectory&& other) noexcept;
  NotifyDirectory& operator=(NotifyDirectory&& other) noexcept;
  NotifyDirectory(const NotifyDirectory&) = delete;
  NotifyDirectory& operator=(const NotifyDirectory&) = delete;
  ~NotifyDirectory();

  const std::string& path() const { return path_; }
  // "<path>/w<slot>-<generation>-<instance>.sock": the old and new worker of a slot run side by
  // side during a reload or recycle, so slot and generation alone are not unique (§2.3).
  std::string worker_socket_path(int slot, std::uint64_t generation, std::uint64_t instance) const;

 private:
  NotifyDirectory(std::string path, Fd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  void remove() noexcept;

  std::string path_;  // empty once moved from
  Fd lock_;           // flock()ed while we run: how a later clusterd tells a stale directory
};

}  // namespace clusterd
