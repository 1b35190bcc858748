// Writes workers' prefixed lines to clusterd's stdout or stderr without blocking, through a
// bounded buffer.
#include "output_sink.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "errno_text.h"

namespace clusterd {
namespace {

std::string name_of(int destination) {
  switch (destination) {
    case STDOUT_FILENO: return "stdout";
    case STDERR_FILENO: return "stderr";
    default: return "fd " + std::to_string(destination);
  }
}

// Emptied after a burst, a buffer this large is given back: an idle clusterd keeps its RSS small.
constexpr std::size_t keep_allocated = 64 * 1024;

}  // namespace

OutputSink::OutputSink(int destination, std::size_t capacity, bool reopen)
    : name_(name_of(destination)), capacity_(capacity) {
  struct stat info {};
  if (::fstat(destination, &info) != 0) {
    fail(errno);
    return;
  }
  if (S_ISSOCK(info.st_mode)) {
    method_ = Method::socket;
  } else if (S_ISREG(info.st_mode) || S_ISBLK(info.st_mode)) {
    method_ = Method::file;
  } else {
    if (reopen) {
      const std::string path = "/proc/self/fd/" + std::to_string(destination);
      fd_.reset(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
      if (fd_) {
        method_ = Method::reopened;
        return;
      }
      spdlog::info("cannot reopen {} to copy workers' output without blocking ({}): each write waits for "
                   "poll() to say it takes more",
                   name_, errno_text(errno));
    }
    method_ = Method::polled;
  }
  // Our own fd for the shared description: clusterd's fd 1 or 2 is never closed or replaced
  // under us, and this one is close-on-exec, so no worker inherits it.
  fd_.reset(::fcntl(destination, F_DUPFD_CLOEXEC, 3));
  if (!fd_) {
    fail(errno);
  }
}

OutputSink::OutputSink(Fd file, std::string name, std::size_t capacity)
    : name_(std::move(name)), fd_(std::move(file)), method_(Method::file), capacity_(capacity) {}

void OutputSink::replace_file(Fd file) {
  fd_ = std::move(file);
  method_ = Method::file;
  failed_ = false;
  written_ = 0;
}

void OutputSink::push(std::string_view lines) {
  if (failed_) {
    return;
  }
  // Nothing waiting: write straight from the caller's text, and keep only what did not fit.
  if (empty()) {
    lines.remove_prefix(write_now(lines));
  }
  if (!failed_) {
    buffer_.append(lines);
  }
}

void OutputSink::write_some() {
  if (failed_ || empty()) {
    return;
  }
  const std::size_t written = write_now(std::string_view(buffer_).substr(head_));
  if (failed_) {
    return;  // fail() dropped the buffer
  }
  head_ += written;
  if (empty()) {
    if (buffer_.capacity() > keep_allocated) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    head_ = 0;
  } else if (head_ > buffered()) {
    buffer_.erase(0, head_);  // the written part outweighs the rest: worth moving it once
    head_ = 0;
  }
}

std::size_t OutputSink::write_now(std::string_view data) {
  std::size_t written = 0;
  while (written < data.size() && !failed_) {
    const ssize_t result = write_once(data.data() + written, data.size() - written);
    if (result > 0) {
      written += static_cast<std::size_t>(result);
      written_ += static_cast<std::uint64_t>(result);
      if (std::exchange(dropping_, false)) {
        spdlog::info("writing workers' output to {} again", name_);
      }
    } else if (result < 0 && errno == EINTR) {
      continue;
    } else if (result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;  // full for now: the rest waits in the buffer for EPOLLOUT
    } else if (result < 0 && method_ == Method::file && (errno == ENOSPC || errno == EDQUOT)) {
      // A full disk may get room again (logrotate, an operator): these lines are lost, the
      // next ones are tried again.
      if (!std::exchange(dropping_, true)) {
        spdlog::warn("cannot write workers' output to {}: {}; dropping lines until there is room", name_,
                     errno_text(errno));
      }
      return data.size();
    } else if (result < 0) {
      fail(errno);
    } else {
      break;  // wrote nothing and said no error: try again when it is writable
    }
  }
  return written;
}

ssize_t OutputSink::write_once(const char* data, std::size_t size) {
  switch (method_) {
    case Method::socket:
      // MSG_NOSIGNAL as well: SIGPIPE is ignored today, and a closed journal stream must not
      // become fatal should that ever change.
      return ::send(fd_.get(), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    case Method::polled: {
      pollfd writable{fd_.get(), POLLOUT, 0};
      if (::poll(&writable, 1, 0) <= 0) {
        errno = EAGAIN;
        return -1;
      }
      // POLLERR or POLLHUP: the write reports the reason (EPIPE).
      return ::write(fd_.get(), data, std::min<std::size_t>(size, PIPE_BUF));
    }
    case Method::reopened:
    case Method::file:
      break;
  }
  return ::write(fd_.get(), data, size);
}

void OutputSink::fail(int error) {
  // The fd stays open until the sink goes: whoever registered it with epoll removes it by number.
  std::string().swap(buffer_);
  head_ = 0;
  if (!std::exchange(failed_, true)) {
    spdlog::warn("cannot write workers' output to {}: {}; dropping it from now on", name_, errno_text(error));
  }
}

}  // namespace clusterd
