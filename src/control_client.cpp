// The client subcommands: find the control socket, send one request, print the reply.
#include "control_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ostream>
#include <system_error>

#include "config.h"
#include "control_paths.h"
#include "control_protocol.h"
#include "control_render.h"
#include "fd.h"
#include "errno_text.h"

namespace clusterd {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_refused = 1;
constexpr int exit_usage = 2;

// status, scale and the answer to stop come at once from a healthy clusterd; a reload takes as
// long as it takes, and so does the stop itself.
constexpr int quick_reply_seconds = 30;

Request request_of(const CliOptions& options) {
  switch (options.command) {
    case Command::reload:
      return ReloadRequest{};
    case Command::scale:
      return ScaleRequest{std::stoi(options.scale_to.value_or("1"))};
    case Command::stop:
      return StopRequest{};
    default:
      return StatusRequest{};
  }
}

std::string joined(const std::vector<std::string>& paths) {
  std::string text;
  for (const std::string& path : paths) {
    text += (text.empty() ? "" : ", ") + path;
  }
  return text;
}

// A connected socket, or the errno of connect().
tl::expected<Fd, int> connect_to(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return tl::make_unexpected(ENAMETOOLONG);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return tl::make_unexpected(errno);
  }
  if (retry_on_eintr([&] {
        return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
      }) != 0) {
    return tl::make_unexpected(errno);
  }
  return fd;
}

struct Found {
  std::optional<std::string> path;
  std::string problem;  // when there is no path: why, naming what was tried
};

// Among several sockets, the ones that accept a connection; a stale file of a killed instance
// does not make the choice ambiguous.
std::vector<std::string> answering(const std::vector<std::string>& paths) {
  std::vector<std::string> live;
  for (const std::string& path : paths) {
    if (connect_to(path)) {
      live.push_back(path);
    }
  }
  return live;
}

Found search(const std::optional<std::string>& name) {
  const ControlSearch found = find_control_sockets(control_directories_here(true), name);
  if (found.found.size() == 1) {
    return {found.found.front(), {}};
  }
  if (found.found.empty()) {
    return {std::nullopt, (name ? "no clusterd named " + *name + " found" : std::string("no clusterd found")) +
                              " (tried " + joined(found.tried) + ")"};
  }
  const std::vector<std::string> live = answering(found.found);
  if (live.size() == 1) {
    return {live.front(), {}};
  }
  return {std::nullopt, "several control sockets found: " + joined(found.found) +
                            "; choose one with --name NAME or --control PATH"};
}

Found find_socket(const CliOptions& options, std::ostream& err) {
  if (options.control) {
    return {options.control, {}};
  }
  if (!options.config_file) {
    return search(options.overrides.name);
  }
  // The file as a start reads it (with --name on top), without asking the host: only its name
  // and control.socket matter here.
  ConfigOverrides overrides;
  overrides.name = options.overrides.name;
  auto config = load_config(options.config_file, overrides);
  if (!config) {
    for (const Diagnostic& diagnostic : config.error()) {
      err << diagnostic.to_string() << '\n';
    }
    return {std::nullopt, "cannot find the instance of " + *options.config_file + ": the file has problems"};
  }
  if (!config->control.enabled) {
    return {std::nullopt, *options.config_file + " sets control.socket = \"none\": that instance has no control socket"};
  }
  if (config->control.socket) {
    return {config->control.socket, {}};
  }
  return search(config->name);
}

// Reads up to and without the first '\n'. nullopt: the connection ended (or timed out) first;
// `error` says which.
std::optional<std::string> read_line(int fd, std::string& buffer, std::string& error) {
  for (;;) {
    const auto newline = buffer.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      return line;
    }
    std::array<char, 65536> chunk{};
    const ssize_t got = retry_on_eintr([&] { return ::read(fd, chunk.data(), chunk.size()); });
    if (got > 0) {
      buffer.append(chunk.data(), static_cast<std::size_t>(got));
      continue;
    }
    if (got == 0) {
      error = "the connection closed without a reply";
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      error = "no reply within " + std::to_string(quick_reply_seconds) + "s";
    } else {
      error = "read: " + errno_text(errno);
    }
    return std::nullopt;
  }
}

void set_receive_timeout(int fd, int seconds) {
  timeval timeout{};
  timeout.tv_sec = seconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

// After `stop` was answered: clusterd keeps the connection until it exits.
void wait_for_close(int fd) {
  set_receive_timeout(fd, 0);  // 0: no timeout; a stop waits for the workers' grace period
  std::array<char, 4096> chunk{};
  while (retry_on_eintr([&] { return ::read(fd, chunk.data(), chunk.size()); }) > 0) {
  }
}

}  // namespace

int run_client(const CliOptions& options, std::ostream& out, std::ostream& err) {
  const Request request = request_of(options);
  const Found found = find_socket(options, err);
  if (!found.path) {
    err << "clusterd: " << found.problem << '\n';
    return exit_usage;
  }
  const std::string& path = *found.path;
  auto connected = connect_to(path);
  if (!connected) {
    const int error = connected.error();
    std::string hint;
    if (error == ECONNREFUSED) {
      hint = " (nobody listens: the socket of an instance that was killed?)";
    }
    err << "clusterd: cannot connect to control socket " << path << ": " << errno_text(error) << hint << '\n';
    return exit_usage;
  }
  const Fd fd = std::move(*connected);
  const std::string line = request_line(request) + "\n";
  std::size_t written = 0;
  while (written < line.size()) {
    const ssize_t sent = retry_on_eintr(
        [&] { return ::send(fd.get(), line.data() + written, line.size() - written, MSG_NOSIGNAL); });
    if (sent <= 0) {
      // Closed at once (a refused uid): the reason may be waiting to be read all the same.
      if (errno == EPIPE || errno == ECONNRESET) {
        break;
      }
      err << "clusterd: cannot send to control socket " << path << ": " << errno_text(errno) << '\n';
      return exit_usage;
    }
    written += static_cast<std::size_t>(sent);
  }
  if (!std::holds_alternative<ReloadRequest>(request)) {
    set_receive_timeout(fd.get(), quick_reply_seconds);
  }
  std::string buffer;
  std::string error;
  const auto reply_line = read_line(fd.get(), buffer, error);
  if (!reply_line) {
    err << "clusterd: control socket " << path << ": " << error << '\n';
    return exit_refused;
  }
  const auto reply = parse_reply(*reply_line);
  if (!reply) {
    err << "clusterd: control socket " << path << ": " << reply.error() << ": " << *reply_line << '\n';
    return exit_refused;
  }
  const bool ok = (*reply)["ok"].get<bool>();
  if (options.json) {
    out << *reply_line << '\n';
  } else if (ok) {
    out << render_reply(request, *reply);
  } else {
    err << "clusterd: " << (*reply)["error"].get<std::string>() << '\n';
  }
  out.flush();
  if (ok && std::holds_alternative<StopRequest>(request)) {
    wait_for_close(fd.get());
    if (!options.json) {
      out << "stopped\n";
    }
  }
  return ok ? exit_ok : exit_refused;
}

}  // namespace clusterd
