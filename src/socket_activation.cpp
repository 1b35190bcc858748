// Takes the sockets systemd passed to clusterd and adopts them as listeners by name, by address
// or in order (socket activation: protocols §1.3, interface §5).
#include "socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>

#include <spdlog/spdlog.h>

#include "address.h"
#include "decimal.h"
#include "errno_text.h"
#include "pidfd.h"
#include "reuseport_steering.h"
#include "socket_address.h"

namespace clusterd {
namespace {

constexpr int listen_fds_start = 3;  // SD_LISTEN_FDS_START (sd_listen_fds(3))

// f_type of pidfs (Linux 6.9), where every pidfd has an inode number of its own: the id that
// systemd ≥ 258 puts in LISTEN_PIDFDID. Not in Debian 12's headers.
constexpr std::uint64_t pidfs_magic = 0x50494446;

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

// Whether LISTEN_PIDFDID names this process, checked as libsystemd checks it (sd-daemon.c):
// only where pidfds have inode numbers of their own (pidfs); elsewhere LISTEN_PID decides.
bool pidfd_id_is_ours(std::uint64_t expected) {
  const Fd pidfd = open_pidfd(::getpid());
  struct statfs filesystem {};
  struct stat status {};
  if (!pidfd || ::fstatfs(pidfd.get(), &filesystem) != 0 ||
      static_cast<std::uint64_t>(filesystem.f_type) != pidfs_magic || ::fstat(pidfd.get(), &status) != 0) {
    return true;
  }
  return static_cast<std::uint64_t>(status.st_ino) == expected;
}

// "a::c" is three names (protocols §1.1).
std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = text.find(':', start);
    names.push_back(text.substr(start, colon - start));
    if (colon == std::string::npos) {
      return names;
    }
    start = colon + 1;
  }
}

// "unix:/run/app.sock", "unix:@name" (abstract), "unix:" (unnamed); nullopt if not AF_UNIX.
std::optional<std::string> unix_address_of(int fd) {
  sockaddr_un local{};
  socklen_t length = sizeof(local);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0 || local.sun_family != AF_UNIX) {
    return std::nullopt;
  }
  const std::size_t size = length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
  std::string path(local.sun_path, std::min(size, sizeof(local.sun_path)));
  if (!path.empty() && path.front() == '\0') {
    path.front() = '@';
    return "unix:" + path;
  }
  return "unix:" + path.substr(0, path.find('\0'));
}

// What an inherited socket is bound to, as the operator would write it.
std::string inherited_address_of(int fd) {
  if (auto unix_address = unix_address_of(fd)) {
    return *unix_address;
  }
  return local_address_of(fd, "");
}

