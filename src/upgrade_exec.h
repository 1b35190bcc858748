// `clusterd upgrade` across execve: the running clusterd re-executes a binary in its own process
// (so every worker stays its child) with the state in an inherited memfd; the binary that starts
// takes the state over, or, when it cannot, gives it back to the binary that handed it.
#pragma once

#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "upgrade_state.h"

namespace clusterd {

// "FD": the memfd with the state (upgrade_state.h).
inline constexpr const char* upgrade_state_variable = "CLUSTERD_UPGRADE_STATE";
// "EXEFD STATEFD": the binary that handed the state over and the state itself, for a binary that
// cannot take it to run that one again.
inline constexpr const char* upgrade_fallback_variable = "CLUSTERD_UPGRADE_FALLBACK";
// Set by a binary that gave the state back: why, for the answer to the upgrade request.
inline constexpr const char* upgrade_refused_variable = "CLUSTERD_UPGRADE_REFUSED";

// The binary an upgrade runs when none is given: the file this process was executed from, at
// its path now (after a package upgrade replaced it, the new one).
std::string installed_binary();

// Why `binary` may not replace clusterd: not an absolute path, not an executable regular file,
// or a file or directory another user could change (trusted_path.h). nullopt: it may.
std::optional<std::string> unusable_binary(const std::string& binary);

// Executes `binary` in this process with clusterd's own command line and environment, `state`
// in a memfd and every fd it names left open. Returns only when the exec failed: why, with
// everything as it was (the fds close-on-exec again).
std::string exec_upgrade(const std::string& binary, const UpgradeState& state);

// In a binary that starts: the state handed over, read and cleared from the environment; nullopt
// for an ordinary start. The error says why it cannot be read: give_upgrade_back then.
std::optional<tl::expected<UpgradeState, std::string>> take_upgrade_state();

// The state cannot be taken over: the binary that handed it runs again with its state, told
// `why`. Returns only when that failed (then why).
std::string give_upgrade_back(const std::string& why);

// Every fd `state` names is made close-on-exec again, so no worker spawned from now on inherits it.
void keep_from_workers(const UpgradeState& state);

// In a binary that runs again after a give-back: why the new one refused (cleared from the
// environment); nullopt otherwise.
std::optional<std::string> take_upgrade_refusal();

}  // namespace clusterd
