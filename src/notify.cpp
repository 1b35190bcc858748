// sd_notify sockets: per-worker receivers in a private directory (protocols §2.3) and the
// sender to systemd (§2.2).
#include "notify.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <spdlog/spdlog.h>

namespace clusterd {
namespace {

std::string errno_text(int error) { return std::generic_category().message(error); }

// sun_path holds 108 bytes; a path needs its terminating NUL (unix(7)).
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

// systemd reads notifications into a PIPE_BUF buffer and drops longer ones (protocols §2.1:
// NOTIFY_BUFFER_MAX); we accept exactly what systemd accepts.
constexpr std::size_t notify_buffer_max = 4096;

// Received fds beyond this are closed by the kernel itself when the control buffer is too small
// (unix(7), "excess file descriptors are automatically closed"); a barrier sends one.
constexpr std::size_t received_fds_max = 16;

// How far up the PPid chain a sender may sit below its worker (protocols §2.3 step 6).
constexpr int max_ancestry_steps = 16;

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

// ---- NotifyDirectory ----------------------------------------------------------------------

constexpr std::string_view directory_suffix = ".notify.XXXXXX";

// A base clusterd may have created itself, so its name is predictable: it must be ours and
// closed to others, or someone else could swap what is inside (interface §4.4). Group write is
// refused as well as other write: either lets another user rename our directory away.
std::optional<std::string> make_private_base(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return "mkdir " + path + ": " + errno_text(errno);
  }
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    return "stat " + path + ": " + errno_text(errno);
  }
  if (!S_ISDIR(status.st_mode)) {
    return path + " is not a directory";
  }
  if (status.st_uid != ::geteuid()) {
    return path + " is owned by uid " + std::to_string(status.st_uid) + ", not by clusterd's uid " +
           std::to_string(::geteuid());
  }
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return path + " is writable by other users";
  }
  return std::nullopt;
}

// Whether `uid` may pass through `path` and every directory above it. Judged from the bits
// alone, without the uid's groups: not the owner → group and other must both allow search,
// because the kernel applies the group bits to a member even when the other bits say more.
std::optional<std::string> not_searchable_by(const std::string& path, uid_t uid) {
  if (uid == 0) {
    return std::nullopt;
  }
  std::filesystem::path walked;
  for (const auto& part : std::filesystem::path(path)) {
    walked /= part;
    struct stat status {};
    if (::stat(walked.c_str(), &status) != 0) {
      return "stat " + walked.string() + ": " + errno_text(errno);
    }
    const bool searchable = status.st_uid == uid ? (status.st_mode & S_IXUSR) != 0
                                                 : (status.st_mode & S_IXGRP) != 0 && (status.st_mode & S_IXOTH) != 0;
    if (!searchable) {
      return walked.string() + " is not searchable by the workers' uid " + std::to_string(uid);
    }
  }
  return std::nullopt;
}

// The instance name in a file name: only characters config names allow, never a '/'.
std::string file_name_part(const std::string& name) {
  std::string part = name.empty() ? "clusterd" : name;
  for (char& c : part) {
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) {
      c = '_';
    }
  }
  return part;
}

struct Base {
  std::string path;
  bool predictable = false;  // created by clusterd under a fixed name: ownership is checked
};

std::vector<Base> candidate_bases(std::vector<std::string>& refused) {
  std::vector<Base> bases;
  if (auto runtime = environment("RUNTIME_DIRECTORY"); runtime && !runtime->empty()) {
    // systemd lists one path per RuntimeDirectory= entry, separated by ':'.
    std::string first = runtime->substr(0, runtime->find(':'));
    if (first.starts_with('/')) {
      bases.push_back({std::move(first), false});
    } else {
      refused.push_back("$RUNTIME_DIRECTORY=" + *runtime + ": not an absolute path");
    }
  }
  if (auto xdg = environment("XDG_RUNTIME_DIR"); xdg && !xdg->empty()) {
    if (xdg->starts_with('/')) {
      bases.push_back({*xdg + "/clusterd", true});
    } else {
      refused.push_back("$XDG_RUNTIME_DIR=" + *xdg + ": not an absolute path");
    }
  }
  if (::geteuid() == 0) {
    bases.push_back({"/run/clusterd", true});
  } else {
    bases.push_back({"/tmp/clusterd-" + std::to_string(::geteuid()), true});
  }
  return bases;
}

