// Opens clusterd's listening sockets (TCP v4/v6, unix; SO_REUSEPORT ones for per-slot listeners)
// once, and makes them listen again when a worker has shut one down.
#include "sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <system_error>

#include <spdlog/spdlog.h>

#include "errno_text.h"
#include "reuseport_steering.h"
#include "socket_address.h"
#include "trusted_path.h"
#include "umask_scope.h"

namespace clusterd {
namespace {

// `bind 127.0.0.1:80: Permission denied`: the action, the address, the reason.
[[noreturn]] void fail(std::string_view action, const std::string& shown, int error) {
  throw ListenError(std::string(action) + " " + shown + ": " + errno_text(error), error);
}

}  // namespace

namespace {

void set_int_option(int fd, int level, int option, int value, std::string_view name, const std::string& shown) {
  if (::setsockopt(fd, level, option, &value, sizeof(value)) != 0) {
    fail("setsockopt " + std::string(name), shown, errno);
  }
}

// How a TCP socket relates to SO_REUSEPORT: none (a shared listener), the first socket of a
// per-slot group, or one more member of a group already listening.
enum class Reuse { none, group_first, group_member };

Listener open_tcp(const ListenerConfig& config, Reuse reuse) {
  Address address = config.address;
  std::string shown = format_address(address);
  Fd fd(::socket(address.family == AddressFamily::ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd && errno == EAFNOSUPPORT && address.any_dual_stack) {
    // `8000` means "every address", not "IPv6": on a kernel without IPv6 (ipv6.disable=1)
    // that is 0.0.0.0, which is what the operator asked for.
    spdlog::warn("IPv6 is not available; listening on IPv4 only name={} address=0.0.0.0:{}", config.name,
                 address.port);
    address.family = AddressFamily::ipv4;
    address.host = "0.0.0.0";
    address.any_dual_stack = false;
    shown = format_address(address);
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!fd) {
    fail("socket", shown, errno);
  }
  // Lets a restarted clusterd bind while old connections sit in TIME_WAIT; a socket that is
  // still listening on the address is refused all the same (protocols §4.1).
  set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", shown);
  if (reuse == Reuse::group_member) {
    // Before bind(): the kernel lets a socket join a port's SO_REUSEPORT group only if it and
    // every socket already there have it, with the same effective uid (socket(7)). A shared
    // listener never sets it, so no other process can quietly bind the port beside clusterd's
    // socket and take a share of its connections.
    set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", shown);
  }
  if (address.family == AddressFamily::ipv6) {
    // Always set, never inherited from net.ipv6.bindv6only: the config alone decides (§4.3).
    set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, config.ipv6_only ? 1 : 0, "IPV6_V6ONLY", shown);
  }
  SocketAddress socket_address = to_socket_address(address);
  if (::bind(fd.get(), socket_address.get(), socket_address.length) != 0) {
    fail("bind", shown, errno);
  }
  if (reuse == Reuse::group_first) {
    // After bind(), so the bind fails like a shared listener's while anything else holds the
    // port (another clusterd's group of the same user included: joining it would split its
    // connections with ours); before listen(), which forms the group the others join.
    set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", shown);
  }
  const int backlog = effective_backlog(config.backlog);
  if (::listen(fd.get(), backlog) != 0) {
    fail("listen", shown, errno);
  }
  std::string bound = local_address_of(fd.get(), shown);
  return Listener(config.name, std::move(bound), std::move(fd), backlog, "");
}

// The directory that holds the unix socket file `path`, opened after checking that no user but
// root or clusterd's own can write it or any directory above it (trusted_path.h). clusterd, as
// root, probes, unlinks, binds and later removes a file by that name; a user who could write
// the directory could swap the name for a symlink between two of those calls, and a user who
// could write a directory above it could swap the whole directory. With the check passed, only
// trusted users can change what the name refers to, so the path may be used as it is (bind()
// and connect() take nothing else). The error names the directory and the fix.
tl::expected<Fd, std::string> trusted_socket_directory(const std::string& path) {
  return open_trusted_directory(split_directory(path).first, ::geteuid(), "unix socket directory");
}

sockaddr_un unix_socket_address(const std::string& path, const std::string& shown) {
  sockaddr_un result{};
  result.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(result.sun_path)) {
    throw ListenError(shown + ": unix socket path is " + std::to_string(path.size()) + " bytes, the limit is " +
                      std::to_string(sizeof(result.sun_path) - 1));
  }
  std::memcpy(result.sun_path, path.data(), path.size());
  return result;
}

// A socket file left by a clusterd that was killed is replaced; a live one is not (§2.7). A
// small window remains between this check and bind(): two instances starting at the same
// moment on the same path could both find it stale. protocols §4.5 suggests a lock file for
// that; we leave it out because it adds a second file to clean up for a rare operator error.
void remove_stale_socket_file(const std::string& path, const sockaddr_un& socket_address,
                              const std::string& shown, const Fd& directory) {
  const std::string name = split_directory(path).second;
  struct stat status {};
  if (::fstatat(directory.get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return;
    }
    fail("stat", shown, errno);
  }
  if (!S_ISSOCK(status.st_mode)) {
    throw ListenError(shown + ": the path exists and is not a socket; remove it or choose another path");
  }
  // Non-blocking: a live listener with a full accept queue answers EAGAIN instead of
  // making us wait in connect().
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) {
    fail("socket", shown, errno);
  }
  const int result = retry_on_eintr([&] {
    return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&socket_address), sizeof(socket_address));
  });
  const int error = result == 0 ? 0 : errno;
  if (error == ENOENT) {
    return;  // removed by someone else since lstat()
  }
  if (error == ECONNREFUSED) {
    if (::unlinkat(directory.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      fail("unlink stale socket file", shown, errno);
    }
    spdlog::info("removed stale unix socket file path={}", path);
    return;
  }
  // Accepted, a full queue, or a datagram socket bound there: someone is using the path.
  if (error == 0 || error == EAGAIN || error == EPROTOTYPE) {
    throw ListenError(shown + ": address in use (another process is listening)");
  }
  fail("connect (checking for a live listener)", shown, error);
}

