// One worker's NOTIFY_SOCKET: a datagram socket clusterd reads readiness from, accepting only
// the worker and its descendants (protocols §2.3 steps 2, 4–6), and paced so that a flood of
// datagrams from anyone else costs clusterd little.
#include "notify_worker_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>

#include "decimal.h"
#include "errno_text.h"
#include "pidfd.h"
#include "umask_scope.h"

namespace clusterd {
namespace {

// sun_path holds 108 bytes; a path needs its terminating NUL (unix(7)).
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

// Received fds beyond this are closed by the kernel itself when the control buffer is too small
// (unix(7), "excess file descriptors are automatically closed"); a barrier sends one.
constexpr std::size_t received_fds_max = 16;

// How far up the PPid chain a sender may sit below its worker (protocols §2.3 step 6).
constexpr int max_ancestry_steps = 16;

// The parent of `pid`, from field 4 of /proc/<pid>/stat; nullopt if the process is gone (a
// zombie still has its stat file, a reaped process has none). One open and one read: this runs
// for every datagram from a sender not seen before, so no stream or line parsing.
std::optional<pid_t> parent_of(pid_t pid) {
  std::array<char, 64> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/stat", static_cast<int>(pid));
  const Fd file(retry_on_eintr([&] { return ::open(path.data(), O_RDONLY | O_CLOEXEC | O_NOCTTY); }));
  if (!file) {
    return std::nullopt;
  }
  // "pid (comm) state ppid ...": comm is at most 16 bytes but may hold spaces and ')', so the
  // fields are found after the last ')'. 512 bytes reach well past field 4.
  std::array<char, 512> text{};
  const ssize_t length = retry_on_eintr([&] { return ::read(file.get(), text.data(), text.size()); });
  if (length <= 0) {
    return std::nullopt;
  }
  const std::string_view line(text.data(), static_cast<std::size_t>(length));
  const std::size_t comm_end = line.rfind(')');
  if (comm_end == std::string_view::npos || comm_end + 4 >= line.size()) {
    return std::nullopt;
  }
  const std::string_view rest = line.substr(comm_end + 4);  // ") S " then the ppid
  const auto parent = parse_decimal(rest.substr(0, rest.find(' ')));
  if (!parent) {
    return std::nullopt;
  }
  return static_cast<pid_t>(*parent);
}

// Unprivileged systemd-notify reports from its own pid, a child of the worker's shell, so the
// worker's descendants speak for it (protocols §2.3 step 6). A descendant orphaned by its
// parent's exit is reparented to clusterd (the subreaper) and no longer counts.
bool is_descendant(pid_t sender, pid_t worker) {
  pid_t current = sender;
  for (int step = 0; step <= max_ancestry_steps; ++step) {
    if (current == worker) {
      return true;
    }
    if (current <= 1) {
      return false;
    }
    const auto parent = parent_of(current);
    if (!parent) {
      return false;
    }
    current = *parent;
  }
  return false;
}


// A pidfd turns readable when its process has exited (pidfd_open(2)); until then the pid is
// still that process's, whatever was reaped meanwhile.
bool still_running(const Fd& pidfd) {
  pollfd entry{pidfd.get(), POLLIN, 0};
  return retry_on_eintr([&] { return ::poll(&entry, 1, 0); }) == 0;
}

bool watch_readable(int epoll_fd, int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  return ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0;
}

}  // namespace

tl::expected<WorkerNotifySocket, std::string> WorkerNotifySocket::adopt(Fd socket, std::string path) {
  Fd events(::epoll_create1(EPOLL_CLOEXEC));
  if (!events) {
    return tl::make_unexpected("epoll_create1 for " + path + ": " + errno_text(errno));
  }
  if (!watch_readable(events.get(), socket.get())) {
    return tl::make_unexpected("epoll_ctl for " + path + ": " + errno_text(errno));
  }
  return WorkerNotifySocket(std::move(socket), std::move(events), std::move(path));
}

tl::expected<WorkerNotifySocket, std::string> WorkerNotifySocket::open(const std::string& path,
                                                                       std::optional<uid_t> owner,
                                                                       std::optional<gid_t> group) {
  if (path.empty() || path.size() > max_socket_path) {
    return tl::make_unexpected("notify socket " + path + ": the path is " + std::to_string(path.size()) +
                               " bytes, the limit is " + std::to_string(max_socket_path));
  }
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return tl::make_unexpected("socket for " + path + ": " + errno_text(errno));
  }
  // Before bind: a datagram queued while the option is off keeps pid 0 / the overflow uid in
  // its credentials even when read later, and would be dropped (protocols §2.3 step 2).
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0) {
    return tl::make_unexpected("setsockopt SO_PASSCRED " + path + ": " + errno_text(errno));
  }
  // SO_RCVBUF is left alone: a unix datagram queue is bounded by its length
  // (net.unix.max_dgram_qlen) and by each sender's send buffer, not by the receiver's buffer,
  // so a smaller one would not slow a flood down. NotifyPacing does.
  Fd events(::epoll_create1(EPOLL_CLOEXEC));
  if (!events) {
    return tl::make_unexpected("epoll_create1 for " + path + ": " + errno_text(errno));
  }
  if (!watch_readable(events.get(), fd.get())) {
    return tl::make_unexpected("epoll_ctl for " + path + ": " + errno_text(errno));
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  {
    // The file is born 0600: nobody but its owner (root, clusterd's user, until the lchown
    // below) can send, at any moment. No chmod() follows, on the path or otherwise.
    const UmaskScope owner_only(0177);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      return tl::make_unexpected("bind " + path + ": " + errno_text(errno));
    }
  }
  WorkerNotifySocket socket(std::move(fd), std::move(events), path);  // from here on, a failure removes the file
  // The worker's user must be able to send, so the file becomes its. This goes by name, because
  // nothing else names the file: fchown() on the socket's fd would change the socket's inode in
  // sockfs, not the file bind() created (unix(7): the file's permissions are checked at
  // connect/send). It is safe by name here for two reasons. lchown() never follows a symlink in
  // the last component. And the directory is NotifyDirectory's, made by mkdtemp, owned by
  // clusterd's user, writable by nobody else, on a path whose every directory was checked
  // (trusted_path.h), so no other user can put anything at this name or above it.
  if ((owner || group) &&
      ::lchown(path.c_str(), owner.value_or(static_cast<uid_t>(-1)), group.value_or(static_cast<gid_t>(-1))) != 0) {
    return tl::make_unexpected("chown " + path + ": " + errno_text(errno));
  }
  return socket;
}

