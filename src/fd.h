// Fd owns one file descriptor; retry_on_eintr keeps the EINTR rule in one place.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace clusterd {

// Owns one file descriptor; move-only; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the old fd once. close() is not retried: Linux releases the fd even when it
  // reports EINTR (close(2)), so a retry could close an fd another part of us just opened.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0 && fd_ != fd) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Calls `call` until it does not fail with EINTR; returns its last result.
template <typename Call>
auto retry_on_eintr(Call&& call) {
  for (;;) {
    auto result = call();
    if (!(result == -1 && errno == EINTR)) {
      return result;
    }
  }
}

}  // namespace clusterd
