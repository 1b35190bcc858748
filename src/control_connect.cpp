// Connects a client to a control socket only through trusted directories, and believes only a
// server of root or the client's own uid.
#include "control_connect.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "errno_text.h"
#include "trusted_path.h"

namespace clusterd {
namespace {

// As many links as a path to a socket reasonably has: /run/shop.sock → /run/clusterd/shop.sock.
constexpr int max_links = 8;

bool trusted_uid(uid_t uid, uid_t euid) { return uid == 0 || uid == euid; }

std::string believed_users(uid_t euid) {
  return euid == 0 ? std::string("root") : fmt::format("root or uid {} (this client's user)", euid);
}

ConnectFailure unreachable(const std::string& path, int error) {
  std::string hint;
  if (error == ECONNREFUSED) {
    hint = " (nobody listens: the socket of an instance that was killed?)";
  }
  return {ConnectFailure::Kind::unreachable,
          fmt::format("cannot connect to control socket {}: {}{}", path, errno_text(error), hint)};
}

ConnectFailure untrusted(const std::string& path, const std::string& why) {
  return {ConnectFailure::Kind::untrusted,
          fmt::format("refusing control socket {}, since another user could have put it there: {}", path, why)};
}

// The target of the link `name` in `directory`, as a path usable from anywhere; nullopt with
// errno set when it cannot be read.
std::optional<std::string> link_target(int directory_fd, const std::string& directory, const std::string& name) {
  char target[PATH_MAX];
  const ssize_t length = ::readlinkat(directory_fd, name.c_str(), target, sizeof target);
  if (length <= 0 || static_cast<std::size_t>(length) >= sizeof target) {
    errno = length < 0 ? errno : ENAMETOOLONG;
    return std::nullopt;
  }
  const std::string text(target, static_cast<std::size_t>(length));
  return text.starts_with('/') ? text : (directory == "/" ? "" : directory) + "/" + text;
}

}  // namespace

std::optional<std::string> untrusted_server(std::string_view path, uid_t server_uid, pid_t server_pid,
                                            uid_t euid) {
  if (trusted_uid(server_uid, euid)) {
    return std::nullopt;
  }
  return fmt::format("refusing control socket {}: its server (pid {}) runs as uid {}, and only a server running "
                     "as {} is believed, since another user's program could answer anything (to ask it, run the "
                     "client as uid {})",
                     path, server_pid, server_uid, believed_users(euid), server_uid);
}

tl::expected<Fd, ConnectFailure> connect_control(const std::string& path, uid_t euid) {
  // Judge the directories, then the last name; a trusted link there starts over at its target.
  std::string current = path;
  for (int links = 0;; ++links) {
    const auto [directory, name] = split_directory(current);
    struct stat directory_status {};
    if (::stat(directory.c_str(), &directory_status) != 0) {
      return tl::make_unexpected(unreachable(path, errno));  // what connect() would have said
    }
    auto trusted = open_trusted_directory(directory, euid, "control socket directory");
    if (!trusted) {
      return tl::make_unexpected(untrusted(path, trusted.error()));
    }
    struct stat status {};
    if (::fstatat(trusted->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
      return tl::make_unexpected(unreachable(path, errno));
    }
    if (!S_ISLNK(status.st_mode)) {
      break;
    }
    if (!trusted_uid(status.st_uid, euid)) {
      return tl::make_unexpected(untrusted(
          path, fmt::format("{} is a symbolic link owned by uid {}, who could point it anywhere", current,
                            status.st_uid)));
    }
    const auto target = link_target(trusted->get(), directory, name);
    if (!target || links == max_links) {
      return tl::make_unexpected(unreachable(path, target ? ELOOP : errno));
    }
    current = *target;
  }

  // connect() goes by the path again: every directory on it is writable only by root or us, so
  // no one else can change what it names in between.
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (current.size() >= sizeof(address.sun_path)) {
    return tl::make_unexpected(unreachable(path, ENAMETOOLONG));
  }
  std::memcpy(address.sun_path, current.c_str(), current.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return tl::make_unexpected(unreachable(path, errno));
  }
  if (retry_on_eintr([&] {
        return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
      }) != 0) {
    return tl::make_unexpected(unreachable(path, errno));
  }
  // The credentials of whoever called listen() on that socket (unix(7)): the server itself.
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
    return tl::make_unexpected(ConnectFailure{
        ConnectFailure::Kind::untrusted,
        fmt::format("refusing control socket {}: cannot tell who serves it: SO_PEERCRED: {}", path,
                    errno_text(errno))});
  }
  if (auto why = untrusted_server(path, peer.uid, peer.pid, euid)) {
    return tl::make_unexpected(ConnectFailure{ConnectFailure::Kind::untrusted, *why});
  }
  return fd;
}

}  // namespace clusterd
