// What a start would fail on that only the running system can tell, found for `clusterd check`
// without changing the system.
#include "start_preflight.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "control_connect.h"
#include "control_protocol.h"
#include "errno_text.h"
#include "executable_path.h"
#include "fd.h"
#include "program_format.h"
#include "socket_address.h"
#include "text_file.h"
#include "trusted_path.h"

namespace clusterd {
namespace {

// A status reply comes at once from a healthy clusterd; one that does not answer in this time
// is taken as not running here, and `check` goes on without it.
constexpr int status_reply_seconds = 5;
// Far above a real status reply (4096 workers): a server that sends more is not a clusterd.
constexpr std::size_t max_status_reply = 64u << 20;
// The kernel follows at most this many "#!" interpreters that are scripts themselves (binfmt_script).
constexpr int max_interpreter_depth = 4;

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

// The instance that answers at the control socket: its listeners' addresses as bound.
struct RunningInstance {
  std::string name;
  long long pid = 0;
  std::vector<std::string> addresses;
};

std::optional<std::string> read_reply_line(int fd) {
  std::string buffer;
  std::array<char, 65536> chunk{};
  while (buffer.find('\n') == std::string::npos) {
    if (buffer.size() > max_status_reply) {
      return std::nullopt;
    }
    const ssize_t got = retry_on_eintr([&] { return ::read(fd, chunk.data(), chunk.size()); });
    if (got <= 0) {
      return std::nullopt;
    }
    buffer.append(chunk.data(), static_cast<std::size_t>(got));
  }
  return buffer.substr(0, buffer.find('\n'));
}

std::optional<RunningInstance> instance_of(const nlohmann::ordered_json& reply) {
  if (!reply.value("ok", false)) {
    return std::nullopt;
  }
  RunningInstance instance;
  instance.name = reply.value("name", std::string());
  instance.pid = reply.value("pid", 0LL);
  for (const auto& listener : reply.value("listeners", nlohmann::ordered_json::array())) {
    instance.addresses.push_back(listener.at("address").get<std::string>());
  }
  return instance;
}

// Asks the instance for its status through connect_control, which believes only a server of
// root or our own uid. nullopt when none answers, or not with a status.
std::optional<RunningInstance> ask_running_instance(const std::optional<std::string>& control_path) {
  if (!control_path) {
    return std::nullopt;
  }
  auto connected = connect_control(*control_path, ::geteuid());
  if (!connected) {
    return std::nullopt;
  }
  const Fd fd = std::move(*connected);
  timeval timeout{};
  timeout.tv_sec = status_reply_seconds;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const std::string line = request_line(StatusRequest{}) + "\n";
  if (retry_on_eintr([&] { return ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL); }) !=
      static_cast<ssize_t>(line.size())) {
    return std::nullopt;
  }
  const auto reply_line = read_reply_line(fd.get());
  if (!reply_line) {
    return std::nullopt;
  }
  const auto reply = parse_reply(*reply_line);
  if (!reply) {
    return std::nullopt;
  }
  try {
    return instance_of(*reply);
  } catch (const nlohmann::json::exception&) {  // a field of another type: not a status we know
    return std::nullopt;
  }
}

int unprivileged_port_start() {
  const auto text = read_text_file("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  if (text) {
    char* end = nullptr;
    const long value = std::strtol(text->c_str(), &end, 10);
    if (end != text->c_str() && value >= 0 && value <= 65536) {
      return static_cast<int>(value);
    }
  }
  return 1024;
}

void set_option(int fd, int level, int option, int value) { ::setsockopt(fd, level, option, &value, sizeof value); }

// Binds a socket to the listener's address as open_tcp (sockets.cpp) binds a listener's first
// socket, with the same options (never SO_REUSEPORT before bind(), per-slot or not), and closes
// it again. Never listen(). Returns 0 or the errno of the failure.
int probe_tcp(const ListenerConfig& config) {
  Address address = config.address;
  Fd fd(::socket(address.family == AddressFamily::ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd && errno == EAFNOSUPPORT && address.any_dual_stack) {
    address.family = AddressFamily::ipv4;  // no IPv6 here: a start listens on 0.0.0.0 instead
    address.host = "0.0.0.0";
    address.any_dual_stack = false;
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!fd) {
    return errno;
  }
  set_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (address.family == AddressFamily::ipv6) {
    set_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, config.ipv6_only ? 1 : 0);
  }
  try {
    SocketAddress socket_address = to_socket_address(address);
    if (::bind(fd.get(), socket_address.get(), socket_address.length) != 0) {
      return errno;
    }
  } catch (const ListenError& error) {
    return error.error() != 0 ? error.error() : EINVAL;
  }
  return 0;
}

// The unix listener's problem as open_unix (sockets.cpp) would meet it, or nullopt: its
// directory missing or untrusted, or a path that is not a socket, or a socket someone serves.
std::optional<std::string> unix_problem(const ListenerConfig& config) {
  const std::string& path = config.address.path;
  const std::string shown = format_address(config.address);
  const std::string directory = split_directory(path).first;
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0 && errno == ENOENT) {
    return fmt::format(
        "{}: the directory {} does not exist, and clusterd creates no directory for a listener; create it (mkdir "
        "-p {}, or RuntimeDirectory= in a systemd unit) or choose another path",
        shown, directory, directory);
  }
  // The check a start makes before it touches the path (trusted_socket_directory in sockets.cpp).
  const auto opened = open_trusted_directory(directory, ::geteuid(), "unix socket directory");
  if (!opened) {
    return shown + ": " + opened.error();
  }
  const std::string name = split_directory(path).second;
  if (::fstatat(opened->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
    return std::nullopt;  // missing: a start creates it
  }
  if (!S_ISSOCK(status.st_mode)) {
    return shown + ": the path exists and is not a socket, so a start would fail; remove it or choose another path";
  }
  // Probed as a start probes it: a refused connect() is a stale file that a start replaces.
  sockaddr_un socket_address{};
  socket_address.sun_family = AF_UNIX;
  std::memcpy(socket_address.sun_path, path.data(), std::min(path.size(), sizeof socket_address.sun_path - 1));
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) {
    return std::nullopt;
  }
  const int result = retry_on_eintr([&] {
    return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&socket_address), sizeof socket_address);
  });
  const int error = result == 0 ? 0 : errno;
  if (error == 0 || error == EAGAIN || error == EPROTOTYPE) {
    return fmt::format(
        "{} is in use: another process serves that socket file, so a start would fail; find it with ss -xlp src "
        "{}, stop it or choose another path",
        shown, path);
  }
  return std::nullopt;
}

