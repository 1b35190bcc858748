// One worker instance's NOTIFY_SOCKET, which clusterd reads the worker's readiness from.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "fd.h"
#include "notify_message.h"

namespace clusterd {

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

}  // namespace clusterd
