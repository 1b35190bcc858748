// `clusterd top`: a live view of one instance in the terminal, refreshed from `status` every
// interval, with keys that reload, scale and restart (top_keys.h).
#pragma once

#include <iosfwd>

#include "cli.h"

namespace clusterd {

// Finds the instance as the other client subcommands do (find_instance_socket), takes the
// terminal (top_terminal.h) and runs one poll loop over the keys on stdin, a signalfd (SIGWINCH
// redraws at the new size; SIGINT, SIGTERM, SIGHUP and SIGQUIT quit), the status connection and
// one connection per action in flight. A status request is sent every `options.interval`, the
// next one only after the previous reply, so a slow clusterd is never asked twice at once. A
// reload's reply comes when it is over; meanwhile the view goes on refreshing. What each action
// did is shown on the status line.
//
// Returns 0 when the user quits (q, Ctrl-C, a signal, the terminal closed); 1 when clusterd went
// away (the status connection closed, or could not be opened again) or gave no valid status
// reply: the reason is written to `err` after the terminal is restored; 2 when stdin or stdout is
// not a terminal, or no instance was found (as run_client).
int run_top(const CliOptions& options, std::ostream& err);

}  // namespace clusterd