// mkdtemp under `base`, made 0711 (protocols §2.3 step 1); the name part is shortened so that
// socket_name_room bytes remain within sun_path.
tl::expected<std::string, std::string> make_notify_directory(const std::string& base, const std::string& name) {
  const std::size_t fixed = base.size() + 1 + directory_suffix.size() + NotifyDirectory::socket_name_room;
  if (fixed >= max_socket_path) {
    return tl::make_unexpected(base + " is too long for socket paths (sun_path holds " +
                               std::to_string(max_socket_path) + " bytes)");
  }
  const std::string part = file_name_part(name).substr(0, max_socket_path - fixed);
  std::string pattern = base + "/" + part + std::string(directory_suffix);
  if (::mkdtemp(pattern.data()) == nullptr) {
    return tl::make_unexpected("mkdtemp " + pattern + ": " + errno_text(errno));
  }
  // mkdtemp makes it 0700; workers running as another user must pass through to their socket.
  if (::chmod(pattern.c_str(), 0711) != 0) {
    const int error = errno;
    ::rmdir(pattern.c_str());
    return tl::make_unexpected("chmod " + pattern + ": " + errno_text(error));
  }
  return pattern;
}

// ---- WorkerNotifySocket -------------------------------------------------------------------

// Sets the process umask for its lifetime. clusterd is single-threaded (style §6), so the
// process-wide value is ours alone for the few calls in between.
class UmaskScope {
 public:
  explicit UmaskScope(mode_t mask) : previous_(::umask(mask)) {}
  UmaskScope(const UmaskScope&) = delete;
  UmaskScope& operator=(const UmaskScope&) = delete;
  ~UmaskScope() { ::umask(previous_); }

 private:
  mode_t previous_;
};

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
      const auto parent = parse_unsigned(std::string_view(line).substr(digits));
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

// ---- NotifyDirectory ----------------------------------------------------------------------

tl::expected<NotifyDirectory, std::string> NotifyDirectory::create(const std::string& name,
                                                                   std::optional<uid_t> worker_uid) {
  std::vector<std::string> refused;
  std::vector<Base> bases = candidate_bases(refused);
  // The last resort, always there: /tmp is sticky, and mkdtemp's directory is ours alone.
  bases.push_back({"/tmp", false});
  for (const Base& base : bases) {
    if (base.predictable) {
      if (auto problem = make_private_base(base.path)) {
        refused.push_back(std::move(*problem));
        continue;
      }
    } else {
      struct stat status {};
      if (::stat(base.path.c_str(), &status) != 0 || !S_ISDIR(status.st_mode)) {
        refused.push_back(base.path + " is not a directory");
        continue;
      }
    }
    if (worker_uid) {
      if (auto problem = not_searchable_by(base.path, *worker_uid)) {
        refused.push_back(std::move(*problem));
        continue;
      }
    }
    auto made = make_notify_directory(base.path, name);
    if (!made) {
      refused.push_back(std::move(made.error()));
      continue;
    }
    for (const std::string& reason : refused) {
      spdlog::debug("notify socket directory not used: {}", reason);
    }
    return NotifyDirectory(std::move(*made));
  }
  std::string text = "cannot create a directory for notify sockets:";
  for (const std::string& reason : refused) {
    text += (&reason == &refused.front() ? " " : "; ") + reason;
  }
  return tl::make_unexpected(std::move(text));
}

NotifyDirectory::NotifyDirectory(NotifyDirectory&& other) noexcept : path_(std::exchange(other.path_, {})) {}

