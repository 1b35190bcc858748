// The client subcommands `status`, `reload`, `scale N` and `stop`: find the instance's control
// socket (interface §4.4), send one request, print the reply for people or as the raw JSON line
// (--json), and say how it went in the exit status.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "cli.h"
#include "control_protocol.h"
#include "fd.h"

namespace clusterd {

// The socket is `--control PATH`; else the one `-c FILE` names (its control.socket, or NAME.sock of
// its name, or of --name, in the default directories); else NAME.sock of `--name` in the default
// directories; else the only *.sock there (several: the only one that answers). Only trusted
// default directories are searched (find_control_sockets), and any socket is asked only through
// connect_control (control_connect.h): directories no other user may write, a server of root or
// our own uid. Without `--json` an `ok: true` reply is printed on `out` for people and an
// `ok: false` one as `clusterd: ERROR` on `err`; with it, the reply as one line of JSON. Either
// way with terminal controls and bidirectional marks escaped (printable.h). `stop` then waits
// until clusterd closes the connection, that is, until it exited. While `reload` and `stop` wait,
// and only when stderr is a terminal and without --json, their progress (control_progress.h) is
// redrawn in place on `err` from `status` asked on a second connection, and cleared at the end.
// Returns 0 for `ok: true`, 1 for
// `ok: false` (or no valid reply, whatever it holds), 2 when no instance was found, its socket was
// refused, or the request cannot be sent (the message names every path tried, or the reason).
int run_client(const CliOptions& options, std::ostream& out, std::ostream& err);

// Far above any real reply (4096 workers with long STATUS= texts are a few MiB): a server that
// sends more is not a clusterd, and must not make a client use up the memory.
inline constexpr std::size_t max_reply_line = 64u << 20;

// The control socket a client subcommand asks, found as run_client finds it (above): its path,
// or why there is none, naming every path tried. Warnings (an untrusted directory passed over,
// problems in the -c file) are written to `err`.
struct FoundSocket {
  std::optional<std::string> path;
  std::string problem;
};
FoundSocket find_instance_socket(const CliOptions& options, std::ostream& err);

// Connects to the control socket `path` (connect_control, as every client command does) and
// sends `request`'s line; the error is a sentence for people.
tl::expected<Fd, std::string> send_request(const std::string& path, const Request& request);

// Reads from `fd` up to and without the first '\n', keeping what follows in `buffer`. nullopt:
// the connection ended (or a receive timeout passed) first, or the line grew beyond
// max_reply_line; `error` says which.
std::optional<std::string> read_reply_line(int fd, std::string& buffer, std::string& error);

// How long a read on `fd` may wait before it fails with EAGAIN; 0: without limit.
void set_receive_timeout(int fd, int seconds);

// `clusterd logs` (logs_client.cpp): the recent lines, then with -f every new one.
int show_logs(const CliOptions& options, const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace clusterd