// The first program_head_size bytes of `path`; nullopt when it cannot be read (a program
// clusterd may execute but not read: its format is then the worker's exec's to find out).
std::optional<std::string> read_head(const std::string& path) {
  Fd fd(retry_on_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); }));
  if (!fd) {
    return std::nullopt;
  }
  std::string head(program_head_size, '\0');
  const ssize_t got = retry_on_eintr([&] { return ::pread(fd.get(), head.data(), head.size(), 0); });
  if (got < 0) {
    return std::nullopt;
  }
  head.resize(static_cast<std::size_t>(got));
  return head;
}

// clusterd's own ELF target: what this kernel surely runs.
std::optional<ElfTarget> own_target() {
  const auto head = read_head("/proc/self/exe");
  if (!head) {
    return std::nullopt;
  }
  const ProgramHead parsed = read_program_head(*head);
  if (parsed.kind != ProgramHead::Kind::elf) {
    return std::nullopt;
  }
  return parsed.elf;
}

// Whether an enabled binfmt_misc handler takes the file (a JAR, a foreign ELF through qemu):
// the kernel asks those before its own formats.
bool binfmt_misc_runs(const std::string& path, const std::string& head) {
  const std::string root = "/proc/sys/fs/binfmt_misc";
  const auto status = read_text_file(root + "/status");
  if (!status || !status->starts_with("enabled")) {
    return false;
  }
  DIR* directory = ::opendir(root.c_str());
  if (directory == nullptr) {
    return false;
  }
  bool runs = false;
  while (const dirent* entry = ::readdir(directory)) {
    const std::string name = entry->d_name;
    if (name == "." || name == ".." || name == "status" || name == "register") {
      continue;
    }
    const auto text = read_text_file(root + "/" + name);
    if (text && binfmt_handler_runs(*text, path, head)) {
      runs = true;
      break;
    }
  }
  ::closedir(directory);
  return runs;
}