// A new unix socket listening at `path`, which must be free; `shown` names it in errors. Also
// what replaces a socket a worker shut down (Listener::replace_unix_socket).
Listener listen_unix(const std::string& name, const std::string& path, mode_t mode, int backlog,
                     const std::string& shown) {
  const sockaddr_un socket_address = unix_socket_address(path, shown);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    fail("socket", shown, errno);
  }
  {
    // bind() creates the file with 0777 minus the umask, so this umask gives it exactly `mode`
    // at birth: it is never wider than configured (protocols §4.5), and nothing changes its
    // mode afterwards. A chmod() by path is what a user able to swap the name for a symlink
    // would turn against another file; fchmod() on the socket's fd would change the socket's
    // own inode, not the file (unix(7)), so there is no fd-based way either.
    const UmaskScope final_mode(static_cast<mode_t>(~mode & 0777));
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&socket_address), sizeof(socket_address)) != 0) {
      fail("bind", shown, errno);
    }
  }
  // Built right after bind(): from here on, a failure that throws removes the file through the
  // Listener's destructor, which checks it is still the file we created.
  Listener listener(name, shown, std::move(fd), backlog, path, mode);
  if (::listen(listener.fd(), backlog) != 0) {
    fail("listen", shown, errno);
  }
  return listener;
}

Listener open_unix(const ListenerConfig& config) {
  const std::string& path = config.address.path;
  const std::string shown = format_address(config.address);
  const sockaddr_un socket_address = unix_socket_address(path, shown);
  // Before anything is done at the path, the stale check's unlink() included.
  const auto directory = trusted_socket_directory(path);
  if (!directory) {
    throw ListenError(shown + ": " + directory.error());
  }
  remove_stale_socket_file(path, socket_address, shown, *directory);
  return listen_unix(config.name, path, static_cast<mode_t>(config.mode & 0777), effective_backlog(config.backlog),
                     shown);
}

// Binds a TCP socket that stopped listening to `shown` (format_address form) again, unless it
// still holds that address; the error, or nullopt.
std::optional<std::string> bind_again(int fd, const std::string& shown) {
  const auto address = parse_address(shown);
  if (!address) {
    return "bind: " + address.error();
  }
  try {
    SocketAddress socket_address = to_socket_address(*address);
    // EINVAL: the socket is still bound (bind(2)), as one bound to a port by number stays.
    // getsockname() cannot tell: it keeps showing a port the kernel has taken back.
    if (::bind(fd, socket_address.get(), socket_address.length) != 0 && errno != EINVAL) {
      return "bind: " + errno_text(errno);
    }
  } catch (const ListenError& error) {
    return "bind: " + std::string(error.what());
  }
  return std::nullopt;
}

void log_cannot_listen_again(const std::string& name, const std::string& address, const std::string& error) {
  spdlog::error("listener stopped by a worker and cannot listen again name={} address={} error=\"{}\"", name,
                address, error);
}

}  // namespace

