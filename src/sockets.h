// Opens the listening sockets clusterd holds for its whole life: TCP v4/v6 and unix, bound once
// before any worker starts; checks that a worker has not shut one down.
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

}  // namespace clusterd
