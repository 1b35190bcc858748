// The metrics endpoint ([metrics] listen): a TCP listener and its HTTP connections inside the
// daemon's EventLoop, each answered with one reply (metrics_http.h) and closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "acceptor.h"
#include "address.h"
#include "duration.h"
#include "event_loop.h"
#include "fd.h"
#include "sockets.h"

namespace clusterd {

// Serves GET /metrics from the daemon's EventLoop. Neither copyable nor movable: the loop's
// callbacks point at it; destroy it before the loop. It never blocks and never wakes the loop
// by itself: every read and write is non-blocking, and each connection has one deadline, which
// the daemon's timer covers through next_deadline().
//
// Contract: a connection has `request_limit` from its accept to send its request head (at most
// `max_head` bytes), then gets its reply, written as the socket takes it within `reply_limit`,
// and is closed: after the reply clusterd shuts its side down and waits up to `linger_limit`
// for the client's close, reading and dropping what it still sends, so that a reset does not
// destroy the reply before the client has read it. A client too slow with its request gets a
// 408 if its socket takes it. At most `max_connections` are open: one more closes the oldest
// that is not being answered (still sending its request, or lingering), or is itself closed
// when every one is being answered, so idle connections never keep a scraper out. The metrics
// text is made (`render`) once per GET or HEAD /metrics, when the request is complete.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  static constexpr std::size_t max_connections = 16;
  static constexpr std::size_t max_head = 8192;
  static constexpr Duration request_limit = std::chrono::seconds(5);
  static constexpr Duration reply_limit = std::chrono::seconds(10);
  static constexpr Duration linger_limit = std::chrono::seconds(2);
  // Connections accepted per readiness of the listener, so a flood of connects cannot hold the
  // loop in one callback.
  static constexpr std::size_t accepts_per_round = 64;

  // Binds and listens on `address` (TCP, close-on-exec, so no worker inherits it). Throws
  // ListenError naming the address (`bind 127.0.0.1:9100: Address already in use`).
  static Listener open(const Address& address);

  // `configured`: the address as the configuration wrote it (port 0 stays 0), to tell whether a
  // reload changes it.
  MetricsServer(Address configured, Listener listener, EventLoop& loop, Render render);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  const Address& configured() const { return configured_; }
  const std::string& bound_address() const { return listener_.bound_address(); }
  const Listener& listener() const { return listener_; }  // for `clusterd upgrade`

  // The nearest connection deadline (or accept retry); nullopt with no connection open.
  std::optional<TimePoint> next_deadline() const;
  // Closes the connections whose deadline has passed by `now`.
  void on_deadline(TimePoint now);

 private:
  enum class Phase { request, reply, lingering };
  struct Connection {
    Fd fd;
    Phase phase = Phase::request;
    std::string in;   // the request head so far
    std::string out;  // the reply not yet written
    TimePoint accepted{};
    TimePoint deadline{};
    std::uint32_t watched = 0;  // the epoll events asked for; 0: not registered yet
  };

  void on_listener();
  void make_room();
  void on_connection(std::uint64_t id, std::uint32_t events);
  void read_request(std::uint64_t id);
  void start_reply(std::uint64_t id, std::string reply);
  void flush(std::uint64_t id);
  void drain(std::uint64_t id);
  void watch(std::uint64_t id, std::uint32_t events);
  void close(std::uint64_t id);

  Address configured_;
  Listener listener_;
  EventLoop& loop_;
  Render render_;
  Acceptor accept_;
  std::map<std::uint64_t, Connection> connections_;
  std::uint64_t next_connection_ = 1;
};

}  // namespace clusterd
