// How a worker process ended: its exit code, the signal that killed it, or why it never started.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace clusterd {

struct ExitCode {
  int code = 0;
  bool operator==(const ExitCode&) const = default;
};
struct KilledBySignal {
  int signal = 0;
  bool operator==(const KilledBySignal&) const = default;
};
// The worker program could not be started: `step` names what failed, in the child ("exec",
// "chdir", "setuid", …) or in clusterd ("fork", "notify socket", "per-slot socket", …), `error`
// is the errno, and `detail` (may be empty) says what the step was about: a path, say.
struct StartFailure {
  StartFailure() = default;
  StartFailure(std::string step_name, int errno_value, std::string about = {})
      : step(std::move(step_name)), error(errno_value), detail(std::move(about)) {}
  std::string step;
  int error = 0;
  std::string detail;
  bool operator==(const StartFailure&) const = default;
};

using WorkerExit = std::variant<ExitCode, KilledBySignal, StartFailure>;

inline bool is_clean_exit(const WorkerExit& exit) {
  const auto* code = std::get_if<ExitCode>(&exit);
  return code != nullptr && code->code == 0;
}

}  // namespace clusterd
