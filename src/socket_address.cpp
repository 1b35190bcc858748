// Socket addresses in the kernel's form and back; the backlog the kernel really uses.
#include "socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <array>
#include <fstream>

namespace clusterd {

// listen() silently caps the backlog at net.core.somaxconn (protocols §4.4); capping it here
// makes the logged value the one the kernel uses. Unreadable (no /proc): trust the request.
int effective_backlog(int requested) {
  const int wanted = std::max(requested, 1);
  std::ifstream file("/proc/sys/net/core/somaxconn");
  int somaxconn = 0;
  if (file >> somaxconn && somaxconn > 0) {
    return std::min(wanted, somaxconn);
  }
  return wanted;
}

SocketAddress to_socket_address(const Address& address) {
  SocketAddress result;
  if (address.family == AddressFamily::ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    if (::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) != 1) {
      throw ListenError(format_address(address) + ": not a numeric IPv6 address");
    }
    result.length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&result.storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(address.port);
    if (::inet_pton(AF_INET, address.host.c_str(), &in4->sin_addr) != 1) {
      throw ListenError(format_address(address) + ": not a numeric IPv4 address");
    }
    result.length = sizeof(sockaddr_in);
  }
  return result;
}

std::string local_address_of(int fd, const std::string& fallback) {
  SocketAddress local;
  local.length = sizeof(local.storage);
  if (::getsockname(fd, local.get(), &local.length) != 0) {
    return fallback;
  }
  Address address;
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (local.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&local.storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size());
    address.family = AddressFamily::ipv6;
    address.port = ntohs(in6->sin6_port);
  } else if (local.storage.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&local.storage);
    ::inet_ntop(AF_INET, &in4->sin_addr, text.data(), text.size());
    address.family = AddressFamily::ipv4;
    address.port = ntohs(in4->sin_port);
  } else {
    return fallback;
  }
  address.host = text.data();
  return format_address(address);
}

}  // namespace clusterd
