// `clusterd top`: the terminal, the status connection, the actions and the loop that joins them.
#include "top_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ostream>
#include <system_error>

#include "control_client.h"
#include "control_connect.h"
#include "control_protocol.h"
#include "control_render.h"
#include "errno_text.h"
#include "event_loop.h"
#include "fd.h"
#include "printable.h"
#include "top_keys.h"
#include "top_screen.h"
#include "top_terminal.h"

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;

constexpr int exit_quit = 0;
constexpr int exit_gone = 1;
constexpr int exit_usage = 2;

// The signals top reads from its signalfd: the window's size, and those that would otherwise
// kill it with the terminal left raw and on the alternate screen.
sigset_t top_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    sigaddset(&set, signal);
  }
  return set;
}

// Blocks `signals` while it lives (so that they wait for the signalfd), then restores the mask.
class BlockedSignals {
 public:
  explicit BlockedSignals(const sigset_t& signals) { ::pthread_sigmask(SIG_BLOCK, &signals, &saved_); }
  ~BlockedSignals() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

 private:
  sigset_t saved_{};
};

bool send_line(int fd, const Request& request) {
  const std::string line = request_line(request) + "\n";
  return retry_on_eintr([&] { return ::send(fd, line.data(), line.size(), MSG_NOSIGNAL); }) ==
         static_cast<ssize_t>(line.size());
}

// What one read from a control connection gave: a whole reply line, nothing whole yet, or the
// end of the connection (with why).
struct ReadOutcome {
  std::optional<std::string> line;
  std::optional<std::string> ended;
};

// Called when poll says `fd` is readable, so the read does not block.
ReadOutcome read_reply(int fd, std::string& buffer) {
  std::array<char, 65536> chunk{};
  const ssize_t got = retry_on_eintr([&] { return ::read(fd, chunk.data(), chunk.size()); });
  if (got == 0) {
    return {std::nullopt, "the connection closed"};
  }
  if (got < 0) {
    return {std::nullopt, "read: " + errno_text(errno)};
  }
  buffer.append(chunk.data(), static_cast<std::size_t>(got));
  const auto newline = buffer.find('\n');
  if (newline == std::string::npos) {
    if (buffer.size() > max_reply_line) {
      return {std::nullopt, "the reply is longer than " + std::to_string(max_reply_line >> 20) + " MiB"};
    }
    return {};
  }
  std::string line = buffer.substr(0, newline);
  buffer.erase(0, newline + 1);
  return {std::move(line), std::nullopt};
}

// An action sent on its own connection, waiting for its reply (a reload's comes when it is over).
struct ActionCall {
  Request request;
  Fd fd;
  std::string buffer;
};

class Top {
 public:
  Top(const CliOptions& options, std::string path, Fd connection, FullScreen& screen, SignalReader& signals)
      : interval_(options.interval), path_(std::move(path)), screen_(screen), signals_(signals),
        status_fd_(std::move(connection)) {}

  // Runs until the user quits or clusterd goes away; the exit status, and for 1 the reason.
  int run(std::string& reason) {
    message_ = "asking " + printable(path_) + " for its status";
    for (;;) {
      if (!status_fd_ || !awaiting_status_) {
        if (Clock::now() >= next_status_ && !ask_status(reason)) {
          return exit_gone;
        }
      }
      draw();
      std::vector<pollfd> polled{{STDIN_FILENO, POLLIN, 0}, {signals_.fd(), POLLIN, 0},
                                 {status_fd_ ? status_fd_.get() : -1, POLLIN, 0}};
      for (const ActionCall& action : actions_) {
        polled.push_back({action.fd.get(), POLLIN, 0});
      }
      if (retry_on_eintr([&] { return ::poll(polled.data(), polled.size(), timeout_ms()); }) < 0) {
        throw std::system_error(errno, std::generic_category(), "poll");
      }
      if (polled[1].revents != 0 && quit_signalled()) {
        return exit_quit;
      }
      if (polled[0].revents != 0 && !read_keys()) {
        return exit_quit;
      }
      if (polled[2].revents != 0 && !read_status(reason)) {
        return exit_gone;
      }
      // Only the actions polled: a key read above may have started more, appended after them.
      // Backwards: finished ones are erased.
      for (std::size_t index = polled.size() - 3; index-- > 0;) {
        if (polled[3 + index].revents != 0) {
          read_action(index);
        }
      }
    }
  }

 private:
  // Until the next status request is due; while one is awaited, until its reply (or a key).
  int timeout_ms() const {
    if (status_fd_ && awaiting_status_) {
      return -1;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_status_ - Clock::now());
    return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
  }

  void draw() {
    const std::string prompt = keys_.prompt();
    screen_.draw(top_screen(status_, message_, prompt.empty() ? top_keys_help : prompt, screen_.size()));
  }

  // The status connection is opened again when clusterd closed it between requests (its idle
  // limit, interface §4.5, is shorter than a long --interval); clusterd is gone only when that
  // fails, or when it closes the connection with a request unanswered.
  bool ask_status(std::string& reason) {
    if (!status_fd_) {
      auto connected = connect_control(path_, ::geteuid());
      if (!connected) {
        reason = "clusterd went away: " + connected.error().message;
        return false;
      }
      status_fd_ = std::move(*connected);
      status_buffer_.clear();
    }
    if (!send_line(status_fd_.get(), StatusRequest{})) {
      reason = "clusterd went away: cannot send to control socket " + path_ + ": " + errno_text(errno);
      return false;
    }
    awaiting_status_ = true;
    next_status_ = Clock::now() + interval_;
    return true;
  }