NotifyDirectory& NotifyDirectory::operator=(NotifyDirectory&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

NotifyDirectory::~NotifyDirectory() { remove(); }

void NotifyDirectory::remove() noexcept {
  if (path_.empty()) {
    return;
  }
  // remove_all does not follow symlinks, and nobody but us can write in a 0711 directory.
  std::error_code error;
  std::filesystem::remove_all(path_, error);
  if (error) {
    spdlog::debug("cannot remove notify socket directory path={} error=\"{}\"", path_, error.message());
  }
  path_.clear();
}

std::string NotifyDirectory::worker_socket_path(int slot, std::uint64_t generation, std::uint64_t instance) const {
  return path_ + "/w" + std::to_string(slot) + "-" + std::to_string(generation) + "-" + std::to_string(instance) +
         ".sock";
}

// ---- WorkerNotifySocket -------------------------------------------------------------------

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

// ---- SystemdNotifier ----------------------------------------------------------------------

SystemdNotifier SystemdNotifier::from_environment() {
  SystemdNotifier notifier;
  const auto socket_variable = environment("NOTIFY_SOCKET");
  if (!socket_variable || socket_variable->empty()) {
    return notifier;
  }
  const std::string& value = *socket_variable;
  notifier.shown_ = value;
  if (value[0] != '/' && value[0] != '@') {
    notifier.problem_ =
        "NOTIFY_SOCKET=" + value + " is not a unix socket path or @abstract name; not notifying systemd";
    return notifier;
  }
  // A path needs its NUL within sun_path; an abstract name uses every byte, its '@' standing
  // for the leading NUL (protocols §2.1).
  const std::size_t limit = value[0] == '/' ? max_socket_path : sizeof(sockaddr_un::sun_path);
  if (value.size() > limit) {
    notifier.problem_ = "NOTIFY_SOCKET=" + value + " is longer than a unix socket address; not notifying systemd";
    return notifier;
  }
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    notifier.problem_ = "socket for NOTIFY_SOCKET=" + value + ": " + errno_text(errno) + "; not notifying systemd";
    return notifier;
  }
  const timeval send_timeout{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  notifier.fd_ = std::move(fd);
  notifier.address_.sun_family = AF_UNIX;
  std::memcpy(notifier.address_.sun_path, value.data(), value.size());
  if (value[0] == '@') {
    // Exactly the name's bytes: with sizeof(sockaddr_un), the padding zeros would become part
    // of a different abstract name.
    notifier.address_.sun_path[0] = '\0';
    notifier.address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size());
  } else {
    notifier.address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + 1);
  }

  const auto usec = environment("WATCHDOG_USEC");
  const auto watchdog_pid = environment("WATCHDOG_PID");
  const auto parsed_usec = usec ? parse_unsigned(*usec) : std::nullopt;
  bool for_us = true;
  if (watchdog_pid) {
    // Set for another process (a parent that shares our environment): not our watchdog.
    const auto pid = parse_unsigned(*watchdog_pid);
    for_us = pid && *pid == static_cast<std::uint64_t>(::getpid());
  }
  if (parsed_usec && *parsed_usec > 0 &&
      *parsed_usec <= static_cast<std::uint64_t>(std::chrono::microseconds::max().count()) && for_us) {
    notifier.watchdog_timeout_ = std::chrono::microseconds(static_cast<std::int64_t>(*parsed_usec));
  }
  return notifier;
}

std::optional<std::string> SystemdNotifier::send(std::string_view message) {
  if (!enabled()) {
    return std::nullopt;
  }
  if (message.size() > notify_buffer_max) {
    return "message to NOTIFY_SOCKET=" + shown_ + " is " + std::to_string(message.size()) +
           " bytes, systemd drops more than " + std::to_string(notify_buffer_max);
  }
  const ssize_t sent = retry_on_eintr([&] {
    return ::sendto(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address_), address_length_);
  });
  if (sent < 0) {
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) {
      return "sendto NOTIFY_SOCKET=" + shown_ + ": the receiver's queue stayed full for 1s";
    }
    return "sendto NOTIFY_SOCKET=" + shown_ + ": " + errno_text(error);
  }
  return std::nullopt;
}

std::chrono::microseconds monotonic_now() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::chrono::seconds(now.tv_sec) +
         std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::nanoseconds(now.tv_nsec));
}

}  // namespace clusterd
