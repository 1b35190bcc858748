// sd_notify over unix datagram sockets, both ways: one socket per worker instance that workers
// report to (protocols §2.3), and the client clusterd reports to systemd with (§2.2).
#pragma once

#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "fd.h"
#include "notify_message.h"

namespace clusterd {

// A private directory for workers' notify sockets (protocols §2.3 step 1), removed, with
// anything left in it, on destruction. Move-only. It does not create sockets itself; it only
// chooses where they go and guarantees their paths fit in sun_path.
class NotifyDirectory {
 public:
  // Bytes kept free after the directory path for "/" + a socket file name: any name up to
  // socket_name_room - 1 bytes fits in sun_path (107 bytes).
  static constexpr std::size_t socket_name_room = 32;

  // Creates "<base>/<name>.notify.XXXXXX" (mkdtemp, then chmod 0711: workers may pass through,
  // not list) under the first usable base of: $RUNTIME_DIRECTORY (its first entry),
  // $XDG_RUNTIME_DIR/clusterd, /run/clusterd (root) or /tmp/clusterd-<uid> (non-root), and as a
  // last resort /tmp itself. A base clusterd creates is 0700; an existing one must be a
  // directory owned by us and writable by neither group nor others (interface §4.4). When
  // `worker_uid` is given and some directory on a base's path is not searchable by that uid
  // (judged from the mode bits: its owner's bit for the owner, else both the group and the
  // other bit, since the worker's groups are not known here), that base is skipped, which
  // ends at /tmp. `name` is shortened when needed to leave socket_name_room. The error lists
  // why each base was refused.
  static tl::expected<NotifyDirectory, std::string> create(const std::string& name, std::optional<uid_t> worker_uid);

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
  explicit NotifyDirectory(std::string path) : path_(std::move(path)) {}
  void remove() noexcept;

  std::string path_;  // empty once moved from
};

// One worker instance's NOTIFY_SOCKET (protocols §2.3 steps 2, 4–6). Move-only; the socket
// file is unlinked on destruction. Open it before the worker is spawned: datagrams queued
// before SO_PASSCRED is set carry no usable credentials.
class WorkerNotifySocket {
 public:
  // SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, SO_PASSCRED set before bind; the file is created
  // with no permissions, then chowned to `owner`/`group` (when given) and made 0600: sending
  // needs write permission, so only that user (and root) can. `path` must not exist and must
  // fit in sun_path. The error names the step: `bind /run/x/w0-1-1.sock: Address in use`.
  static tl::expected<WorkerNotifySocket, std::string> open(const std::string& path, std::optional<uid_t> owner,
                                                            std::optional<gid_t> group);

  WorkerNotifySocket(WorkerNotifySocket&& other) noexcept;
  WorkerNotifySocket& operator=(WorkerNotifySocket&& other) noexcept;
  WorkerNotifySocket(const WorkerNotifySocket&) = delete;
  WorkerNotifySocket& operator=(const WorkerNotifySocket&) = delete;
  ~WorkerNotifySocket();

  int fd() const { return fd_.get(); }  // an epoll source: readable while datagrams are queued
  const std::string& path() const { return path_; }

  // Reads pending datagrams without blocking, until EAGAIN or max_per_drain of them (epoll is
  // level-triggered, so a sender that keeps the queue full cannot hold the loop here; the rest
  // is reported readable again). Every SCM_RIGHTS fd received is closed at once, which is what
  // completes the sender's sd_notify_barrier(). Dropped, and counted in `dropped`: truncated
  // datagrams (over 4096 bytes), ones without credentials or with pid ≤ 0, and ones whose sender
  // is neither `worker_pid` nor a descendant of it (PPid chain in /proc, at most 16 steps; a
  // sender that already exited and was reaped cannot be checked and is dropped). Returns the
  // accepted messages in arrival order, including ones that say nothing clusterd acts on (a
  // BARRIER=1 parses to an empty NotifyMessage). Never throws for the peer's doing; an
  // unexpected recvmsg error ends the drain and is logged at debug.
  std::vector<NotifyMessage> drain(pid_t worker_pid, int& dropped);

  static constexpr int max_per_drain = 1024;

 private:
  WorkerNotifySocket(Fd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  void unlink_file() noexcept;

  Fd fd_;
  std::string path_;  // empty once moved from
};

// The client to systemd (protocols §2.2). Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
// once and leaves them in the environment (spawn_plan keeps them from workers). Move-only.
class SystemdNotifier {
 public:
  // NOTIFY_SOCKET "/path" or "@abstract" enables it; unset or empty leaves it disabled; any
  // other form (vsock:…, a relative path) leaves it disabled and says why in problem().
  static SystemdNotifier from_environment();

  bool enabled() const { return address_length_ != 0; }
  // Why a NOTIFY_SOCKET that was set is not used, for one log line at start.
  const std::optional<std::string>& problem() const { return problem_; }

  // One datagram, sendto(MSG_NOSIGNAL) on a socket with a 1 s send timeout: the receiver is
  // addressed anew each time (systemd may have re-executed and bound a new socket), and a
  // receiver that does not read for a second must not freeze clusterd's loop for longer.
  // nullopt on success or when disabled; otherwise the error, for the caller to log once.
  // Messages over 4096 bytes are refused: systemd would drop them (protocols §2.1).
  std::optional<std::string> send(std::string_view message);

  // WATCHDOG_USEC, when enabled, positive, and WATCHDOG_PID is unset or our pid
  // (sd_watchdog_enabled(3)). clusterd pings at half of it from its event loop.
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_timeout_; }

 private:
  SystemdNotifier() = default;

  Fd fd_;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;  // 0: disabled
  std::string shown_;             // NOTIFY_SOCKET as given, for messages
  std::optional<std::string> problem_;
  std::optional<std::chrono::microseconds> watchdog_timeout_;
};

// CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC= (protocols §2.2).
std::chrono::microseconds monotonic_now();

}  // namespace clusterd
