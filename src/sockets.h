// Opens the listening sockets clusterd holds for its whole life (TCP v4/v6 and unix, bound once
// before any worker starts; the SO_REUSEPORT sockets of per-slot listeners) and makes them listen
// again when a worker has shut one down.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "address.h"
#include "config.h"
#include "fd.h"

namespace clusterd {

// A listener that cannot be opened at start: exit 2 with this message
// (`bind 0.0.0.0:80: Permission denied`, `unix:/run/app.sock: address in use`). error(): the
// errno of the failed call, 0 when none failed (an address that is not numeric).
class ListenError : public std::runtime_error {
 public:
  explicit ListenError(const std::string& message, int error = 0) : std::runtime_error(message), error_(error) {}
  int error() const noexcept { return error_; }

 private:
  int error_ = 0;
};

// One open listening socket. Move-only. A unix socket's file is removed on destruction if the
// path still names the socket clusterd bound (same st_dev/st_ino).
class Listener {
 public:
  // `unix_path` and `unix_mode`: the socket file clusterd created, removed on destruction and
  // created again with that mode if a worker shuts the socket down. Empty for TCP, and for a
  // socket systemd passed in (its file belongs to the socket unit).
  Listener(std::string name, std::string bound_address, Fd fd, int backlog, std::string unix_path,
           mode_t unix_mode = 0);
  Listener(Listener&& other) noexcept = default;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  const std::string& name() const { return name_; }
  // What was bound, with the kernel's port for port 0: "127.0.0.1:43121", "unix:/run/a.sock".
  // It never changes, not even when the socket is replaced (ensure_listening).
  const std::string& bound_address() const { return bound_address_; }
  // May change after ensure_listening() returned true: read it at each spawn.
  int fd() const { return fd_.get(); }
  int backlog() const { return backlog_; }
  const std::string& unix_path() const { return unix_path_; }  // the file clusterd made; empty otherwise
  mode_t unix_mode() const { return unix_mode_; }  // the effective one, capped by net.core.somaxconn

  // For a unix socket whose file clusterd created: why its directory is not (or no longer) one
  // clusterd may create, replace or remove a file in, because a user other than root or
  // clusterd's own could write it or a directory above it (trusted_path.h); the text names the
  // directory and the chmod/chown that fixes it. nullopt when it is trusted, and for TCP.
  std::optional<std::string> unix_directory_problem() const;

  // Notices a worker's shutdown() on its inherited copy, which stops the socket for every
  // holder (interface §7): SO_ACCEPTCONN off (TCP), or POLLHUP/POLLRDHUP (a unix socket keeps
  // SO_ACCEPTCONN). A TCP socket is bound again to bound_address() (same port, also for port
  // 0) and listens again. A unix socket cannot, so a new one takes its path (same mode) and
  // fd(); the stopped one is closed here, workers that hold it keep their copy. It is not
  // replaced while unix_directory_problem() says why not: that is logged, and the listener
  // stays stopped until the directory is fixed and a worker exits again. Returns true
  // when the listener serves again; failures are logged as errors naming the listener and its
  // address, and false is returned (call again after the next worker exit). Never throws.
  bool ensure_listening();

 private:
  void remove_unix_file() noexcept;
  bool stopped_by_a_worker() const;
  bool listen_again_at_its_address();
  bool replace_unix_socket();

  std::string name_;
  std::string bound_address_;
  Fd fd_;
  int backlog_ = 0;
  std::string unix_path_;  // empty: not a unix socket, or not ours to remove
  mode_t unix_mode_ = 0;
  dev_t unix_dev_ = 0;
  ino_t unix_ino_ = 0;
};

// Opens every listener in order; throws ListenError naming the address on the first failure
// (the ones already opened are closed again). A unix socket's directory must be trusted
// (Listener::unix_directory_problem) before anything is done at its path; its file is born with
// the configured mode (a umask around bind()) and is never chmod()ed. A per-slot listener (reuseport = "per-slot") gets
// its first socket here, slot 0's, with SO_REUSEPORT set before bind(); open_slot_socket binds
// the others.
std::vector<Listener> open_listeners(const std::vector<ListenerConfig>& listeners);

// One more socket of a per-slot listener's SO_REUSEPORT group: SO_REUSEADDR and SO_REUSEPORT,
// bound to `group_address` (bound_address() of the group's first socket, so with the kernel's
// port when the configuration says port 0) and listening with the configured backlog. Throws
// ListenError naming the listener and the address.
Listener open_slot_socket(const ListenerConfig& config, const std::string& group_address);

}  // namespace clusterd