Listener::Listener(std::string name, std::string bound_address, Fd fd, int backlog, std::string unix_path,
                   mode_t unix_mode)
    : name_(std::move(name)),
      bound_address_(std::move(bound_address)),
      fd_(std::move(fd)),
      backlog_(backlog),
      unix_path_(std::move(unix_path)),
      unix_mode_(unix_mode) {
  if (unix_path_.empty()) {
    return;
  }
  // The identity of the file bind() just created; the destructor removes the path only while
  // it still names this file, never one another process put there since.
  struct stat status {};
  if (::lstat(unix_path_.c_str(), &status) == 0 && S_ISSOCK(status.st_mode)) {
    unix_dev_ = status.st_dev;
    unix_ino_ = status.st_ino;
  } else {
    unix_path_.clear();
  }
}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    remove_unix_file();
    name_ = std::move(other.name_);
    bound_address_ = std::move(other.bound_address_);
    fd_ = std::move(other.fd_);
    backlog_ = other.backlog_;
    unix_path_ = std::exchange(other.unix_path_, {});
    unix_mode_ = other.unix_mode_;
    unix_dev_ = other.unix_dev_;
    unix_ino_ = other.unix_ino_;
  }
  return *this;
}

Listener::~Listener() { remove_unix_file(); }

std::optional<std::string> Listener::unix_directory_problem() const {
  if (unix_path_.empty() || !fd_) {
    return std::nullopt;
  }
  auto directory = trusted_socket_directory(unix_path_);
  if (!directory) {
    return bound_address_ + ": " + directory.error();
  }
  return std::nullopt;
}

void Listener::remove_unix_file() noexcept {
  // A moved-from Listener has no fd (Fd's move releases it); it must not remove the file its
  // successor still serves, whatever state the moved-from path string is in.
  if (unix_path_.empty() || !fd_) {
    return;
  }
  try {
    // Checked again: the directory may have been opened to others since the file was made,
    // and then the name is left alone rather than unlinked on someone else's terms.
    const auto directory = trusted_socket_directory(unix_path_);
    const std::string name = split_directory(unix_path_).second;
    struct stat status {};
    if (!directory) {
      spdlog::warn("unix socket file left in place path={} reason=\"{}\"", unix_path_, directory.error());
    } else if (::fstatat(directory->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0 &&
               status.st_dev == unix_dev_ && status.st_ino == unix_ino_) {
      ::unlinkat(directory->get(), name.c_str(), 0);
    }
  } catch (const std::exception&) {  // out of memory for a message: the file stays
  }
  unix_path_.clear();
}

bool Listener::ensure_listening() {
  if (!fd_ || !stopped_by_a_worker()) {
    return false;
  }
  // Nothing here may throw: this runs inside the event loop. A failure is logged and checked
  // again after the next worker exit.
  if (bound_address_.starts_with("unix:")) {
    return replace_unix_socket();
  }
  return listen_again_at_its_address();
}

bool Listener::stopped_by_a_worker() const {
  int accepting = 0;
  socklen_t length = sizeof(accepting);
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0) {
    spdlog::error("cannot check listener name={} address={} error=\"getsockopt SO_ACCEPTCONN: {}\"", name_,
                  bound_address_, errno_text(errno));
    return false;
  }
  if (accepting == 0) {
    return true;  // TCP: shutdown() closed the socket, which stopped listening
  }
  // A unix stream socket keeps SO_ACCEPTCONN after shutdown(), yet its receive side is shut for
  // good: connect() is refused and accept() fails with EINVAL (net/unix/af_unix.c). poll() shows
  // that as POLLRDHUP, with POLLHUP after SHUT_RDWR; a listening socket reports neither.
  pollfd state{fd_.get(), POLLRDHUP, 0};
  if (retry_on_eintr([&] { return ::poll(&state, 1, 0); }) < 0) {
    spdlog::error("cannot check listener name={} address={} error=\"poll: {}\"", name_, bound_address_,
                  errno_text(errno));
    return false;
  }
  return (state.revents & (POLLHUP | POLLRDHUP)) != 0;
}

bool Listener::listen_again_at_its_address() {
  // The kernel keeps a port that stopped listening only when bind() named it: one it picked for
  // port 0 is given back (tcp_set_state(TCP_CLOSE) without SOCK_BINDPORT_LOCK), and listen()
  // would pick a new one, refusing clients of the address we logged for good. Binding again to
  // that exact address keeps it, and from then on the port is held like a configured one.
  if (auto error = bind_again(fd_.get(), bound_address_)) {
    log_cannot_listen_again(name_, bound_address_, *error);
    return false;
  }
  if (::listen(fd_.get(), backlog_) != 0) {
    log_cannot_listen_again(name_, bound_address_, "listen: " + errno_text(errno));
    return false;
  }
  return true;
}