WorkerNotifySocket::WorkerNotifySocket(WorkerNotifySocket&& other) noexcept
    : socket_(std::move(other.socket_)),
      events_(std::move(other.events_)),
      timer_(std::move(other.timer_)),
      path_(std::exchange(other.path_, {})),
      pacing_(other.pacing_),
      paused_until_(other.paused_until_),
      strangers_(std::move(other.strangers_)),
      next_stranger_(other.next_stranger_),
      last_worker_pid_(other.last_worker_pid_) {
  other.pacing_ = NotifyPacing{};
}

WorkerNotifySocket& WorkerNotifySocket::operator=(WorkerNotifySocket&& other) noexcept {
  if (this != &other) {
    unlink_file();
    socket_ = std::move(other.socket_);
    events_ = std::move(other.events_);
    timer_ = std::move(other.timer_);
    path_ = std::exchange(other.path_, {});
    pacing_ = std::exchange(other.pacing_, NotifyPacing{});
    paused_until_ = other.paused_until_;
    strangers_ = std::move(other.strangers_);
    next_stranger_ = other.next_stranger_;
    last_worker_pid_ = other.last_worker_pid_;
  }
  return *this;
}

WorkerNotifySocket::~WorkerNotifySocket() { unlink_file(); }

void WorkerNotifySocket::unlink_file() noexcept {
  if (path_.empty()) {
    return;
  }
  if (pacing_.unreported() > 0) {
    spdlog::debug("dropped notify datagrams pid={} count={} path={} (not from the worker or its children; not "
                  "logged before the socket closed)",
                  last_worker_pid_, pacing_.unreported(), path_);
  }
  ::unlink(path_.c_str());  // ENOENT when the directory went first: nothing to do
  path_.clear();
}

bool WorkerNotifySocket::known_stranger(pid_t sender) {
  for (Stranger& stranger : strangers_) {
    if (!stranger.pidfd || stranger.pid != sender) {
      continue;
    }
    // Once per drain: the process may have exited since, and its pid gone to another.
    if (!stranger.alive_checked) {
      if (!still_running(stranger.pidfd)) {
        stranger = Stranger{};
        return false;
      }
      stranger.alive_checked = true;
    }
    return true;
  }
  return false;
}

void WorkerNotifySocket::remember_stranger(pid_t sender, Fd pidfd) {
  Stranger& slot = strangers_[next_stranger_];
  next_stranger_ = (next_stranger_ + 1) % strangers_.size();
  slot = Stranger{sender, std::move(pidfd), true};
}

// Cheapest first: the worker's own pid costs a comparison; a stranger already judged, a lookup
// (and one poll() per drain). Only a sender not seen before costs reads of /proc, one per
// generation between it and the worker or init.
bool WorkerNotifySocket::accepts(pid_t sender, pid_t worker_pid) {
  if (sender == worker_pid) {
    return true;
  }
  if (known_stranger(sender)) {
    return false;
  }
  // The pidfd first, the ancestry second: if the process behind the pidfd is still running
  // after the walk, the walk was about it, and its pid stays its own while the pidfd says so.
  // Not being a descendant lasts: a process is only ever reparented upwards (to a subreaper or
  // init), never into the worker's tree.
  Fd pidfd = open_pidfd(sender);
  if (is_descendant(sender, worker_pid)) {
    return true;
  }
  if (pidfd && still_running(pidfd)) {
    remember_stranger(sender, std::move(pidfd));
  }
  return false;
}

