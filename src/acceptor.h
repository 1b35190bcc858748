// Accepts connections on a listening socket from the EventLoop, pausing for a second when accept()
// runs out of fds or memory, until a connection closes or the second has passed.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "duration.h"
#include "event_loop.h"
#include "fd.h"

namespace clusterd {

// Watches one listening fd for its owner (the control and metrics servers), which is called
// (`on_connections`) when connections wait, takes them with accept(), and says when one of its
// connections closed. epoll is level-triggered: a listener whose accept() fails with EMFILE would
// fire again at once, so it is left out of the loop until an fd is freed or `pause_length` has
// passed. It does not own the fd; stop() (or the destructor) takes it out of the loop for good.
class Acceptor {
 public:
  static constexpr Duration pause_length = std::chrono::seconds(1);

  // `what` names the socket in the log ("control socket", "metrics endpoint").
  Acceptor(EventLoop& loop, int fd, std::string what, std::function<void()> on_connections);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  ~Acceptor() { stop(); }

  // The next waiting connection, non-blocking and close-on-exec; nullopt when none is left, or
  // when accept() failed otherwise (logged, and the listener paused).
  std::optional<Fd> accept();
  // A connection closed: an fd is free again.
  void connection_closed();
  // The end of the pause; nullopt when not paused.
  std::optional<TimePoint> next_deadline() const { return retry_at_; }
  void on_deadline(TimePoint now);
  void stop();

 private:
  void resume();
  void pause();
  void accept_failed(int error);

  EventLoop& loop_;
  int fd_;
  std::string what_;
  std::function<void()> on_connections_;
  bool watching_ = false;
  bool stopped_ = false;
  std::optional<TimePoint> retry_at_;
};

}  // namespace clusterd
