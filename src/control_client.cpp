// The client subcommands: find the control socket, send one request, print the reply.
#include "control_client.h"

#include <poll.h>
#include <sys/ioctl.h>
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
#include "control_progress.h"
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

// A reply that is not one, shown in the error: escaped and cut, since anything could be in it.
constexpr std::size_t max_shown_reply = 200;

// The progress line is redrawn about five times a second: enough to follow a countdown, and a
// status request now and then costs a clusterd next to nothing.
constexpr int progress_interval_ms = 200;
// A status reply for the progress line slower than this ends the drawing, not the command.
constexpr int progress_reply_seconds = 2;

Request request_of(const CliOptions& options) {
  switch (options.command) {
    case Command::reload:
      return ReloadRequest{};
    case Command::scale:
    case Command::restart: {
      // parse_cli checked the argument by this same rule.
      const bool scale = options.command == Command::scale;
      auto request = parse_request((scale ? "scale " : "restart ") +
                                   (scale ? options.scale_to : options.restart_slot).value_or(""));
      return request ? *request : Request{StatusRequest{}};
    }
    case Command::stop:
      return StopRequest{};
    case Command::metrics:
      return MetricsRequest{};
    case Command::upgrade:
      return UpgradeRequest{options.upgrade_binary};
    default:
      return StatusRequest{options.pss};
  }
}

std::string joined(const std::vector<std::string>& paths) {
  std::string text;
  for (const std::string& path : paths) {
    text += (text.empty() ? "" : ", ") + path;
  }
  return text;
}

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
FoundSocket search(const std::optional<std::string>& name, std::ostream& err) {
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

}  // namespace

FoundSocket find_instance_socket(const CliOptions& options, std::ostream& err) {
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

std::optional<std::string> read_reply_line(int fd, std::string& buffer, std::string& error) {
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

tl::expected<Fd, std::string> send_request(const std::string& path, const Request& request) {
  auto connected = connect_control(path, ::geteuid());
  if (!connected) {
    return tl::make_unexpected(connected.error().message);
  }
  Fd fd = std::move(*connected);
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
      return tl::make_unexpected("cannot send to control socket " + path + ": " + errno_text(errno));
    }
    written += static_cast<std::size_t>(sent);
  }
  return fd;
}

