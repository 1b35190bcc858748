// One worker's NOTIFY_SOCKET: a datagram socket clusterd reads readiness from, accepting only
// the worker and its descendants (protocols §2.3 steps 2, 4–6).
#include "notify_worker_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <system_error>

#include <spdlog/spdlog.h>

#include "decimal.h"
#include "umask_scope.h"
#include "errno_text.h"

namespace clusterd {
namespace {

// sun_path holds 108 bytes; a path needs its terminating NUL (unix(7)).
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

// Received fds beyond this are closed by the kernel itself when the control buffer is too small
// (unix(7), "excess file descriptors are automatically closed"); a barrier sends one.
constexpr std::size_t received_fds_max = 16;

// How far up the PPid chain a sender may sit below its worker (protocols §2.3 step 6).
constexpr int max_ancestry_steps = 16;

// The sender's parent from /proc/<pid>/status; nullopt if the process is gone (a zombie still
// has its status file, a reaped process has none).
std::optional<pid_t> parent_of(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(file, line)) {
    if (line.starts_with("PPid:")) {
      const std::size_t digits = line.find_first_not_of(" \t", 5);
      if (digits == std::string::npos) {
        return std::nullopt;
      }
      const auto parent = parse_decimal(std::string_view(line).substr(digits));
      if (!parent) {
        return std::nullopt;
      }
      return static_cast<pid_t>(*parent);
    }
  }
  return std::nullopt;
}

// Unprivileged systemd-notify reports from its own pid, a child of the worker's shell, so the
// worker's descendants speak for it (protocols §2.3 step 6). A descendant orphaned by its
// parent's exit is reparented to clusterd (the subreaper) and no longer counts.
bool is_worker_or_descendant(pid_t sender, pid_t worker) {
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

}  // namespace

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
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  {
    // The file is born without permissions, so no other user can send before chmod() below.
    const UmaskScope closed(0777);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      return tl::make_unexpected("bind " + path + ": " + errno_text(errno));
    }
  }
  WorkerNotifySocket socket(std::move(fd), path);  // from here on, a failure removes the file
  if ((owner || group) &&
      ::chown(path.c_str(), owner.value_or(static_cast<uid_t>(-1)), group.value_or(static_cast<gid_t>(-1))) != 0) {
    return tl::make_unexpected("chown " + path + ": " + errno_text(errno));
  }
  // Sending needs write permission on the file (unix(7)): the worker's user only.
  if (::chmod(path.c_str(), 0600) != 0) {
    return tl::make_unexpected("chmod " + path + ": " + errno_text(errno));
  }
  return socket;
}

WorkerNotifySocket::WorkerNotifySocket(WorkerNotifySocket&& other) noexcept
    : fd_(std::move(other.fd_)), path_(std::exchange(other.path_, {})) {}

WorkerNotifySocket& WorkerNotifySocket::operator=(WorkerNotifySocket&& other) noexcept {
  if (this != &other) {
    unlink_file();
    fd_ = std::move(other.fd_);
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

WorkerNotifySocket::~WorkerNotifySocket() { unlink_file(); }

void WorkerNotifySocket::unlink_file() noexcept {
  if (!path_.empty()) {
    ::unlink(path_.c_str());  // ENOENT when the directory went first: nothing to do
    path_.clear();
  }
}

std::vector<NotifyMessage> WorkerNotifySocket::drain(pid_t worker_pid, int& dropped) {
  std::vector<NotifyMessage> accepted;
  std::array<char, notify_buffer_max> data{};
  // Credentials come first in the control data (the kernel puts them before SCM_RIGHTS), so a
  // control buffer too small for every fd still keeps them; the excess fds are closed for us.
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * received_fds_max)>
      control{};
  for (int received = 0; received < max_per_drain; ++received) {
    // At most systemd's 4096 bytes: a longer datagram is cut short and reports MSG_TRUNC.
    iovec vector{data.data(), data.size()};
    msghdr header{};
    header.msg_iov = &vector;
    header.msg_iovlen = 1;
    header.msg_control = control.data();
    header.msg_controllen = control.size();
    const ssize_t length =
        retry_on_eintr([&] { return ::recvmsg(fd_.get(), &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
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
    if ((header.msg_flags & MSG_TRUNC) != 0 || !credentials || credentials->pid <= 0 ||
        !is_worker_or_descendant(credentials->pid, worker_pid)) {
      ++dropped;
      continue;
    }
    accepted.push_back(parse_notify_message(std::string_view(data.data(), static_cast<std::size_t>(length))));
  }
  return accepted;
}

}  // namespace clusterd