// The PATH a worker's `/usr/bin/env NAME` searches: [env]'s, else clusterd's own when it is
// passed on, else unset (env then uses execvp's default).
std::string worker_path(const Config& config) {
  if (const auto set = config.env.find("PATH"); set != config.env.end()) {
    return set->second;
  }
  const bool inherited =
      !config.inherit_env || std::ranges::find(*config.inherit_env, "PATH") != config.inherit_env->end();
  const char* own = std::getenv("PATH");
  return inherited && own != nullptr ? own : "";
}

std::optional<std::string> program_problem(const std::string& path, const Config& config,
                                           const std::optional<ElfTarget>& own, int depth);

// A script's interpreter line, followed as the kernel follows it: the interpreter exists and
// may be executed (a relative one is taken from the worker's directory, where its exec runs),
// and is itself an executable format; `/usr/bin/env NAME` finds NAME in the worker's PATH.
std::optional<std::string> interpreter_problem(const Shebang& shebang, const Config& config,
                                               const std::optional<ElfTarget>& own, int depth) {
  const std::string& written = shebang.interpreter;
  const std::string named = written.find('/') == std::string::npos ? "./" + written : written;
  const std::string from_line = "its interpreter " + quoted(written) + " (the \"#!\" line)";
  auto interpreter = resolve_executable(named, config.directory, "");
  if (!interpreter) {
    const std::string fix = interpreter.error() == ENOENT ? "; install it or correct the \"#!\" line"
                                                          : "; correct the \"#!\" line or the interpreter's mode";
    return from_line + " cannot be executed: " + errno_text(interpreter.error()) + fix;
  }
  if (depth < max_interpreter_depth) {
    if (auto problem = program_problem(*interpreter, config, own, depth + 1)) {
      return from_line + ": " + *problem;
    }
  }
  const std::string& argument = shebang.argument;
  const bool plain_name = !argument.empty() && !argument.starts_with('-') &&
                          argument.find_first_of(" \t=/") == std::string::npos;
  if (plain_name && split_directory(*interpreter).second == "env") {
    const std::string path = worker_path(config);
    if (auto found = resolve_executable(argument, config.directory, path); !found) {
      return fmt::format(
          "its \"#!\" line runs {} through {}, which finds no executable {} in the workers' PATH ({}): {}; install "
          "it, or set PATH in [env], or name the interpreter's absolute path after \"#!\"",
          quoted(argument), written, quoted(argument), path.empty() ? "unset: /bin:/usr/bin" : path,
          errno_text(found.error()));
    }
  }
  return std::nullopt;
}

std::optional<std::string> program_problem(const std::string& path, const Config& config,
                                           const std::optional<ElfTarget>& own, int depth) {
  const auto head = read_head(path);
  if (!head || binfmt_misc_runs(path, *head)) {
    return std::nullopt;
  }
  const ProgramHead parsed = read_program_head(*head);
  if (auto problem = program_head_problem(parsed, own)) {
    return problem;
  }
  if (parsed.kind == ProgramHead::Kind::script) {
    return interpreter_problem(parsed.shebang, config, own, depth);
  }
  return std::nullopt;
}

