// Binds the control socket: probes what is at the path, narrows the umask around bind(), and
// removes the file on exit only if it is still ours.
#include "control_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "umask_scope.h"
#include "errno_text.h"

namespace clusterd {
namespace {

tl::expected<sockaddr_un, std::string> unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return tl::make_unexpected("control socket path " + path + " does not fit in sun_path (" +
                               std::to_string(sizeof(address.sun_path) - 1) + " bytes)");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// What is at `path` before we bind: nothing, a stale socket (removed here), or a reason to stop.
std::optional<std::string> clear_the_path(const std::string& path, const sockaddr_un& address) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    return "cannot inspect control socket " + path + ": " + errno_text(errno);
  }
  if (!S_ISSOCK(status.st_mode)) {
    return "control socket path " + path + " exists and is not a socket; remove it or set control.socket";
  }
  // Non-blocking, so a live instance with a full backlog (EAGAIN) cannot make us wait.
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) {
    return "cannot check control socket " + path + ": socket: " + errno_text(errno);
  }
  const int result = retry_on_eintr(
      [&] { return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address); });
  if (result == 0 || errno == EAGAIN) {
    return "another clusterd is running (control socket " + path + " answers)";
  }
  if (errno != ECONNREFUSED) {
    return "cannot check control socket " + path + ": connect: " + errno_text(errno);
  }
  // Nobody listens: the file of an instance that was killed (SIGKILL leaves it behind).
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return "cannot remove stale control socket " + path + ": " + errno_text(errno);
  }
  spdlog::info("removed stale control socket path={}", path);
  return std::nullopt;
}

}  // namespace

ControlSocket ControlSocket::adopt(Fd fd, const std::string& path) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    status = {};  // gone: nothing of ours to remove at exit
  }
  return ControlSocket(std::move(fd), path, status.st_dev, status.st_ino);
}

tl::expected<ControlSocket, std::string> ControlSocket::open(const std::string& path) {
  const auto address = unix_address(path);
  if (!address) {
    return tl::make_unexpected(address.error());
  }
  if (auto problem = clear_the_path(path, *address)) {
    return tl::make_unexpected(*problem);
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return tl::make_unexpected("control socket " + path + ": socket: " + errno_text(errno));
  }
  // bind() creates the file with 0777 & ~umask: narrowing the umask for that one call makes it
  // 0600 from its first moment. Nothing else runs meanwhile (one thread, signals blocked).
  int bound;
  int bind_error;
  {
    const UmaskScope owner_only(0177);
    bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
    bind_error = errno;
  }
  if (bound != 0) {
    if (bind_error == EADDRINUSE) {
      return tl::make_unexpected("another clusterd is running (control socket " + path + " was just created)");
    }
    return tl::make_unexpected("control socket " + path + ": bind: " + errno_text(bind_error));
  }
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    const int error = errno;
    ::unlink(path.c_str());
    return tl::make_unexpected("control socket " + path + ": stat: " + errno_text(error));
  }
  ControlSocket socket(std::move(fd), path, status.st_dev, status.st_ino);
  // SOMAXCONN: a burst of clients (a monitoring fleet) waits in the queue rather than fail.
  if (::listen(socket.fd(), SOMAXCONN) != 0) {
    return tl::make_unexpected("control socket " + path + ": listen: " + errno_text(errno));
  }
  return socket;
}

ControlSocket::ControlSocket(ControlSocket&& other) noexcept
    : fd_(std::move(other.fd_)),
      path_(std::exchange(other.path_, {})),
      dev_(other.dev_),
      ino_(other.ino_) {}

ControlSocket& ControlSocket::operator=(ControlSocket&& other) noexcept {
  if (this != &other) {
    remove_file();
    fd_ = std::move(other.fd_);
    path_ = std::exchange(other.path_, {});
    dev_ = other.dev_;
    ino_ = other.ino_;
  }
  return *this;
}

ControlSocket::~ControlSocket() { remove_file(); }

void ControlSocket::close() noexcept {
  remove_file();
  fd_.reset();
}

void ControlSocket::remove_file() noexcept {
  if (path_.empty()) {
    return;
  }
  // Only our own file: after a stale-socket replacement by another instance, the path is theirs.
  struct stat status {};
  if (::lstat(path_.c_str(), &status) == 0 && status.st_dev == dev_ && status.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
  path_.clear();
}

}  // namespace clusterd
