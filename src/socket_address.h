// Socket addresses in the kernel's form and back, and the backlog listen() really uses: shared
// by the listeners clusterd opens (sockets.*) and those it adopts from systemd (socket_activation.*).
#pragma once

#include <sys/socket.h>

#include <string>

#include "address.h"
#include "sockets.h"  // ListenError

namespace clusterd {

// The backlog listen() really uses: `requested` (at least 1) capped at net.core.somaxconn.
int effective_backlog(int requested);

// A socket address in the kernel's form.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

// A numeric IPv4 or IPv6 address with its port; throws ListenError if the host is not numeric.
SocketAddress to_socket_address(const Address& address);

// What getsockname() says of a TCP socket, in format_address form; `fallback` if it cannot say.
std::string local_address_of(int fd, const std::string& fallback);

}  // namespace clusterd
