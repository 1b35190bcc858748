// How a worker process ended: its exit code, the signal that killed it, or why exec failed.
#pragma once

#include <string>
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
// The child could not become the worker program: `step` names what failed ("exec", "chdir",
// "setuid", …) and `error` is the errno.
struct ExecFailure {
  std::string step;
  int error = 0;
  bool operator==(const ExecFailure&) const = default;
};

using WorkerExit = std::variant<ExitCode, KilledBySignal, ExecFailure>;

inline bool is_clean_exit(const WorkerExit& exit) {
  const auto* code = std::get_if<ExitCode>(&exit);
  return code != nullptr && code->code == 0;
}

}  // namespace clusterd
