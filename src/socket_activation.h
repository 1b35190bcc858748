// Takes the listening sockets systemd passed to clusterd (socket activation, protocols §1.3) and
// turns them into Listeners for the configured [[listen]] entries.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "fd.h"
#include "sockets.h"

namespace clusterd {

// A socket systemd passed to clusterd (protocols §1.3).
struct InheritedSocket {
  Fd fd;             // close-on-exec, above the range 3..3+n-1; empty if that fd was not open
  std::string name;  // its LISTEN_FDNAMES entry, or "" without one
};

// When LISTEN_PID is our pid: takes fds 3..3+LISTEN_FDS-1 in order, moves each to a fresh
// close-on-exec fd >= 3+n (F_DUPFD_CLOEXEC) and closes the original, so fds 3.. are free and
// nothing leaks into workers; then unsets LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES and
// LISTEN_PIDFDID. A LISTEN_FDNAMES with the wrong count is ignored with a warning (names ""),
// a LISTEN_PIDFDID that is not our pidfd's id (where the kernel can tell) means the fds were
// meant for another process: nothing is taken. Otherwise returns nothing and leaves the
// variables to spawn_plan, which removes them from workers' environments. Call it at start,
// before anything else opens fds. Throws std::system_error if the fds cannot be moved (EMFILE).
std::vector<InheritedSocket> take_inherited_sockets();

// Turns inherited sockets into Listeners (interface §5, protocols §1.3). Each configured
// listener takes the inherited socket of the same name, else one bound to its address
// (getsockname; names are matched for every listener before addresses are); with no listeners
// configured, all of them in order, named by their LISTEN_FDNAMES entry, or fd3, fd4, … (by
// position) when that is empty or "unknown". Every socket must be SOCK_STREAM and listening
// (SO_ACCEPTCONN): it is never bound or listened on again here and its backlog is not changed
// (backlog() reports the kernel's value for TCP, systemd's default for unix sockets). Adopted
// unix socket files are never removed. Throws one ListenError listing every problem: a socket
// of Accept=yes (name "connection"), a wrong type, one not listening, an inherited socket no
// listener takes, a listener without one, a listener with reuseport = "per-slot" (clusterd must
// bind those itself). Returns the listeners in configuration order.
std::vector<Listener> adopt_listeners(std::vector<InheritedSocket> inherited,
                                      const std::vector<ListenerConfig>& listeners);

// systemd's fd store (daemon.h: keep_listeners_in_systemd): the sockets clusterd bound itself
// are kept there as "clusterd-stored.NAME", and come back among LISTEN_FDS after systemd
// restarted a clusterd that was killed. Never socket activation's: a socket unit's own sockets
// are not stored.
inline constexpr std::string_view stored_fd_prefix = "clusterd-stored.";

// The stored sockets, taken out of `inherited`.
std::vector<InheritedSocket> take_stored_sockets(std::vector<InheritedSocket>& inherited);

// The stored socket of `config` (by name), taken out of `stored`, as its Listener: only while it
// is still a listening stream socket bound to the configured address, and `config` is one
// shared socket; nullopt otherwise (clusterd then binds the listener anew).
std::optional<Listener> reuse_stored_socket(std::vector<InheritedSocket>& stored, const ListenerConfig& config);

}  // namespace clusterd
