// The listening control socket (interface §4.4): bound once at start with mode 0600, a live
// instance at its path refused, a stale file replaced, its file removed on exit if still ours.
#pragma once

#include <sys/types.h>

#include <string>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

// The listening control socket, bound at start. Move-only. Its file is removed on destruction
// if the path still names the socket bound here (same st_dev/st_ino): a newer instance that
// replaced a stale file keeps its own.
class ControlSocket {
 public:
  // Binds and listens at `path` with mode 0600 from the start (the umask is narrowed around
  // bind(), so there is no moment the file is more open). A socket file at `path` that accepts a
  // connection belongs to a live instance: the error is `another clusterd is running (control
  // socket PATH answers)`. One that refuses it was left by an instance that was killed, and is
  // replaced. Any other file there is an error. Errors are one line for stderr (then exit 2).
  static tl::expected<ControlSocket, std::string> open(const std::string& path);
  // The listening socket `fd` an earlier clusterd of this process bound at `path` (`clusterd
  // upgrade`); its file is ours if `path` still names that socket.
  static ControlSocket adopt(Fd fd, const std::string& path);

  ControlSocket(ControlSocket&& other) noexcept;
  ControlSocket& operator=(ControlSocket&& other) noexcept;
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  ~ControlSocket();

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // Removes the file (if still ours) and closes the socket now rather than on destruction.
  void close() noexcept;

 private:
  ControlSocket(Fd fd, std::string path, dev_t dev, ino_t ino)
      : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {}
  void remove_file() noexcept;

  Fd fd_;
  std::string path_;  // empty once moved from
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace clusterd
