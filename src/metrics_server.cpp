// The metrics endpoint's listener and HTTP connections inside the EventLoop.
#include "metrics_server.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "errno_text.h"
#include "http_request.h"
#include "metrics_http.h"

namespace clusterd {

Listener MetricsServer::open(const Address& address) {
  ListenerConfig config;
  config.name = "metrics";
  config.address = address;
  // A scraper connects once per interval: a short queue is plenty, and bounds what a flood of
  // connects can leave waiting.
  config.backlog = 64;
  config.ipv6_only = address.family == AddressFamily::ipv6;
  auto opened = open_listeners({config});
  // Workers' listeners stay blocking, as servers expect them; this one is clusterd's alone, and a
  // blocking accept() would stop the loop once the waiting connections are taken.
  const int fd = opened.front().fd();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw ListenError("metrics endpoint " + opened.front().bound_address() + ": cannot make it non-blocking: " +
                          errno_text(errno),
                      errno);
  }
  return std::move(opened.front());
}

MetricsServer::MetricsServer(Address configured, Listener listener, EventLoop& loop, Render render)
    : configured_(std::move(configured)),
      listener_(std::move(listener)),
      loop_(loop),
      render_(std::move(render)),
      accept_(loop_, listener_.fd(), "metrics endpoint", [this] { on_listener(); }) {}

MetricsServer::~MetricsServer() {
  accept_.stop();
  for (auto& [id, connection] : connections_) {
    loop_.remove(connection.fd.get());
  }
}

void MetricsServer::on_listener() {
  for (std::size_t round = 0; round < accepts_per_round; ++round) {
    auto fd = accept_.accept();
    if (!fd) {
      return;
    }
    if (connections_.size() >= max_connections) {
      make_room();
      if (connections_.size() >= max_connections) {
        spdlog::debug("metrics connection refused: {} connections are being answered", max_connections);
        continue;  // every one is being answered: this one is closed unanswered
      }
    }
    const std::uint64_t id = next_connection_++;
    Connection& connection = connections_[id];
    connection.fd = std::move(*fd);
    connection.accepted = Clock::now();
    connection.deadline = connection.accepted + request_limit;
    // A client usually sends its request right after connecting: take it now, rather than one
    // epoll round later.
    read_request(id);
  }
}

// Closes the oldest connection that is not being answered; none when every one is.
void MetricsServer::make_room() {
  auto oldest = connections_.end();
  for (auto entry = connections_.begin(); entry != connections_.end(); ++entry) {
    if (entry->second.phase != Phase::reply &&
        (oldest == connections_.end() || entry->second.accepted < oldest->second.accepted)) {
      oldest = entry;
    }
  }
  if (oldest != connections_.end()) {
    spdlog::debug("metrics connection closed to make room: at most {} are open", max_connections);
    close(oldest->first);
  }
}

void MetricsServer::on_connection(std::uint64_t id, std::uint32_t events) {
  const auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;
  }
  switch (found->second.phase) {
    case Phase::request:
      read_request(id);
      return;
    case Phase::reply:
      if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
        close(id);  // the client is gone: nobody reads the rest
      } else {
        flush(id);
      }
      return;
    case Phase::lingering:
      drain(id);
      return;
  }
}

void MetricsServer::read_request(std::uint64_t id) {
  Connection& connection = connections_.at(id);
  std::array<char, 4096> buffer{};
  for (;;) {
    // Never more than one byte past the limit: that byte is enough to refuse the head.
    const std::size_t room = std::min(buffer.size(), max_head + 1 - connection.in.size());
    const ssize_t got = retry_on_eintr([&] { return ::recv(connection.fd.get(), buffer.data(), room, 0); });
    if (got > 0) {
      connection.in.append(buffer.data(), static_cast<std::size_t>(got));
      if (connection.in.size() <= max_head) {
        continue;
      }
    } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      close(id);  // the client left, or reset, before its request was whole
      return;
    }
    break;
  }
  auto result = parse_http_request_head(connection.in, max_head);
  if (std::holds_alternative<HttpIncomplete>(result)) {
    watch(id, EPOLLIN);
    return;
  }
  if (const auto* rejection = std::get_if<HttpRejection>(&result)) {
    spdlog::debug("metrics request refused status={}: {}", rejection->status, rejection->reason);
    start_reply(id, http_error_reply(rejection->status, rejection->reason));
    return;
  }
  start_reply(id, metrics_http_reply(std::get<HttpRequestHead>(result), render_));
}