void set_receive_timeout(int fd, int seconds) {
  timeval timeout{};
  timeout.tv_sec = seconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

namespace {

// The progress line of `reload` and `stop` on a terminal (control_progress.h). While the command
// waits for its own connection, `status` is asked on a second one every progress_interval_ms and
// the line is rewritten in place on `err`. The first trouble with that second connection ends
// the drawing, never the command: clusterd closes it as it exits at the end of a stop.
class ProgressLine {
 public:
  ProgressLine(ProgressOf what, std::string path, std::ostream& err)
      : what_(what), path_(std::move(path)), err_(err) {}

  // Returns once `fd` has something to read (or an error for the read to report).
  void wait_readable(int fd) {
    pollfd entry{fd, POLLIN, 0};
    while (retry_on_eintr([&] { return ::poll(&entry, 1, progress_interval_ms); }) == 0) {
      draw();
    }
  }

  // What is printed next starts on an empty line, as if no progress had been shown.
  void clear() {
    if (drawn_) {
      err_ << "\r\x1b[K" << std::flush;
      drawn_ = false;
    }
  }

 private:
  void draw() {
    const auto status = ask_status();
    if (!status) {
      return;
    }
    if (auto line = progress_line(what_, *status)) {
      // A line that wrapped could not be rewritten with '\r': it is cut to the terminal's width
      // (less one column, where some terminals wrap already).
      winsize size{};
      if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 && line->size() >= size.ws_col) {
        line->resize(size.ws_col - 1u);
      }
      err_ << '\r' << *line << "\x1b[K" << std::flush;
      drawn_ = true;
    }
  }

  std::optional<nlohmann::ordered_json> ask_status() {
    if (given_up_) {
      return std::nullopt;
    }
    if (!connection_) {
      auto connected = connect_control(path_, ::geteuid());  // the same trust as the command's
      if (!connected) {
        give_up();
        return std::nullopt;
      }
      connection_ = std::move(*connected);
      set_receive_timeout(connection_.get(), progress_reply_seconds);
    }
    const std::string line = request_line(StatusRequest{}) + "\n";
    const bool sent = retry_on_eintr([&] {
      return ::send(connection_.get(), line.data(), line.size(), MSG_NOSIGNAL);
    }) == static_cast<ssize_t>(line.size());
    std::string error;
    const auto reply = sent ? read_reply_line(connection_.get(), buffer_, error) : std::nullopt;
    auto parsed = reply ? parse_reply(*reply) : tl::make_unexpected(error);
    // Whatever the reply holds, the drawing stops; the command goes on.
    if (!parsed || !parsed->contains("ok") || (*parsed)["ok"] != true) {
      give_up();
      return std::nullopt;
    }
    return std::move(*parsed);
  }

  void give_up() {
    given_up_ = true;
    connection_.reset();
  }

  ProgressOf what_;
  std::string path_;
  std::ostream& err_;
  Fd connection_;
  std::string buffer_;
  bool given_up_ = false;
  bool drawn_ = false;
};

// Only for people watching: with --json, or with stderr not a terminal, the output stays the
// final result alone, as scripts and logs expect.
std::optional<ProgressOf> progress_wanted(const CliOptions& options, const Request& request) {
  if (options.json || ::isatty(STDERR_FILENO) != 1) {
    return std::nullopt;
  }
  if (std::holds_alternative<ReloadRequest>(request)) {
    return ProgressOf::reload;
  }
  if (std::holds_alternative<StopRequest>(request)) {
    return ProgressOf::stop;
  }
  return std::nullopt;
}

// After `stop` was answered: clusterd keeps the connection until it exits.
void wait_for_close(int fd, ProgressLine* progress) {
  set_receive_timeout(fd, 0);  // 0: no timeout; a stop waits for the workers' grace period
  std::array<char, 4096> chunk{};
  do {
    if (progress != nullptr) {
      progress->wait_readable(fd);
    }
  } while (retry_on_eintr([&] { return ::read(fd, chunk.data(), chunk.size()); }) > 0);
  if (progress != nullptr) {
    progress->clear();
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
  auto sent = send_request(path, request);
  if (!sent) {
    err << "clusterd: " << printable(sent.error()) << '\n';
    return exit_usage;
  }
  const Fd fd = std::move(*sent);
  if (!std::holds_alternative<ReloadRequest>(request)) {
    set_receive_timeout(fd.get(), quick_reply_seconds);
  }
  std::optional<ProgressLine> progress;
  if (const auto what = progress_wanted(options, request)) {
    progress.emplace(*what, path, err);
  }
  // A reload is answered when it is over: its progress is drawn meanwhile. The answer to stop
  // comes at once (or fails after quick_reply_seconds); its progress is drawn after it.
  if (progress && std::holds_alternative<ReloadRequest>(request)) {
    progress->wait_readable(fd.get());
  }
  std::string buffer;
  std::string error;
  const auto reply_line = read_reply_line(fd.get(), buffer, error);
  if (progress) {
    progress->clear();
  }
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
    wait_for_close(fd.get(), progress ? &*progress : nullptr);
    if (!options.json) {
      out << "stopped\n";
    }
  }
  return ok ? exit_ok : exit_refused;
}

// One status request on its own connection: the reply, or why there is none.
tl::expected<nlohmann::ordered_json, std::string> status_of(const std::string& path) {
  auto sent = send_request(path, StatusRequest{});
  if (!sent) {
    return tl::make_unexpected(sent.error());
  }
  const Fd fd = std::move(*sent);
  set_receive_timeout(fd.get(), progress_reply_seconds);
  std::string buffer;
  std::string error;
  const auto reply = read_reply_line(fd.get(), buffer, error);
  if (!reply) {
    return tl::make_unexpected(error);
  }
  return parse_reply(*reply);
}

// `clusterd ls`: every socket in the default directories, asked for its status one after another.
int list_instances(const CliOptions& options, std::ostream& out, std::ostream& err) {
  const ControlSearch found = find_control_sockets(control_directories_here(true), std::nullopt, ::geteuid());
  if (!found.untrusted.empty()) {
    err << "clusterd: warning: " << printable(not_searched(found.untrusted)) << '\n';
  }
  std::vector<ListedInstance> instances;
  for (const std::string& path : found.found) {
    auto status = status_of(path);
    instances.push_back({path, status ? std::optional(std::move(*status)) : std::nullopt,
                         status ? std::string() : status.error()});
  }
  if (options.json) {
    out << printable_json(list_json(instances)) << '\n';
  } else if (instances.empty()) {
    out << "no clusterd found (tried " << printable(joined(found.tried)) << ")\n";
  } else {
    out << render_list(instances);
  }
  return exit_ok;
}

}  // namespace

int run_client(const CliOptions& options, std::ostream& out, std::ostream& err) {
  if (options.command == Command::ls) {
    return list_instances(options, out, err);
  }
  const Request request = request_of(options);
  const FoundSocket found = find_instance_socket(options, err);
  if (!found.path) {
    err << "clusterd: " << printable(found.problem) << '\n';
    return exit_usage;
  }
  // The renderer takes a field of an unexpected type as "-"; this is for what it did not foresee.
  // A reply must never end the client other than with 0, 1 or 2.
  try {
    if (options.command == Command::logs) {
      return show_logs(options, *found.path, out, err);
    }
    return ask(options, request, *found.path, out, err);
  } catch (const nlohmann::json::exception& error) {
    err << "clusterd: control socket " << printable(*found.path) << ": cannot read the reply: " << error.what()
        << '\n';
    return exit_refused;
  }
}

}  // namespace clusterd
