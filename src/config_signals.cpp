// Signal names as the config writes them: "TERM", "SIGTERM" or "15" ⇄ SIGTERM.
#include "config.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <csignal>
#include <string>
#include <string_view>

namespace clusterd {
namespace {

struct SignalName {
  std::string_view name;
  int number;
};

constexpr std::array<SignalName, 31> signal_names{{
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
}};

// Linux numbers signals 1-64 (_NSIG - 1); real-time ones have no fixed name, only a number.
constexpr int max_signal = 64;

}  // namespace

std::optional<int> parse_signal(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int number = 0;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    if (result.ec == std::errc{} && number >= 1 && number <= max_signal) {
      return number;
    }
    return std::nullopt;
  }
  // Names are matched without regard to case and with or without "SIG", as kill(1) does.
  std::string upper;
  for (const char c : text) {
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  std::string_view name = upper;
  if (name.starts_with("SIG")) {
    name.remove_prefix(3);
  }
  for (const auto& known : signal_names) {
    if (known.name == name) {
      return known.number;
    }
  }
  return std::nullopt;
}

std::string signal_name(int signal) {
  for (const auto& known : signal_names) {
    if (known.number == signal) {
      return std::string(known.name);
    }
  }
  return std::to_string(signal);
}

}  // namespace clusterd