  bool read_status(std::string& reason) {
    const ReadOutcome outcome = read_reply(status_fd_.get(), status_buffer_);
    if (outcome.ended) {
      status_fd_.reset();
      if (!awaiting_status_) {
        return true;  // closed while idle: opened again for the next request
      }
      reason = "clusterd went away: control socket " + path_ + ": " + *outcome.ended;
      return false;
    }
    if (!outcome.line) {
      return true;
    }
    awaiting_status_ = false;
    auto reply = parse_reply(*outcome.line);
    if (!reply || (*reply)["ok"] != true) {
      reason = "control socket " + path_ + ": no status: " +
               (reply ? (*reply)["error"].get<std::string>() : reply.error());
      return false;
    }
    status_ = std::move(*reply);
    return true;
  }

  // False when a signal asks top to quit; SIGWINCH only redraws, which the loop does anyway.
  bool quit_signalled() {
    bool quit = false;
    while (const auto signal = signals_.next()) {
      quit = quit || signal->number != SIGWINCH;
    }
    return quit;
  }

  // False when the user quits or the terminal is gone.
  bool read_keys() {
    std::array<char, 256> bytes{};
    const ssize_t got = retry_on_eintr([&] { return ::read(STDIN_FILENO, bytes.data(), bytes.size()); });
    if (got <= 0) {
      return false;
    }
    for (const TopAction& action : keys_.feed(std::string_view(bytes.data(), static_cast<std::size_t>(got)))) {
      if (std::holds_alternative<TopQuit>(action)) {
        return false;
      }
      if (std::holds_alternative<TopReload>(action)) {
        start(ReloadRequest{}, "reloading");
      } else if (const auto* scale = std::get_if<TopScale>(&action)) {
        start(ScaleRequest{scale->delta, true}, scale->delta > 0 ? "one more worker" : "one worker fewer");
      } else if (const auto* restart = std::get_if<TopRestart>(&action)) {
        start(RestartRequest{restart->slot}, "restarting slot " + std::to_string(restart->slot));
      } else {
        message_ = "restart cancelled";
      }
    }
    return true;
  }

  // Each action on a connection of its own: a reload's holds its reply until the reload is over,
  // and the status requests must go on meanwhile.
  void start(const Request& request, const std::string& doing) {
    auto connected = connect_control(path_, ::geteuid());
    if (!connected) {
      message_ = printable(connected.error().message);
      return;
    }
    if (!send_line(connected->get(), request)) {
      message_ = "cannot send to control socket " + printable(path_) + ": " + errno_text(errno);
      return;
    }
    actions_.push_back({request, std::move(*connected), {}});
    message_ = doing + "...";
  }

  void read_action(std::size_t index) {
    ActionCall& action = actions_[index];
    const ReadOutcome outcome = read_reply(action.fd.get(), action.buffer);
    if (!outcome.line && !outcome.ended) {
      return;
    }
    if (outcome.ended) {
      message_ = "no reply: " + *outcome.ended;
    } else if (auto reply = parse_reply(*outcome.line); !reply) {
      message_ = "no valid reply: " + printable(reply.error());
    } else if ((*reply)["ok"] != true) {
      message_ = "refused: " + printable((*reply)["error"].get<std::string>());
    } else {
      std::string text = render_reply(action.request, *reply);
      std::replace(text.begin(), text.end(), '\n', ' ');
      while (!text.empty() && text.back() == ' ') {
        text.pop_back();
      }
      message_ = text;
      next_status_ = Clock::now();  // shown at once, not an interval later
    }
    actions_.erase(actions_.begin() + static_cast<std::ptrdiff_t>(index));
  }

  Duration interval_;
  std::string path_;
  FullScreen& screen_;
  SignalReader& signals_;
  TopKeys keys_;
  Fd status_fd_;
  std::string status_buffer_;
  bool awaiting_status_ = false;
  TimePoint next_status_{};
  std::optional<Json> status_;
  std::string message_;
  std::vector<ActionCall> actions_;
};

}  // namespace

int run_top(const CliOptions& options, std::ostream& err) {
  for (const auto& [fd, name] : {std::pair{STDIN_FILENO, "stdin"}, std::pair{STDOUT_FILENO, "stdout"}}) {
    if (::isatty(fd) != 1) {
      err << "clusterd: top: " << name
          << " is not a terminal, and top draws a live view on one; for a snapshot use 'clusterd status' "
             "(or 'watch clusterd status', or 'clusterd status --json' in scripts)\n";
      return exit_usage;
    }
  }
  const FoundSocket found = find_instance_socket(options, err);
  if (!found.path) {
    err << "clusterd: " << printable(found.problem) << '\n';
    return exit_usage;
  }
  // Refused or untrusted now: a usage error like the other client subcommands', before the
  // screen is taken.
  auto connected = connect_control(*found.path, ::geteuid());
  if (!connected) {
    err << "clusterd: " << printable(connected.error().message) << '\n';
    return exit_usage;
  }
  std::string reason;
  int code = exit_quit;
  {
    const sigset_t signals = top_signals();
    const BlockedSignals blocked(signals);
    SignalReader reader(signals);
    FullScreen screen(STDIN_FILENO, STDOUT_FILENO);
    // Any reply that breaks the parser ends top with the terminal restored, as any other failure.
    try {
      code = Top(options, *found.path, std::move(*connected), screen, reader).run(reason);
    } catch (const nlohmann::json::exception& error) {
      reason = std::string("control socket ") + *found.path + ": cannot read the reply: " + error.what();
      code = exit_gone;
    }
  }
  if (!reason.empty()) {
    err << "clusterd: top: " << printable(reason) << '\n';
  }
  return code;
}

}  // namespace clusterd
