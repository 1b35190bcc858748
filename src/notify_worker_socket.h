// One worker instance's NOTIFY_SOCKET, which clusterd reads the worker's readiness from.
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "fd.h"
#include "notify_message.h"
#include "notify_pacing.h"

namespace clusterd {

// One worker instance's NOTIFY_SOCKET (protocols §2.3 steps 2, 4–6). Move-only; the socket
// file is unlinked on destruction. Open it before the worker is spawned: datagrams queued
// before SO_PASSCRED is set carry no usable credentials.
class WorkerNotifySocket {
 public:
  // SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, SO_PASSCRED set before bind; the file is born with
  // mode 0600 (a umask around bind()), then, when `owner`/`group` are given, lchown()ed to them:
  // sending needs write permission, so only that user (and root) can. `path` must not exist, must
  // fit in sun_path and must be in a directory that only clusterd's user can write, on a trusted
  // path (NotifyDirectory's): the chown goes by name. The error names the step:
  // `bind /run/x/w0-1-1.sock: Address in use`.
  static tl::expected<WorkerNotifySocket, std::string> open(const std::string& path, std::optional<uid_t> owner,
                                                            std::optional<gid_t> group);

  // The bound socket `socket` an earlier clusterd of this process made at `path` (`clusterd
  // upgrade`), read from now on; the error names the step.
  static tl::expected<WorkerNotifySocket, std::string> adopt(Fd socket, std::string path);
  int socket_fd() const { return socket_.get(); }

  WorkerNotifySocket(WorkerNotifySocket&& other) noexcept;
  WorkerNotifySocket& operator=(WorkerNotifySocket&& other) noexcept;
  WorkerNotifySocket(const WorkerNotifySocket&) = delete;
  WorkerNotifySocket& operator=(const WorkerNotifySocket&) = delete;
  ~WorkerNotifySocket();

  // An epoll source (an epoll fd of its own, watching the socket): readable, level-triggered,
  // while drain() has something to do: datagrams are queued and reading is not paused, or a
  // pause has ended. While a flood pauses reading (NotifyPacing) it is not readable, so the
  // loop does not wake for the socket at all.
  int fd() const { return events_.get(); }
  const std::string& path() const { return path_; }

  // Reads pending datagrams without blocking, until EAGAIN, max_per_drain of them, or the
  // socket's pacing budget is spent (NotifyPacing: then reading pauses until the window ends,
  // and fd() turns readable again then). Every SCM_RIGHTS fd received is closed at once, which
  // is what completes the sender's sd_notify_barrier(). Dropped: truncated datagrams (over 4096
  // bytes), ones without credentials or with pid ≤ 0, and ones whose sender is neither
  // `worker_pid` nor a descendant of it (PPid chain in /proc, at most 16 steps; a sender that
  // already exited and was reaped cannot be checked and is dropped). The sender's credentials
  // are judged before anything else is read: the worker's own pid is accepted at once, and a
  // sender already found not to be a descendant (and still alive, so its pid is still its own)
  // is dropped without reading /proc again. `dropped` is increased by the drops to log now: at
  // most once per NotifyPacing::report_interval, the count since the last report (the first drop
  // at once); the rest is logged at debug level when the socket closes. Returns the accepted
  // messages in arrival order, including ones that say nothing clusterd acts on (a BARRIER=1
  // parses to an empty NotifyMessage). Never throws for the peer's doing; an unexpected recvmsg
  // error ends the drain and is logged at debug.
  std::vector<NotifyMessage> drain(pid_t worker_pid, int& dropped);

  static constexpr int max_per_drain = 1024;

 private:
  // A sender found not to be the worker nor its descendant, held by a pidfd so that its pid
  // cannot be taken by another process unnoticed.
  struct Stranger {
    pid_t pid = 0;
    Fd pidfd;
    bool alive_checked = false;  // in the current drain
  };
  static constexpr std::size_t strangers_kept = 4;

  WorkerNotifySocket(Fd socket, Fd events, std::string path)
      : socket_(std::move(socket)), events_(std::move(events)), path_(std::move(path)) {}
  bool accepts(pid_t sender, pid_t worker_pid);
  bool known_stranger(pid_t sender);
  void remember_stranger(pid_t sender, Fd pidfd);
  void pause_until(TimePoint resume);
  void resume_if_due(TimePoint now);
  void unlink_file() noexcept;

  Fd socket_;
  Fd events_;  // epoll: the socket while it is read, the pause timer while it is not
  Fd timer_;   // timerfd, made at the first pause
  std::string path_;  // empty once moved from
  NotifyPacing pacing_;
  std::optional<TimePoint> paused_until_;
  std::array<Stranger, strangers_kept> strangers_{};
  std::size_t next_stranger_ = 0;
  pid_t last_worker_pid_ = 0;
};

}  // namespace clusterd