void WorkerNotifySocket::pause_until(TimePoint resume) {
  if (!timer_) {
    timer_ = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_ || !watch_readable(events_.get(), timer_.get())) {
      // No pause without a timer to end it: reading goes on, only less cheaply.
      spdlog::debug("notify socket cannot pause path={} error=\"timerfd: {}\"", path_, errno_text(errno));
      timer_.reset();
      return;
    }
  }
  // steady_clock is CLOCK_MONOTONIC on Linux (libstdc++), the timer's clock.
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(resume.time_since_epoch()).count();
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(since_epoch / 1'000'000'000);
  when.it_value.tv_nsec = static_cast<long>(since_epoch % 1'000'000'000);
  if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0) {
    when.it_value.tv_nsec = 1;  // zero would disarm it
  }
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &when, nullptr) != 0 ||
      ::epoll_ctl(events_.get(), EPOLL_CTL_DEL, socket_.get(), nullptr) != 0) {
    spdlog::debug("notify socket cannot pause path={} error=\"{}\"", path_, errno_text(errno));
    return;
  }
  paused_until_ = resume;
}

void WorkerNotifySocket::resume_if_due(TimePoint now) {
  if (timer_) {
    // Read whenever there is a timer, so an expiry never keeps fd() readable (EAGAIN: not due).
    std::uint64_t expirations = 0;
    const ssize_t ignored = ::read(timer_.get(), &expirations, sizeof(expirations));
    static_cast<void>(ignored);
  }
  if (!paused_until_ || now < *paused_until_) {
    return;
  }
  if (!watch_readable(events_.get(), socket_.get()) && errno != EEXIST) {
    spdlog::debug("notify socket cannot resume path={} error=\"epoll_ctl: {}\"", path_, errno_text(errno));
    return;  // still readable through the timer: tried again at the next drain
  }
  paused_until_.reset();
}

std::vector<NotifyMessage> WorkerNotifySocket::drain(pid_t worker_pid, int& dropped) {
  last_worker_pid_ = worker_pid;
  const TimePoint now = Clock::now();
  resume_if_due(now);
  for (Stranger& stranger : strangers_) {
    stranger.alive_checked = false;
  }
  std::vector<NotifyMessage> accepted;
  std::array<char, notify_buffer_max> data{};
  // Credentials come first in the control data (the kernel puts them before SCM_RIGHTS), so a
  // control buffer too small for every fd still keeps them; the excess fds are closed for us.
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * received_fds_max)>
      control{};
  for (int received = 0; received < max_per_drain; ++received) {
    if (const auto resume = pacing_.resume_at(now)) {
      if (!paused_until_) {
        pause_until(*resume);
      }
      break;
    }
    // At most systemd's 4096 bytes: a longer datagram is cut short and reports MSG_TRUNC.
    iovec vector{data.data(), data.size()};
    msghdr header{};
    header.msg_iov = &vector;
    header.msg_iovlen = 1;
    header.msg_control = control.data();
    header.msg_controllen = control.size();
    const ssize_t length =
        retry_on_eintr([&] { return ::recvmsg(socket_.get(), &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
    if (length < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        spdlog::debug("notify socket read failed path={} error=\"recvmsg: {}\"", path_, errno_text(errno));
      }
      break;
    }
    std::optional<ucred> credentials;
    for (cmsghdr* message = CMSG_FIRSTHDR(&header); message != nullptr; message = CMSG_NXTHDR(&header, message)) {
      if (message->cmsg_level != SOL_SOCKET) {
        continue;
      }
      if (message->cmsg_type == SCM_CREDENTIALS && message->cmsg_len == CMSG_LEN(sizeof(ucred))) {
        ucred value{};
        std::memcpy(&value, CMSG_DATA(message), sizeof(value));
        credentials = value;
      } else if (message->cmsg_type == SCM_RIGHTS) {
        // Closing is the whole answer to BARRIER=1: the sender waits for the other end of the
        // pipe it sent to hang up (sd_notify(3), protocols §2.3 step 5). Fds that came with any
        // other message would only leak.
        const std::size_t count = (message->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int received_fd = -1;
          std::memcpy(&received_fd, CMSG_DATA(message) + i * sizeof(int), sizeof(int));
          Fd(received_fd).reset();
        }
      }
    }
    const bool accept = (header.msg_flags & MSG_TRUNC) == 0 && credentials && credentials->pid > 0 &&
                        accepts(credentials->pid, worker_pid);
    pacing_.read_one(now, !accept);
    if (accept) {
      accepted.push_back(parse_notify_message(std::string_view(data.data(), static_cast<std::size_t>(length))));
    }
  }
  dropped += pacing_.take_report(now);
  return accepted;
}

}  // namespace clusterd