void MetricsServer::start_reply(std::uint64_t id, std::string reply) {
  Connection& connection = connections_.at(id);
  connection.phase = Phase::reply;
  connection.in.clear();
  connection.in.shrink_to_fit();
  connection.out = std::move(reply);
  connection.deadline = Clock::now() + reply_limit;
  flush(id);
}

void MetricsServer::flush(std::uint64_t id) {
  Connection& connection = connections_.at(id);
  std::size_t written = 0;
  while (written < connection.out.size()) {
    const ssize_t sent = retry_on_eintr([&] {
      return ::send(connection.fd.get(), connection.out.data() + written, connection.out.size() - written,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    });
    if (sent > 0) {
      written += static_cast<std::size_t>(sent);
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      connection.out.erase(0, written);
      watch(id, EPOLLOUT);  // the rest when there is room
      return;
    }
    close(id);  // EPIPE, ECONNRESET: the client is gone
    return;
  }
  // The whole reply is in the kernel's hands. Closing now, with the client's unread bytes still
  // in our socket, would send a reset that can destroy the reply in the client's buffer
  // (RFC 9112 §9.6): shut our side down and wait a little for the client's close instead.
  connection.out.clear();
  connection.out.shrink_to_fit();
  (void)::shutdown(connection.fd.get(), SHUT_WR);
  connection.phase = Phase::lingering;
  connection.deadline = Clock::now() + linger_limit;
  drain(id);
}

void MetricsServer::drain(std::uint64_t id) {
  Connection& connection = connections_.at(id);
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t got = retry_on_eintr([&] { return ::recv(connection.fd.get(), buffer.data(), buffer.size(), 0); });
    if (got > 0) {
      continue;  // dropped: one request per connection
    }
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch(id, EPOLLIN);
      return;
    }
    close(id);  // the client's close (or reset): done
    return;
  }
}

void MetricsServer::watch(std::uint64_t id, std::uint32_t events) {
  Connection& connection = connections_.at(id);
  if (connection.watched == events) {
    return;
  }
  try {
    if (connection.watched == 0) {
      loop_.add(connection.fd.get(), events, [this, id](std::uint32_t ready) { on_connection(id, ready); });
    } else {
      loop_.modify(connection.fd.get(), events);
    }
    connection.watched = events;
  } catch (const std::system_error& error) {
    spdlog::warn("metrics connection dropped: {}", error.what());
    close(id);
  }
}

void MetricsServer::close(std::uint64_t id) {
  const auto found = connections_.find(id);
  if (found == connections_.end()) {
    return;
  }
  // Removing an fd the loop does not know is a no-op, so a connection never watched needs no check.
  loop_.remove(found->second.fd.get());
  connections_.erase(found);
  accept_.connection_closed();
}

std::optional<TimePoint> MetricsServer::next_deadline() const {
  std::optional<TimePoint> nearest = accept_.next_deadline();
  for (const auto& [id, connection] : connections_) {
    if (!nearest || connection.deadline < *nearest) {
      nearest = connection.deadline;
    }
  }
  return nearest;
}

void MetricsServer::on_deadline(TimePoint now) {
  accept_.on_deadline(now);
  std::vector<std::uint64_t> expired;
  for (const auto& [id, connection] : connections_) {
    if (connection.deadline <= now) {
      expired.push_back(id);
    }
  }
  for (const std::uint64_t id : expired) {
    const Connection& connection = connections_.at(id);
    if (connection.phase == Phase::request) {
      // Told why, if its socket takes it; the close follows either way.
      const std::string reply =
          http_error_reply(408, "no complete request head within " + format_duration(request_limit));
      (void)::send(connection.fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      spdlog::debug("metrics connection closed: no complete request within {}", format_duration(request_limit));
    } else if (connection.phase == Phase::reply) {
      spdlog::debug("metrics connection closed: its reply was not taken within {}", format_duration(reply_limit));
    }
    close(id);
  }
}

}  // namespace clusterd