// Whether `fd` is bound to what `address` configures. `8000` (dual stack) also matches
// 0.0.0.0:8000, which is what systemd binds on a kernel without IPv6, as open_tcp does.
bool is_bound_to(int fd, const Address& address) {
  if (address.family == AddressFamily::unix_path) {
    return unix_address_of(fd) == format_address(address);
  }
  SocketAddress local;
  local.length = sizeof(local.storage);
  if (::getsockname(fd, local.get(), &local.length) != 0) {
    return false;
  }
  SocketAddress wanted;
  try {
    wanted = to_socket_address(address);
  } catch (const ListenError&) {
    return false;  // not numeric: the config loader lets no such address through
  }
  if (local.storage.ss_family == AF_INET && wanted.storage.ss_family == AF_INET6 && address.any_dual_stack) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&local.storage);
    return ntohs(in4->sin_port) == address.port && in4->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (local.storage.ss_family != wanted.storage.ss_family) {
    return false;
  }
  if (local.storage.ss_family == AF_INET) {
    const auto* have = reinterpret_cast<const sockaddr_in*>(&local.storage);
    const auto* want = reinterpret_cast<const sockaddr_in*>(&wanted.storage);
    return have->sin_port == want->sin_port && have->sin_addr.s_addr == want->sin_addr.s_addr;
  }
  if (local.storage.ss_family == AF_INET6) {
    const auto* have = reinterpret_cast<const sockaddr_in6*>(&local.storage);
    const auto* want = reinterpret_cast<const sockaddr_in6*>(&wanted.storage);
    return have->sin6_port == want->sin6_port &&
           std::memcmp(&have->sin6_addr, &want->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

// Why an inherited socket cannot serve as a listener, or nullopt if it can. Nothing is
// changed on it: systemd set it up (protocols §1.3 step 2).
std::optional<std::string> why_not_adoptable(const InheritedSocket& socket) {
  if (!socket.fd) {
    return "not an open file descriptor";
  }
  if (socket.name == "connection") {
    return "a per-connection socket (Accept=yes); clusterd needs the listening socket itself: set Accept=no "
           "in the socket unit";
  }
  int type = 0;
  socklen_t length = sizeof(type);
  if (::getsockopt(socket.fd.get(), SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    return errno == ENOTSOCK ? std::string("not a socket") : "getsockopt SO_TYPE: " + errno_text(errno);
  }
  if (type != SOCK_STREAM) {
    return std::string("not a stream socket (only ListenStream= sockets can be passed to workers)");
  }
  int accepting = 0;
  length = sizeof(accepting);
  if (::getsockopt(socket.fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0) {
    return "getsockopt SO_ACCEPTCONN: " + errno_text(errno);
  }
  if (accepting == 0) {
    return std::string("not listening");
  }
  return std::nullopt;
}

// The backlog systemd gave the socket, which clusterd must not change (protocols §1.3). For a
// TCP listener the kernel reports it in TCP_INFO (tcpi_sacked holds sk_max_ack_backlog while
// listening, net/ipv4/tcp.c: tcp_get_info); for a unix socket nothing does, so this is
// systemd's default Backlog= (SOMAXCONN) capped like ours. Used only to listen again.
int adopted_backlog(int fd) {
  tcp_info info{};
  socklen_t length = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 && info.tcpi_sacked > 0 &&
      info.tcpi_sacked <= static_cast<std::uint32_t>(INT_MAX)) {
    return static_cast<int>(info.tcpi_sacked);
  }
  return effective_backlog(SOMAXCONN);
}

struct Adoptee {
  InheritedSocket socket;
  std::string position;  // "fd3": where systemd put it
  std::string label;     // `inherited fd3 "http" (127.0.0.1:8000)`, for messages
  std::string address;
  std::optional<std::string> problem;
  bool taken = false;
};

std::vector<Adoptee> examine(std::vector<InheritedSocket>& inherited) {
  std::vector<Adoptee> adoptees;
  adoptees.reserve(inherited.size());
  for (std::size_t i = 0; i < inherited.size(); ++i) {
    Adoptee adoptee;
    adoptee.position = "fd" + std::to_string(listen_fds_start + static_cast<int>(i));
    adoptee.address = inherited[i].fd ? inherited_address_of(inherited[i].fd.get()) : "";
    adoptee.label = "inherited " + adoptee.position;
    if (!inherited[i].name.empty()) {
      adoptee.label += " \"" + inherited[i].name + "\"";
    }
    if (!adoptee.address.empty()) {
      adoptee.label += " (" + adoptee.address + ")";
    }
    adoptee.problem = why_not_adoptable(inherited[i]);
    adoptee.socket = std::move(inherited[i]);
    adoptees.push_back(std::move(adoptee));
  }
  return adoptees;
}

Listener adopt(Adoptee& adoptee, std::string name) {
  const int backlog = adopted_backlog(adoptee.socket.fd.get());
  // No unix path: an adopted socket file belongs to the socket unit and is never removed.
  return Listener(std::move(name), adoptee.address, std::move(adoptee.socket.fd), backlog, "");
}

}  // namespace

std::vector<InheritedSocket> take_inherited_sockets() {
  const auto pid_text = environment("LISTEN_PID");
  const auto pid = pid_text ? parse_decimal(*pid_text) : std::nullopt;
  if (!pid || *pid != static_cast<std::uint64_t>(::getpid())) {
    return {};
  }
  const auto fds_text = environment("LISTEN_FDS");
  const auto names_text = environment("LISTEN_FDNAMES");
  const auto pidfd_id_text = environment("LISTEN_PIDFDID");
  // Unset before anything else: they describe fds only we may take, and must reach no child
  // whatever happens next (protocols §1.3 step 1).
  for (const char* variable : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID"}) {
    ::unsetenv(variable);
  }
  if (pidfd_id_text) {
    const auto pidfd_id = parse_decimal(*pidfd_id_text);
    if (pidfd_id && !pidfd_id_is_ours(*pidfd_id)) {
      spdlog::warn("LISTEN_PIDFDID={} is not this process; ignoring the inherited sockets", *pidfd_id_text);
      return {};
    }
  }
  const auto count = fds_text ? parse_decimal(*fds_text) : std::nullopt;
  if (!count || *count == 0 || *count > static_cast<std::uint64_t>(INT_MAX - listen_fds_start) / 2) {
    spdlog::warn("LISTEN_FDS={} is not a count of sockets; ignoring socket activation", fds_text.value_or(""));
    return {};
  }
  const int n = static_cast<int>(*count);
  std::vector<std::string> names(static_cast<std::size_t>(n));
  if (names_text) {
    std::vector<std::string> given = split_names(*names_text);
    if (given.size() == names.size()) {
      names = std::move(given);
    } else {
      // libsystemd refuses the whole set (-EINVAL); the sockets themselves are fine, and
      // addresses can still match them to listeners.
      spdlog::warn("LISTEN_FDNAMES has {} names for LISTEN_FDS={}; ignoring the names", given.size(), n);
    }
  }
  std::vector<InheritedSocket> taken;
  taken.reserve(names.size());
  for (int i = 0; i < n; ++i) {
    const int original = listen_fds_start + i;
    std::string& name = names[static_cast<std::size_t>(i)];
    if (::fcntl(original, F_GETFD) == -1) {
      taken.push_back({Fd(), std::move(name)});  // kept in place: later positions keep their names
      continue;
    }
    // Above the whole range, so fds 3.. are free for spawn_plan's layout and the copies are
    // close-on-exec: a worker gets only what spawn_plan lays out (protocols §1.3 step 3).
    const int moved = ::fcntl(original, F_DUPFD_CLOEXEC, listen_fds_start + n);
    if (moved < 0) {
      throw std::system_error(errno, std::generic_category(), "move inherited fd " + std::to_string(original));
    }
    Fd(original).reset();
    taken.push_back({Fd(moved), std::move(name)});
  }
  return taken;
}

std::vector<Listener> adopt_listeners(std::vector<InheritedSocket> inherited,
                                      const std::vector<ListenerConfig>& listeners) {
  std::vector<Adoptee> adoptees = examine(inherited);
  std::vector<std::string> errors;
  for (const Adoptee& adoptee : adoptees) {
    if (adoptee.problem) {
      errors.push_back(adoptee.label + ": " + *adoptee.problem);
    }
  }
  std::vector<Listener> adopted;
  if (listeners.empty()) {
    for (Adoptee& adoptee : adoptees) {
      adoptee.taken = true;
      if (!adoptee.problem) {
        const std::string& given = adoptee.socket.name;
        adopted.push_back(adopt(adoptee, given.empty() || given == "unknown" ? adoptee.position : given));
      }
    }
  } else {
    // Every name first: a listener matched by address must not take a socket that another
    // listener names.
    std::vector<Adoptee*> chosen(listeners.size(), nullptr);
    for (std::size_t l = 0; l < listeners.size(); ++l) {
      for (Adoptee& adoptee : adoptees) {
        if (!adoptee.taken && adoptee.socket.name == listeners[l].name) {
          adoptee.taken = true;
          chosen[l] = &adoptee;
          if (adoptee.socket.fd && !is_bound_to(adoptee.socket.fd.get(), listeners[l].address)) {
            spdlog::warn("adopted socket is not bound to the configured address name={} configured={} bound={}",
                         listeners[l].name, format_address(listeners[l].address), adoptee.address);
          }
          break;
        }
      }
    }
    for (std::size_t l = 0; l < listeners.size(); ++l) {
      for (Adoptee& adoptee : adoptees) {
        if (chosen[l] != nullptr) {
          break;
        }
        if (!adoptee.taken && adoptee.socket.fd && is_bound_to(adoptee.socket.fd.get(), listeners[l].address)) {
          adoptee.taken = true;
          chosen[l] = &adoptee;
        }
      }
    }
    for (std::size_t l = 0; l < listeners.size(); ++l) {
      if (listeners[l].reuseport == ReusePort::per_slot) {
        // A per-slot listener is a group of SO_REUSEPORT sockets clusterd binds, one per slot,
        // and systemd passes one socket: it could be one member of the group at best (and only
        // with ReusePort=yes in the socket unit), whose queue dies with clusterd while the
        // socket unit's survives. No half measure: the operator chooses one model.
        errors.push_back("listener \"" + listeners[l].name + "\" (" + format_address(listeners[l].address) +
                         "): reuseport = \"per-slot\" cannot be used with sockets passed by systemd "
                         "(LISTEN_FDS): clusterd binds one socket per slot itself; use reuseport = \"shared\", "
                         "or start clusterd without the socket unit");
      } else if (chosen[l] == nullptr) {
        errors.push_back("listener \"" + listeners[l].name + "\" (" + format_address(listeners[l].address) +
                         "): no inherited socket has its name or address");
      } else if (!chosen[l]->problem) {
        adopted.push_back(adopt(*chosen[l], listeners[l].name));
      }
    }
  }
  for (const Adoptee& adoptee : adoptees) {
    if (!adoptee.taken && !adoptee.problem) {
      errors.push_back(adoptee.label + ": no [[listen]] has its name or address");
    }
  }
  if (!errors.empty()) {
    std::string text = "socket activation: ";
    for (std::size_t i = 0; i < errors.size(); ++i) {
      text += (i == 0 ? "" : "; ") + errors[i];
    }
    throw ListenError(text);
  }
  return adopted;
}

std::vector<InheritedSocket> take_stored_sockets(std::vector<InheritedSocket>& inherited) {
  std::vector<InheritedSocket> stored;
  for (auto socket = inherited.begin(); socket != inherited.end();) {
    if (socket->name.starts_with(stored_fd_prefix)) {
      socket->name.erase(0, stored_fd_prefix.size());
      stored.push_back(std::move(*socket));
      socket = inherited.erase(socket);
    } else {
      ++socket;
    }
  }
  return stored;
}

std::optional<Listener> reuse_stored_socket(std::vector<InheritedSocket>& stored, const ListenerConfig& config) {
  const auto found = std::find_if(stored.begin(), stored.end(),
                                  [&](const InheritedSocket& socket) { return socket.name == config.name; });
  if (found == stored.end() || reuseport_in_effect(config) != ReusePort::shared || why_not_adoptable(*found)) {
    return std::nullopt;
  }
  // Port 0 let the kernel pick one: the one it picked then is the listener's.
  Address wanted = config.address;
  SocketAddress local;
  local.length = sizeof(local.storage);
  if (wanted.family != AddressFamily::unix_path && wanted.port == 0 &&
      ::getsockname(found->fd.get(), local.get(), &local.length) == 0) {
    wanted.port = local.storage.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<const sockaddr_in6*>(&local.storage)->sin6_port)
                      : ntohs(reinterpret_cast<const sockaddr_in*>(&local.storage)->sin_port);
  }
  if (!is_bound_to(found->fd.get(), wanted)) {
    return std::nullopt;
  }
  InheritedSocket socket = std::move(*found);
  stored.erase(found);
  const int backlog = adopted_backlog(socket.fd.get());
  const std::string address = inherited_address_of(socket.fd.get());
  // A unix socket file clusterd created: removed at its exit as if it had just bound it.
  const std::string unix_path = config.address.family == AddressFamily::unix_path ? format_address(config.address) : "";
  return Listener(config.name, address, std::move(socket.fd), backlog, unix_path, static_cast<mode_t>(config.mode));
}

}  // namespace clusterd
