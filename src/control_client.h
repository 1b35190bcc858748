// The client subcommands `status`, `reload`, `scale N` and `stop`: find the instance's control
// socket (interface §4.4), send one request, print the reply for people or as the raw JSON line
// (--json), and say how it went in the exit status.
#pragma once

#include <iosfwd>

#include "cli.h"

namespace clusterd {

// The socket is `--control PATH`; else the one `-c FILE` names (its control.socket, or NAME.sock of
// its name, or of --name, in the default directories); else NAME.sock of `--name` in the default
// directories; else the only *.sock there (several: the only one that answers). Without `--json`
// an `ok: true` reply is printed on `out` for people and an `ok: false` one as `clusterd: ERROR` on
// `err`. `stop` then waits until clusterd closes the connection, that is, until it exited.
// Returns 0 for `ok: true`, 1 for `ok: false` (or no valid reply), 2 when no instance was found
// or the request cannot be sent (the message names every path tried).
int run_client(const CliOptions& options, std::ostream& out, std::ostream& err);

}  // namespace clusterd
