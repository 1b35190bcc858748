// Accepts connections on a listening socket, pausing while accept() runs out of fds.
#include "acceptor.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "errno_text.h"

namespace clusterd {

Acceptor::Acceptor(EventLoop& loop, int fd, std::string what, std::function<void()> on_connections)
    : loop_(loop), fd_(fd), what_(std::move(what)), on_connections_(std::move(on_connections)) {
  resume();
}

void Acceptor::resume() {
  if (watching_ || stopped_) {
    return;
  }
  try {
    loop_.add(fd_, EPOLLIN, [this](std::uint32_t) { on_connections_(); });
    watching_ = true;
    retry_at_.reset();
  } catch (const std::system_error& error) {
    // Nothing may throw out of the running loop: try again a little later.
    spdlog::warn("{} cannot accept: {}; pausing", what_, error.what());
    retry_at_ = Clock::now() + pause_length;
  }
}

void Acceptor::pause() {
  if (watching_) {
    loop_.remove(fd_);
    watching_ = false;
  }
}

void Acceptor::accept_failed(int error) {
  spdlog::warn("{} cannot accept: {}; pausing", what_, errno_text(error));
  pause();
  retry_at_ = Clock::now() + pause_length;
}

std::optional<Fd> Acceptor::accept() {
  for (;;) {
    const int accepted = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (accepted >= 0) {
      return Fd(accepted);
    }
    if (errno == EINTR || errno == ECONNABORTED) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      accept_failed(errno);  // out of fds or memory
    }
    return std::nullopt;
  }
}

void Acceptor::connection_closed() {
  if (retry_at_ && !watching_) {
    resume();  // accept() ran out of fds: this close freed one
  }
}

void Acceptor::on_deadline(TimePoint now) {
  if (retry_at_ && *retry_at_ <= now) {
    retry_at_.reset();
    resume();
  }
}

void Acceptor::stop() {
  pause();
  stopped_ = true;
  retry_at_.reset();
}

}  // namespace clusterd