bool Listener::replace_unix_socket() {
  // The kernel never clears a unix socket's shutdown state, so it cannot listen again: a new
  // socket takes its path. One whose file clusterd did not create (socket activation) is not
  // ours to replace.
  if (unix_path_.empty()) {
    log_cannot_listen_again(name_, bound_address_,
                            "a unix socket cannot listen again after shutdown(), and this one's file is not "
                            "clusterd's to replace");
    return false;
  }
  // The same check as at start: a directory opened to others since then (or one above it)
  // would let them turn this unlink() and bind() against another file.
  const auto directory = trusted_socket_directory(unix_path_);
  if (!directory) {
    log_cannot_listen_again(name_, bound_address_,
                            directory.error() + "; the socket stays stopped until the directory is fixed and a "
                                                "worker exits again");
    return false;
  }
  const std::string file_name = split_directory(unix_path_).second;
  struct stat status {};
  if (::fstatat(directory->get(), file_name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) {
    if (status.st_dev != unix_dev_ || status.st_ino != unix_ino_) {
      log_cannot_listen_again(name_, bound_address_, "the path no longer names clusterd's socket file; left alone");
      return false;
    }
    if (::unlinkat(directory->get(), file_name.c_str(), 0) != 0 && errno != ENOENT) {
      log_cannot_listen_again(name_, bound_address_, "unlink: " + errno_text(errno));
      return false;
    }
  } else if (errno != ENOENT) {  // ENOENT: removed by an earlier attempt that failed later on
    log_cannot_listen_again(name_, bound_address_, "stat: " + errno_text(errno));
    return false;
  }
  try {
    Listener fresh = listen_unix(name_, unix_path_, unix_mode_, backlog_, bound_address_);
    // Field by field, not by move assignment: that would first remove "our" file by its old
    // identity, and the new file may well have been given the inode number just freed.
    fd_ = std::move(fresh.fd_);  // closes the stopped socket; workers holding it keep their copy
    unix_dev_ = fresh.unix_dev_;
    unix_ino_ = fresh.unix_ino_;
    unix_path_ = std::exchange(fresh.unix_path_, {});
  } catch (const ListenError& error) {
    log_cannot_listen_again(name_, bound_address_, error.what());
    return false;
  }
  spdlog::warn("unix listener replaced by a new socket at the same path name={} address={} (a shut-down unix "
               "socket cannot listen again; workers started before keep the stopped one)",
               name_, bound_address_);
  return true;
}

Listener open_slot_socket(const ListenerConfig& config, const std::string& group_address) {
  const auto address = parse_address(group_address);
  if (!address || address->family == AddressFamily::unix_path || reuseport_in_effect(config) != ReusePort::per_slot) {
    throw ListenError("listener \"" + config.name + "\": " + group_address +
                      ": not the TCP address of a per-slot listener");
  }
  // The address the group's first socket got, with the kernel's port for port 0, so every slot
  // joins the same port; and the family that socket really has (IPv4 after a dual-stack
  // fallback). ipv6_only is the configured one, as every socket of the group must agree.
  ListenerConfig slot = config;
  slot.address = *address;
  slot.ipv6_only = address->family == AddressFamily::ipv6 && config.ipv6_only;
  try {
    return open_tcp(slot, Reuse::group_member);
  } catch (const ListenError& error) {
    throw ListenError("listener \"" + config.name + "\": " + error.what(), error.error());
  }
}

std::vector<Listener> open_listeners(const std::vector<ListenerConfig>& listeners) {
  std::vector<Listener> opened;
  opened.reserve(listeners.size());
  for (const ListenerConfig& config : listeners) {
    try {
      if (config.address.family == AddressFamily::unix_path) {
        opened.push_back(open_unix(config));
      } else {
        opened.push_back(open_tcp(
            config, reuseport_in_effect(config) == ReusePort::per_slot ? Reuse::group_first : Reuse::none));
      }
    } catch (const ListenError& error) {
      // Name the listener as the operator wrote it, so "which one?" needs no guessing.
      throw ListenError("listener \"" + config.name + "\": " + error.what(), error.error());
    }
  }
  return opened;
}

}  // namespace clusterd
