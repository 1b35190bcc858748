// The client subcommands: find the control socket, send one request, print the reply.
#include "control_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ostream>
#include <system_error>

#include "config.h"
#include "control_connect.h"
#include "control_paths.h"
#include "control_protocol.h"
#include "control_render.h"
#include "errno_text.h"
#include "fd.h"
#include "printable.h"

namespace clusterd {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_refused = 1;
constexpr int exit_usage = 2;

// status, scale and the answer to stop come at once from a healthy clusterd; a reload takes as
// long as it takes, and so does the stop itself.
constexpr int quick_reply_seconds = 30;

// Far above any real reply (4096 workers with long STATUS= texts are a few MiB): a server that
// sends more is not a clusterd, and must not make the client use up the memory.
constexpr std::size_t max_reply_line = 64u << 20;

// A reply that is not one, shown in the error: escaped and cut, since anything could be in it.
constexpr std::size_t max_shown_reply = 200;

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

struct Found {
  std::optional<std::string> path;
  std::string problem;  // when there is no path: why, naming what was tried
};

// Among several sockets, the ones that accept a connection from a server we believe; a stale
// file of a killed instance does not make the choice ambiguous.
std::vector<std::string> answering(const std::vector<std::string>& paths) {
  std::vector<std::string> live;
  for (const std::string& path : paths) {
    if (connect_control(path, ::geteuid())) {
      live.push_back(path);
    }
  }
  return live;
}

std::string not_searched(const std::vector<std::string>& untrusted) {
  std::string text;
  for (const std::string& why : untrusted) {
    text += (text.empty() ? "" : "; ") + why;
  }
  return "not searched, since another user could have put a socket there: " + text;
}

// A directory passed over for being untrusted is said whatever the outcome: its presence is
// either a mistake in its mode or someone waiting for a client to ask it.
Found search(const std::optional<std::string>& name, std::ostream& err) {
  const ControlSearch found = find_control_sockets(control_directories_here(true), name, ::geteuid());
  if (found.found.empty()) {
    std::string problem = (name ? "no clusterd named " + *name + " found" : std::string("no clusterd found")) +
                          " (tried " + joined(found.tried) + ")";
    if (!found.untrusted.empty()) {
      problem += "; " + not_searched(found.untrusted);
    }
    return {std::nullopt, problem};
  }
  if (!found.untrusted.empty()) {
    err << "clusterd: warning: " << printable(not_searched(found.untrusted)) << '\n';
  }
  if (found.found.size() == 1) {
    return {found.found.front(), {}};
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
    return search(options.overrides.name, err);
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
  return search(config->name, err);
}

// Reads up to and without the first '\n'. nullopt: the connection ended (or timed out) first,
// or the line grew beyond max_reply_line; `error` says which.
std::optional<std::string> read_line(int fd, std::string& buffer, std::string& error) {
  for (;;) {
    const auto newline = buffer.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      return line;
    }
    if (buffer.size() > max_reply_line) {
      error = "the reply is longer than " + std::to_string(max_reply_line >> 20) + " MiB";
      return std::nullopt;
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

// What a reply that is not one looked like, for the error: escaped, and cut when long.
std::string shown_reply(const std::string& line) {
  if (line.size() <= max_shown_reply) {
    return printable(line);
  }
  return printable(std::string_view(line).substr(0, max_shown_reply)) + "...";
}

int ask(const CliOptions& options, const Request& request, const std::string& path, std::ostream& out,
        std::ostream& err) {
  auto connected = connect_control(path, ::geteuid());
  if (!connected) {
    err << "clusterd: " << printable(connected.error().message) << '\n';
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
      err << "clusterd: cannot send to control socket " << printable(path) << ": " << errno_text(errno) << '\n';
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
    err << "clusterd: control socket " << printable(path) << ": " << error << '\n';
    return exit_refused;
  }
  const auto reply = parse_reply(*reply_line);
  if (!reply) {
    err << "clusterd: control socket " << printable(path) << ": " << reply.error() << ": " << shown_reply(*reply_line)
        << '\n';
    return exit_refused;
  }
  // Nothing of the reply reaches the terminal as it came: a worker's STATUS= is in it.
  const bool ok = (*reply)["ok"].get<bool>();
  if (options.json) {
    out << printable_json(*reply) << '\n';
  } else if (ok) {
    out << render_reply(request, *reply);
  } else {
    err << "clusterd: " << printable((*reply)["error"].get<std::string>()) << '\n';
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

}  // namespace

int run_client(const CliOptions& options, std::ostream& out, std::ostream& err) {
  const Request request = request_of(options);
  const Found found = find_socket(options, err);
  if (!found.path) {
    err << "clusterd: " << printable(found.problem) << '\n';
    return exit_usage;
  }
  // The renderer takes a field of an unexpected type as "-"; this is for what it did not foresee.
  // A reply must never end the client other than with 0, 1 or 2.
  try {
    return ask(options, request, *found.path, out, err);
  } catch (const nlohmann::json::exception& error) {
    err << "clusterd: control socket " << printable(*found.path) << ": cannot read the reply: " << error.what()
        << '\n';
    return exit_refused;
  }
}

}  // namespace clusterd
