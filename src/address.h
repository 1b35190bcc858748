// Parses and formats listen addresses: `8000`, `:8000`, `HOST:PORT`, `[V6]:PORT`, `unix:PATH`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace clusterd {

enum class AddressFamily { ipv4, ipv6, unix_path };

struct Address {
  AddressFamily family = AddressFamily::ipv4;
  // Numeric host: "127.0.0.1", "::1", "0.0.0.0" or "::" (any). Empty for unix_path.
  std::string host;
  std::uint16_t port = 0;  // 0: the kernel picks one
  std::string path;        // unix_path only; at most 107 bytes
  // `8000` and `:8000` mean every address: `[::]` with IPV6_V6ONLY off (dual stack).
  bool any_dual_stack = false;

  bool operator==(const Address&) const = default;
};

// Accepts `8000`, `:8000`, `0.0.0.0:8000`, `127.0.0.1:0`, `localhost:8000` (127.0.0.1),
// `[::1]:8000`, `[::]:8000`, `unix:/run/app.sock`. The error says what was expected, e.g.
// `expected a port 0-65535, found "99999"`.
tl::expected<Address, std::string> parse_address(std::string_view text);

// `127.0.0.1:8000`, `[::1]:8000`, `[::]:8000`, `unix:/run/app.sock`: what parse_address reads back,
// the same address (a dual-stack `:8000` is shown as bound, `[::]:8000`, which reads back without
// its IPv4 fallback: config_toml.cpp writes `:8000` for it).
std::string format_address(const Address& address);

}  // namespace clusterd