bool reported_by(const std::optional<RunningInstance>& instance, const std::string& shown) {
  return instance && std::ranges::find(instance->addresses, shown) != instance->addresses.end();
}

}  // namespace

std::string bind_problem(const std::string& shown, const std::string& host, std::uint16_t port, int error,
                         int unprivileged_port_start) {
  const std::string reason = "bind: " + errno_text(error);
  switch (error) {
    case EADDRINUSE:
      return fmt::format(
          "{} is in use: another socket is bound to it, so a start would fail ({}); find its process with ss -ltnp "
          "'sport = :{}', stop it or choose another port",
          shown, reason, port);
    case EACCES:
      return fmt::format(
          "{}: ports below {} need root or CAP_NET_BIND_SERVICE (net.ipv4.ip_unprivileged_port_start), so a start "
          "would fail ({}); run clusterd as root or with that capability (AmbientCapabilities=CAP_NET_BIND_SERVICE "
          "in a systemd unit), or choose a port of {} or above",
          shown, unprivileged_port_start, reason, unprivileged_port_start);
    case EADDRNOTAVAIL:
      return fmt::format(
          "{}: {} is not an address of this host, so a start would fail ({}); choose one it has (ip -brief "
          "address) or 0.0.0.0",
          shown, host, reason);
    default:
      return fmt::format("{}: a start would fail ({})", shown, reason);
  }
}

Preflight preflight_start(const Config& config, const std::string& executable, const PreflightSources& sources,
                          const std::optional<std::string>& control_path) {
  Preflight preflight;
  const bool any_bound = std::any_of(config.listeners.begin(), config.listeners.end(), [](const ListenerConfig& l) {
    return l.address.family == AddressFamily::unix_path || l.address.port != 0;
  });
  const auto instance = any_bound ? ask_running_instance(control_path) : std::nullopt;
  const bool socket_activation_possible = std::getenv("INVOCATION_ID") != nullptr;
  for (std::size_t index = 0; index < config.listeners.size(); ++index) {
    const ListenerConfig& listener = config.listeners[index];
    const std::string origin =
        index < sources.listen_flags.size() ? "--listen " + sources.listen_flags[index] : sources.file;
    const std::string key = fmt::format("listen[{}].address", index);
    const std::string shown = format_address(listener.address);
    const bool unix_socket = listener.address.family == AddressFamily::unix_path;
    if (!unix_socket && listener.address.port == 0) {
      continue;  // the kernel picks a free port
    }
    if (reported_by(instance, shown)) {
      preflight.notes.push_back(fmt::format(
          "{}: {} is held by the running instance {} (pid {}), whose reload keeps or replaces it; another "
          "instance could not bind it",
          key, shown, quoted(instance->name), instance->pid));
      continue;
    }
    std::optional<std::string> problem;
    if (unix_socket) {
      problem = unix_problem(listener);
    } else if (const int error = probe_tcp(listener); error != 0) {
      problem = bind_problem(shown, listener.address.host, listener.address.port, error, unprivileged_port_start());
    }
    if (!problem) {
      continue;
    }
    // systemd runs ExecStartPre= without the socket unit's sockets, and a start it then
    // socket-activates binds nothing: the port the socket unit holds, a privileged one, a unix
    // socket systemd serves are all fine for it. Which start follows cannot be told from here.
    if (socket_activation_possible) {
      preflight.notes.push_back(key + ": " + *problem +
                                " (not an error here: under systemd, INVOCATION_ID being set, the start may be "
                                "socket-activated and then binds nothing)");
    } else {
      preflight.errors.push_back({origin, 0, 0, key, std::move(*problem)});
    }
  }
  if (auto problem = program_problem(executable, config, own_target(), 0)) {
    preflight.errors.push_back(
        {sources.command, 0, 0, "command", "cannot execute " + quoted(executable) + ": " + *problem});
  }
  return preflight;
}

}  // namespace clusterd
