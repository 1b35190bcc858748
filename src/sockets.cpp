// Opens clusterd's listening sockets (TCP v4/v6, unix) once or adopts systemd's, and listens
// again when a worker has shut one down.
#include "sockets.h"

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
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <system_error>

#include <spdlog/spdlog.h>

#include "address.h"

namespace clusterd {
namespace {

std::string errno_text(int error) { return std::generic_category().message(error); }

// `bind 127.0.0.1:80: Permission denied`: the action, the address, the reason.
[[noreturn]] void fail(std::string_view action, const std::string& shown, int error) {
  throw ListenError(std::string(action) + " " + shown + ": " + errno_text(error));
}

// listen() silently caps the backlog at net.core.somaxconn (protocols §4.4); capping it here
// makes the logged value the one the kernel uses. Unreadable (no /proc): trust the request.
int effective_backlog(int requested) {
  const int wanted = std::max(requested, 1);
  std::ifstream file("/proc/sys/net/core/somaxconn");
  int somaxconn = 0;
  if (file >> somaxconn && somaxconn > 0) {
    return std::min(wanted, somaxconn);
  }
  return wanted;
}

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

SocketAddress to_socket_address(const Address& address) {
  SocketAddress result;
  if (address.family == AddressFamily::ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    if (::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) != 1) {
      throw ListenError(format_address(address) + ": not a numeric IPv6 address");
    }
    result.length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&result.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(address.port);
    if (::inet_pton(AF_INET, address.host.c_str(), &in4->sin_addr) != 1) {
      throw ListenError(format_address(address) + ": not a numeric IPv4 address");
    }
    result.length = sizeof(sockaddr_in);
  }
  return result;
}

// What getsockname() says, in format_address form; `fallback` if it cannot say.
std::string local_address_of(int fd, const std::string& fallback) {
  SocketAddress local;
  local.length = sizeof(local.storage);
  if (::getsockname(fd, local.get(), &local.length) != 0) {
    return fallback;
  }
  Address address;
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (local.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&local.storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size());
    address.family = AddressFamily::ipv6;
    address.port = ntohs(in6->sin6_port);
  } else if (local.storage.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&local.storage);
    ::inet_ntop(AF_INET, &in4->sin_addr, text.data(), text.size());
    address.family = AddressFamily::ipv4;
    address.port = ntohs(in4->sin_port);
  } else {
    return fallback;
  }
  address.host = text.data();
  return format_address(address);
}

void set_int_option(int fd, int level, int option, int value, std::string_view name, const std::string& shown) {
  if (::setsockopt(fd, level, option, &value, sizeof(value)) != 0) {
    fail("setsockopt " + std::string(name), shown, errno);
  }
}

Listener open_tcp(const ListenerConfig& config) {
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
  if (address.family == AddressFamily::ipv6) {
    // Always set, never inherited from net.ipv6.bindv6only: the config alone decides (§4.3).
    set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, config.ipv6_only ? 1 : 0, "IPV6_V6ONLY", shown);
  }
  SocketAddress socket_address = to_socket_address(address);
  if (::bind(fd.get(), socket_address.get(), socket_address.length) != 0) {
    fail("bind", shown, errno);
  }
  const int backlog = effective_backlog(config.backlog);
  if (::listen(fd.get(), backlog) != 0) {
    fail("listen", shown, errno);
  }
  std::string bound = local_address_of(fd.get(), shown);
  return Listener(config.name, std::move(bound), std::move(fd), backlog, "");
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
                              const std::string& shown) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
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
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
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

// Sets the process umask for its lifetime. clusterd binds before it starts threads or
// workers, so changing this process-wide value briefly is safe.
class UmaskScope {
 public:
  explicit UmaskScope(mode_t mask) : previous_(::umask(mask)) {}
  UmaskScope(const UmaskScope&) = delete;
  UmaskScope& operator=(const UmaskScope&) = delete;
  ~UmaskScope() { ::umask(previous_); }

 private:
  mode_t previous_;
};

