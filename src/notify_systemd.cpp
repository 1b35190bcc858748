// The client clusterd reports its own state to systemd with (sd_notify, protocols §2.2), and
// the watchdog settings systemd gave it.
#include "notify_systemd.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "decimal.h"
#include "notify_message.h"
#include "errno_text.h"

namespace clusterd {
namespace {

// sun_path holds 108 bytes; a path needs its terminating NUL (unix(7)).
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

}  // namespace

SystemdNotifier SystemdNotifier::from_environment() {
  SystemdNotifier notifier;
  const auto socket_variable = environment("NOTIFY_SOCKET");
  if (!socket_variable || socket_variable->empty()) {
    return notifier;
  }
  const std::string& value = *socket_variable;
  notifier.shown_ = value;
  if (value[0] != '/' && value[0] != '@') {
    notifier.problem_ =
        "NOTIFY_SOCKET=" + value + " is not a unix socket path or @abstract name; not notifying systemd";
    return notifier;
  }
  // A path needs its NUL within sun_path; an abstract name uses every byte, its '@' standing
  // for the leading NUL (protocols §2.1).
  const std::size_t limit = value[0] == '/' ? max_socket_path : sizeof(sockaddr_un::sun_path);
  if (value.size() > limit) {
    notifier.problem_ = "NOTIFY_SOCKET=" + value + " is longer than a unix socket address; not notifying systemd";
    return notifier;
  }
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    notifier.problem_ = "socket for NOTIFY_SOCKET=" + value + ": " + errno_text(errno) + "; not notifying systemd";
    return notifier;
  }
  const timeval send_timeout{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  notifier.fd_ = std::move(fd);
  notifier.address_.sun_family = AF_UNIX;
  std::memcpy(notifier.address_.sun_path, value.data(), value.size());
  if (value[0] == '@') {
    // Exactly the name's bytes: with sizeof(sockaddr_un), the padding zeros would become part
    // of a different abstract name.
    notifier.address_.sun_path[0] = '\0';
    notifier.address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size());
  } else {
    notifier.address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + 1);
  }

  const auto usec = environment("WATCHDOG_USEC");
  const auto watchdog_pid = environment("WATCHDOG_PID");
  const auto parsed_usec = usec ? parse_decimal(*usec) : std::nullopt;
  bool for_us = true;
  if (watchdog_pid) {
    // Set for another process (a parent that shares our environment): not our watchdog.
    const auto pid = parse_decimal(*watchdog_pid);
    for_us = pid && *pid == static_cast<std::uint64_t>(::getpid());
  }
  if (parsed_usec && *parsed_usec > 0 &&
      *parsed_usec <= static_cast<std::uint64_t>(std::chrono::microseconds::max().count()) && for_us) {
    notifier.watchdog_timeout_ = std::chrono::microseconds(static_cast<std::int64_t>(*parsed_usec));
  }
  return notifier;
}

std::optional<std::string> SystemdNotifier::send(std::string_view message, std::span<const int> fds) {
  if (!enabled()) {
    return std::nullopt;
  }
  if (message.size() > notify_buffer_max) {
    return "message to NOTIFY_SOCKET=" + shown_ + " is " + std::to_string(message.size()) +
           " bytes, systemd drops more than " + std::to_string(notify_buffer_max);
  }
  iovec data{const_cast<char*>(message.data()), message.size()};
  msghdr header{};
  header.msg_name = &address_;
  header.msg_namelen = address_length_;
  header.msg_iov = &data;
  header.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    header.msg_control = control.data();
    header.msg_controllen = control.size();
    cmsghdr* rights = CMSG_FIRSTHDR(&header);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(rights), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t sent = retry_on_eintr([&] { return ::sendmsg(fd_.get(), &header, MSG_NOSIGNAL); });
  if (sent < 0) {
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) {
      return "sendto NOTIFY_SOCKET=" + shown_ + ": the receiver's queue stayed full for 1s";
    }
    return "sendto NOTIFY_SOCKET=" + shown_ + ": " + errno_text(error);
  }
  return std::nullopt;
}

std::chrono::microseconds monotonic_now() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::chrono::seconds(now.tv_sec) +
         std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::nanoseconds(now.tv_nsec));
}

}  // namespace clusterd
