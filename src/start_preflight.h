// What a start would fail on that only the running system can tell, found for `clusterd check`
// without changing the system: a listening address another socket holds (or a port clusterd may
// not bind), a unix socket directory that is missing or untrusted, a socket file in the way, and
// a program the kernel cannot execute (not an executable format, another architecture, a "#!"
// interpreter that does not exist).
//
// Not run by a start: there the bind itself fails with the same reason (exit 2), and a program
// that cannot be executed is reported by its workers' exec. No socket is left open: every probe
// is closed before the function returns, a TCP probe is bound but never listens (so it is never
// handed a connection), and no unix socket file is created.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace clusterd {

// Where each checked value came from, for the diagnostics' origin: `command` for PROGRAM
// ("command line" or the config file), `file` for listeners of the file, and `listen_flags`, the
// `--listen` values that replaced them (listener i is "--listen " + listen_flags[i]).
struct PreflightSources {
  std::string command;
  std::string file;
  std::vector<std::string> listen_flags;
};

struct Preflight {
  Diagnostics errors;               // each a start would fail on: `check` exits 2
  std::vector<std::string> notes;   // worth saying, not wrong: an address the running instance holds
};

// Checks `config` as validated, with `executable` the program's absolute path (find_program).
// `control_path`: the instance's control socket (nullopt: control.socket = "none"). An address
// in use is no error when the instance answering there reports a listener bound to exactly it:
// checking a file before reloading it is what `check` is for, and a reload keeps or re-binds
// such a socket itself. Any other holder is an error, even while the instance runs.
// Unix socket files are probed with a connect() as a start probes them, except those the
// running instance reports. Under systemd (INVOCATION_ID set: ExecStartPre= of a unit) a
// listener's problem is a note, not an error: the start that follows may be socket-activated,
// and then binds nothing. Blocks at most a few seconds on an instance that does not answer.
Preflight preflight_start(const Config& config, const std::string& executable, const PreflightSources& sources,
                          const std::optional<std::string>& control_path);

// The message for a listener whose probe bind() of `shown` (port `port`) failed with `error`:
// what a start would fail on, and the fix. `unprivileged_port_start`: the lowest port any user
// may bind (net.ipv4.ip_unprivileged_port_start).
std::string bind_problem(const std::string& shown, const std::string& host, std::uint16_t port, int error,
                         int unprivileged_port_start);

}  // namespace clusterd
