// Parses and formats listen addresses: `8000`, `:8000`, `HOST:PORT`, `[V6]:PORT`, `unix:PATH`.
#include "address.h"

// inet_pton/inet_ntop only convert text to bytes and back; they touch no kernel state, so this
// module stays pure.
#include <arpa/inet.h>

#include <algorithm>
#include <array>

namespace clusterd {
namespace {

// sizeof(sockaddr_un::sun_path) is 108; one byte is kept for the terminating NUL that
// unix(7) recommends, so a path written here always fits with its terminator.
constexpr std::size_t max_unix_path = 107;

std::string quoted(std::string_view text) {
  std::string result = "\"";
  result += text;
  result += '"';
  return result;
}

tl::unexpected<std::string> expected_any_form(std::string_view text) {
  return tl::unexpected("expected HOST:PORT, [V6]:PORT, :PORT, PORT or unix:PATH, found " + quoted(text));
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

tl::expected<std::uint16_t, std::string> parse_port(std::string_view text) {
  // Leading zeros are allowed ("08080" is 8080); the length check keeps the sum from overflowing.
  constexpr std::size_t max_digits = 5;
  const auto trimmed = text.substr(std::min(text.find_first_not_of('0'), text.size()));
  if (all_digits(text) && trimmed.size() <= max_digits) {
    unsigned value = 0;
    for (const char c : trimmed) {
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value <= 65535) {
      return static_cast<std::uint16_t>(value);
    }
  }
  return tl::unexpected("expected a port 0-65535, found " + quoted(text));
}

tl::expected<std::string, std::string> parse_ipv4(std::string_view host) {
  if (host == "localhost") {
    return "127.0.0.1";
  }
  std::array<unsigned char, 4> bytes{};
  if (::inet_pton(AF_INET, std::string(host).c_str(), bytes.data()) == 1) {
    std::array<char, INET_ADDRSTRLEN> text{};
    ::inet_ntop(AF_INET, bytes.data(), text.data(), text.size());
    return std::string(text.data());
  }
  const bool looks_numeric =
      std::all_of(host.begin(), host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  if (looks_numeric) {
    return tl::unexpected("expected an IPv4 address such as 127.0.0.1, found " + quoted(host));
  }
  // Names other than localhost would need a resolver at start and could change meaning
  // between reloads; systemd's ListenStream= refuses them for the same reason.
  return tl::unexpected("expected a numeric address or localhost, found the host name " + quoted(host) +
                        " (names are not resolved)");
}

tl::expected<std::string, std::string> parse_ipv6(std::string_view host) {
  std::array<unsigned char, 16> bytes{};
  if (::inet_pton(AF_INET6, std::string(host).c_str(), bytes.data()) != 1) {
    return tl::unexpected("expected a numeric IPv6 address inside [], found " + quoted(host));
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  ::inet_ntop(AF_INET6, bytes.data(), text.data(), text.size());
  return std::string(text.data());
}

tl::expected<Address, std::string> parse_unix(std::string_view path) {
  if (path.empty()) {
    return tl::unexpected(std::string("expected a path after \"unix:\", found \"\""));
  }
  if (path.find('\0') != std::string_view::npos) {
    return tl::unexpected(std::string("unix socket path contains a NUL byte"));
  }
  if (path.size() > max_unix_path) {
    return tl::unexpected("unix socket path is " + std::to_string(path.size()) + " bytes, the limit is " +
                          std::to_string(max_unix_path));
  }
  Address address;
  address.family = AddressFamily::unix_path;
  address.path = std::string(path);
  return address;
}

tl::expected<Address, std::string> parse_bracketed(std::string_view text) {
  const auto close = text.find(']');
  if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
    return tl::unexpected("expected [V6]:PORT, found " + quoted(text));
  }
  auto host = parse_ipv6(text.substr(1, close - 1));
  if (!host) {
    return tl::unexpected(host.error());
  }
  auto port = parse_port(text.substr(close + 2));
  if (!port) {
    return tl::unexpected(port.error());
  }
  Address address;
  address.family = AddressFamily::ipv6;
  address.host = *host;
  address.port = *port;
  return address;
}

Address any_address(std::uint16_t port) {
  Address address;
  address.family = AddressFamily::ipv6;
  address.host = "::";
  address.port = port;
  address.any_dual_stack = true;
  return address;
}

}  // namespace

tl::expected<Address, std::string> parse_address(std::string_view text) {
  if (text.starts_with("unix:")) {
    return parse_unix(text.substr(5));
  }
  if (text.starts_with('[')) {
    return parse_bracketed(text);
  }
  if (all_digits(text)) {
    return parse_port(text).map(any_address);
  }
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return expected_any_form(text);
  }
  if (text.find(':', colon + 1) != std::string_view::npos) {
    // "::1:8000" cannot be split reliably: the port is only unambiguous inside brackets.
    return tl::unexpected("expected [V6]:PORT for an IPv6 address, found " + quoted(text));
  }
  const auto host_text = text.substr(0, colon);
  const auto port_text = text.substr(colon + 1);
  if (host_text.empty()) {
    return parse_port(port_text).map(any_address);
  }
  auto host = parse_ipv4(host_text);
  if (!host) {
    return tl::unexpected(host.error());
  }
  auto port = parse_port(port_text);
  if (!port) {
    return tl::unexpected(port.error());
  }
  Address address;
  address.family = AddressFamily::ipv4;
  address.host = *host;
  address.port = *port;
  return address;
}

std::string format_address(const Address& address) {
  switch (address.family) {
    case AddressFamily::unix_path:
      return "unix:" + address.path;
    case AddressFamily::ipv6:
      return "[" + address.host + "]:" + std::to_string(address.port);
    case AddressFamily::ipv4:
      return address.host + ":" + std::to_string(address.port);
  }
  return {};
}

}  // namespace clusterd
