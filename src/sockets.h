// Opens the listening sockets clusterd holds for its whole life: TCP v4/v6 and unix, bound once
// before any worker starts, or adopted from systemd (socket activation); checks that a worker
// has not shut one down.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "fd.h"

namespace clusterd {

// A listener that cannot be opened at start: exit 2 with this message
// (`bind 0.0.0.0:80: Permission denied`, `unix:/run/app.sock: address in use`).
class ListenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One open listening socket. Move-only. A unix socket's file is removed on destruction if the
// path still names the socket clusterd bound (same st_dev/st_ino).
class Listener {
 public:
  Listener(std::string name, std::string bound_address, Fd fd, int backlog, std::string unix_path);
  Listener(Listener&& other) noexcept = default;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  const std::string& name() const { return name_; }
  // What was bound, with the kernel's port for port 0: "127.0.0.1:43121", "unix:/run/a.sock".
  const std::string& bound_address() const { return bound_address_; }
  int fd() const { return fd_.get(); }
  int backlog() const { return backlog_; }  // the effective one, capped by net.core.somaxconn

  // SO_ACCEPTCONN is off when a worker called shutdown() on its inherited copy. Returns true if
  // the socket had stopped listening and listen() was called again.
  bool ensure_listening();

 private:
  void remove_unix_file() noexcept;

  std::string name_;
  std::string bound_address_;
  Fd fd_;
  int backlog_ = 0;
  std::string unix_path_;  // empty: not a unix socket, or not ours to remove
  dev_t unix_dev_ = 0;
  ino_t unix_ino_ = 0;
};

// Opens every listener in order; throws ListenError naming the address on the first failure
// (the ones already opened are closed again).
std::vector<Listener> open_listeners(const std::vector<ListenerConfig>& listeners);

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
// listener takes, a listener without one. Returns the listeners in configuration order.
std::vector<Listener> adopt_listeners(std::vector<InheritedSocket> inherited,
                                      const std::vector<ListenerConfig>& listeners);

}  // namespace clusterd
