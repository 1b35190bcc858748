// The sd_notify client clusterd reports its own state to systemd with.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fd.h"

namespace clusterd {

// The client to systemd (protocols §2.2). Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
// once and leaves them in the environment (spawn_plan keeps them from workers). Move-only.
class SystemdNotifier {
 public:
  // NOTIFY_SOCKET "/path" or "@abstract" enables it; unset or empty leaves it disabled; any
  // other form (vsock:…, a relative path) leaves it disabled and says why in problem().
  static SystemdNotifier from_environment();

  bool enabled() const { return address_length_ != 0; }
  // Why a NOTIFY_SOCKET that was set is not used, for one log line at start.
  const std::optional<std::string>& problem() const { return problem_; }

  // One datagram, sendto(MSG_NOSIGNAL) on a socket with a 1 s send timeout: the receiver is
  // addressed anew each time (systemd may have re-executed and bound a new socket), and a
  // receiver that does not read for a second must not freeze clusterd's loop for longer.
  // nullopt on success or when disabled; otherwise the error, for the caller to log once.
  // Messages over 4096 bytes are refused: systemd would drop them (protocols §2.1).
  // `fds` go with it as SCM_RIGHTS (FDSTORE=1: systemd keeps them for the unit's next start).
  std::optional<std::string> send(std::string_view message, std::span<const int> fds = {});

  // WATCHDOG_USEC, when enabled, positive, and WATCHDOG_PID is unset or our pid
  // (sd_watchdog_enabled(3)). clusterd pings at half of it from its event loop.
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_timeout_; }

 private:
  SystemdNotifier() = default;

  Fd fd_;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;  // 0: disabled
  std::string shown_;             // NOTIFY_SOCKET as given, for messages
  std::optional<std::string> problem_;
  std::optional<std::chrono::microseconds> watchdog_timeout_;
};

// CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC= (protocols §2.2).
std::chrono::microseconds monotonic_now();

}  // namespace clusterd
