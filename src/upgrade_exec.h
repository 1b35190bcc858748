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

// `binary` resolved (symlinks followed) when it may replace clusterd: an absolute path to an
// executable regular file that only root or clusterd's user can change, on a path whose every
// directory only they can write (trusted_path.h), so nobody can swap it before the exec. The
// error says why not.
tl::expected<std::string, std::string> usable_binary(const std::string& binary);

// Asks `binary --upgrade-formats` which state formats it reads, waiting at most probe_limit: the
// error says why it cannot take this clusterd's state (a program that is no clusterd, a clusterd
// from before `upgrade`, a format it does not read). nullopt: it can.
inline constexpr int probe_limit_ms = 2000;
std::optional<std::string> probe_binary(const std::string& binary);
// What `clusterd --upgrade-formats` prints: "clusterd upgrade formats 1".
std::string upgrade_formats_line();

// Executes `binary` in this process with clusterd's own command line and environment, `state`
// in a memfd and every fd it names left open. Returns only when the exec failed: why, with
// everything as it was (the fds close-on-exec again).
std::string exec_upgrade(const std::string& binary, const UpgradeState& state);

// What a binary started by an upgrade needs to give the state back: the binary that handed it
// (an fd of its file, so also when a package replaced the file) and the state's memfd; `refused`:
// this binary is that one, run again because the new one refused (then why).
struct UpgradeFallback {
  int exe_fd = -1;
  int state_fd = -1;
  std::optional<std::string> refused;
};
struct TakenUpgrade {
  tl::expected<UpgradeState, std::string> state;
  UpgradeFallback fallback;
};

// In a binary that starts: the state handed over and the fallback, read, and their variables
// cleared from the environment (no worker sees them); nullopt for an ordinary start. An error
// state says why it cannot be read: give_upgrade_back then.
std::optional<TakenUpgrade> take_upgrade();

// The state cannot be taken over: the binary that handed it runs again with its state, told
// `why`. Returns only when that failed, or when this binary is the one given the state back
// already (a second refusal would loop): then why.
std::string give_upgrade_back(const UpgradeFallback& fallback, const std::string& why);

// The state was taken over: the fallback's fds are closed.
void close_fallback(const UpgradeFallback& fallback);

// Every fd `state` names is made close-on-exec again, so no worker spawned from now on inherits it.
void keep_from_workers(const UpgradeState& state);

}  // namespace clusterd