Listener open_unix(const ListenerConfig& config) {
  const std::string& path = config.address.path;
  const std::string shown = format_address(config.address);
  const sockaddr_un socket_address = unix_socket_address(path, shown);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    fail("socket", shown, errno);
  }
  remove_stale_socket_file(path, socket_address, shown);
  {
    // bind() creates the file with 0777 minus the umask. A umask of 0777 creates it with no
    // permission at all, so nobody can connect before chmod() below sets exactly `mode`:
    // there is no moment at which the file is wider than configured (protocols §4.5).
    const UmaskScope private_file(0777);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&socket_address), sizeof(socket_address)) != 0) {
      fail("bind", shown, errno);
    }
  }
  const int backlog = effective_backlog(config.backlog);
  // Built right after bind(): from here on, a failure that throws removes the file through the
  // Listener's destructor, which checks it is still the file we created.
  Listener listener(config.name, shown, std::move(fd), backlog, path);
  if (::chmod(path.c_str(), static_cast<mode_t>(config.mode & 0777)) != 0) {
    fail("chmod", shown, errno);
  }
  if (::listen(listener.fd(), backlog) != 0) {
    fail("listen", shown, errno);
  }
  return listener;
}

}  // namespace

Listener::Listener(std::string name, std::string bound_address, Fd fd, int backlog, std::string unix_path)
    : name_(std::move(name)),
      bound_address_(std::move(bound_address)),
      fd_(std::move(fd)),
      backlog_(backlog),
      unix_path_(std::move(unix_path)) {
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
    unix_dev_ = other.unix_dev_;
    unix_ino_ = other.unix_ino_;
  }
  return *this;
}

Listener::~Listener() { remove_unix_file(); }

void Listener::remove_unix_file() noexcept {
  // A moved-from Listener has no fd (Fd's move releases it); it must not remove the file its
  // successor still serves, whatever state the moved-from path string is in.
  if (unix_path_.empty() || !fd_) {
    return;
  }
  struct stat status {};
  if (::lstat(unix_path_.c_str(), &status) == 0 && status.st_dev == unix_dev_ && status.st_ino == unix_ino_) {
    ::unlink(unix_path_.c_str());
  }
  unix_path_.clear();
}

bool Listener::ensure_listening() {
  int accepting = 0;
  socklen_t length = sizeof(accepting);
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0) {
    spdlog::error("cannot check listener name={} address={} error=\"getsockopt SO_ACCEPTCONN: {}\"", name_,
                  bound_address_, errno_text(errno));
    return false;
  }
  if (accepting != 0) {
    return false;
  }
  // Nothing here may throw: this runs inside the event loop. A failure is logged and
  // checked again after the next worker exit.
  if (::listen(fd_.get(), backlog_) != 0) {
    spdlog::error("listener stopped by a worker and cannot listen again name={} address={} error=\"listen: {}\"",
                  name_, bound_address_, errno_text(errno));
    return false;
  }
  // A TCP socket bound to port 0 gives its port back when it stops listening, and listen()
  // picks a new one; report the address clients must use now (unix: unchanged).
  bound_address_ = local_address_of(fd_.get(), bound_address_);
  return true;
}

std::vector<Listener> open_listeners(const std::vector<ListenerConfig>& listeners) {
  std::vector<Listener> opened;
  opened.reserve(listeners.size());
  for (const ListenerConfig& config : listeners) {
    try {
      if (config.address.family == AddressFamily::unix_path) {
        opened.push_back(open_unix(config));
      } else {
        opened.push_back(open_tcp(config));
      }
    } catch (const ListenError& error) {
      // Name the listener as the operator wrote it, so "which one?" needs no guessing.
      throw ListenError("listener \"" + config.name + "\": " + error.what());
    }
  }
  return opened;
}

// ---- Socket activation (protocols §1.3, interface §5) -------------------------------------

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

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) {
    return std::nullopt;
  }
  return value;
}

// Whether LISTEN_PIDFDID names this process, checked as libsystemd checks it (sd-daemon.c):
// only where pidfds have inode numbers of their own (pidfs); elsewhere LISTEN_PID decides.
// The raw system call, as in process.cpp: glibc 2.36's pidfd_open cannot be linked from C++.
bool pidfd_id_is_ours(std::uint64_t expected) {
  const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0U)));
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
      if (chosen[l] == nullptr) {
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

}  // namespace clusterd
