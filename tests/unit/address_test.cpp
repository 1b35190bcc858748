// Listen addresses: every accepted form, every refusal with its message, and formatting.
#include "address.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

Address tcp(AddressFamily family, std::string host, std::uint16_t port, bool any_dual_stack = false) {
  Address address;
  address.family = family;
  address.host = std::move(host);
  address.port = port;
  address.any_dual_stack = any_dual_stack;
  return address;
}

Address unix_socket(std::string path) {
  Address address;
  address.family = AddressFamily::unix_path;
  address.path = std::move(path);
  return address;
}

std::string error_of(std::string_view text) {
  const auto result = parse_address(text);
  EXPECT_FALSE(result.has_value()) << text;
  return result ? std::string() : result.error();
}

TEST(ParseAddress, ABarePortMeansEveryAddressDualStack) {
  EXPECT_EQ(parse_address("8000"), tcp(AddressFamily::ipv6, "::", 8000, true));
  EXPECT_EQ(parse_address(":8000"), tcp(AddressFamily::ipv6, "::", 8000, true));
  EXPECT_EQ(parse_address("0"), tcp(AddressFamily::ipv6, "::", 0, true));
}

TEST(ParseAddress, ReadsNumericIpv4) {
  EXPECT_EQ(parse_address("0.0.0.0:8000"), tcp(AddressFamily::ipv4, "0.0.0.0", 8000));
  EXPECT_EQ(parse_address("127.0.0.1:0"), tcp(AddressFamily::ipv4, "127.0.0.1", 0));
  EXPECT_EQ(parse_address("10.1.2.3:65535"), tcp(AddressFamily::ipv4, "10.1.2.3", 65535));
}

TEST(ParseAddress, LocalhostIsIpv4Loopback) {
  EXPECT_EQ(parse_address("localhost:8000"), tcp(AddressFamily::ipv4, "127.0.0.1", 8000));
}

TEST(ParseAddress, ReadsBracketedIpv6InCanonicalForm) {
  EXPECT_EQ(parse_address("[::1]:8000"), tcp(AddressFamily::ipv6, "::1", 8000));
  EXPECT_EQ(parse_address("[::]:8000"), tcp(AddressFamily::ipv6, "::", 8000));
  EXPECT_EQ(parse_address("[0:0:0:0:0:0:0:1]:80"), tcp(AddressFamily::ipv6, "::1", 80));
  EXPECT_EQ(parse_address("[2001:DB8::1]:443"), tcp(AddressFamily::ipv6, "2001:db8::1", 443));
}

TEST(ParseAddress, ReadsUnixPaths) {
  EXPECT_EQ(parse_address("unix:/run/app.sock"), unix_socket("/run/app.sock"));
  EXPECT_EQ(parse_address("unix:relative.sock"), unix_socket("relative.sock"));
  EXPECT_EQ(parse_address("unix:/tmp/a:b.sock"), unix_socket("/tmp/a:b.sock"));
}

TEST(ParseAddress, AcceptsAUnixPathOfExactly107Bytes) {
  const std::string path = "/" + std::string(106, 'a');
  EXPECT_EQ(parse_address("unix:" + path), unix_socket(path));
}

TEST(ParseAddress, RefusesAUnixPathLongerThan107Bytes) {
  EXPECT_EQ(error_of("unix:/" + std::string(107, 'a')), "unix socket path is 108 bytes, the limit is 107");
}

TEST(ParseAddress, RefusesAnEmptyUnixPath) {
  EXPECT_EQ(error_of("unix:"), "expected a path after \"unix:\", found \"\"");
}

TEST(ParseAddress, RefusesAUnixPathWithANulByte) {
  EXPECT_EQ(error_of(std::string_view("unix:/a\0b", 9)), "unix socket path contains a NUL byte");
}

TEST(ParseAddress, RefusesTextOfNoKnownForm) {
  EXPECT_EQ(error_of("foo"), "expected HOST:PORT, [V6]:PORT, :PORT, PORT or unix:PATH, found \"foo\"");
  EXPECT_EQ(error_of(""), "expected HOST:PORT, [V6]:PORT, :PORT, PORT or unix:PATH, found \"\"");
  EXPECT_EQ(error_of(" 8000"), "expected HOST:PORT, [V6]:PORT, :PORT, PORT or unix:PATH, found \" 8000\"");
}

TEST(ParseAddress, RefusesPortsOutsideTheRange) {
  EXPECT_EQ(error_of("99999"), "expected a port 0-65535, found \"99999\"");
  EXPECT_EQ(error_of("65536"), "expected a port 0-65535, found \"65536\"");
  EXPECT_EQ(error_of(":123456789012345678901234"), "expected a port 0-65535, found \"123456789012345678901234\"");
  EXPECT_EQ(error_of("127.0.0.1:-1"), "expected a port 0-65535, found \"-1\"");
  EXPECT_EQ(error_of("127.0.0.1:"), "expected a port 0-65535, found \"\"");
  EXPECT_EQ(error_of(":http"), "expected a port 0-65535, found \"http\"");
  EXPECT_EQ(error_of("[::1]:8o"), "expected a port 0-65535, found \"8o\"");
}

TEST(ParseAddress, AcceptsLeadingZerosInAPort) {
  EXPECT_EQ(parse_address(":08080"), tcp(AddressFamily::ipv6, "::", 8080, true));
  EXPECT_EQ(parse_address("0000000000080"), tcp(AddressFamily::ipv6, "::", 80, true));
}

TEST(ParseAddress, RefusesHostNamesOtherThanLocalhost) {
  EXPECT_EQ(error_of("example.com:80"),
            "expected a numeric address or localhost, found the host name \"example.com\" (names are not "
            "resolved)");
  EXPECT_EQ(error_of("LOCALHOST:80"),
            "expected a numeric address or localhost, found the host name \"LOCALHOST\" (names are not "
            "resolved)");
}

TEST(ParseAddress, RefusesMalformedIpv4) {
  EXPECT_EQ(error_of("300.1.1.1:80"), "expected an IPv4 address such as 127.0.0.1, found \"300.1.1.1\"");
  EXPECT_EQ(error_of("127.1:80"), "expected an IPv4 address such as 127.0.0.1, found \"127.1\"");
}

TEST(ParseAddress, RefusesIpv6WithoutBrackets) {
  EXPECT_EQ(error_of("::1:8000"), "expected [V6]:PORT for an IPv6 address, found \"::1:8000\"");
  EXPECT_EQ(error_of("::"), "expected [V6]:PORT for an IPv6 address, found \"::\"");
}

TEST(ParseAddress, RefusesMalformedBrackets) {
  EXPECT_EQ(error_of("[::1]"), "expected [V6]:PORT, found \"[::1]\"");
  EXPECT_EQ(error_of("[::1]8000"), "expected [V6]:PORT, found \"[::1]8000\"");
  EXPECT_EQ(error_of("[::1:8000"), "expected [V6]:PORT, found \"[::1:8000\"");
  EXPECT_EQ(error_of("[127.0.0.1]:80"), "expected a numeric IPv6 address inside [], found \"127.0.0.1\"");
  EXPECT_EQ(error_of("[fe80::1%eth0]:80"), "expected a numeric IPv6 address inside [], found \"fe80::1%eth0\"");
  EXPECT_EQ(error_of("[]:80"), "expected a numeric IPv6 address inside [], found \"\"");
}

TEST(FormatAddress, WritesEachFamily) {
  EXPECT_EQ(format_address(tcp(AddressFamily::ipv4, "127.0.0.1", 8000)), "127.0.0.1:8000");
  EXPECT_EQ(format_address(tcp(AddressFamily::ipv6, "::1", 8000)), "[::1]:8000");
  EXPECT_EQ(format_address(tcp(AddressFamily::ipv6, "::", 8000, true)), "[::]:8000");
  EXPECT_EQ(format_address(unix_socket("/run/a.sock")), "unix:/run/a.sock");
}

TEST(FormatAddress, IsReadBackByParseAddress) {
  for (const char* text : {"127.0.0.1:8000", "0.0.0.0:0", "[::1]:8000", "[::]:65535", "unix:/run/a.sock"}) {
    const auto address = parse_address(text);
    ASSERT_TRUE(address.has_value()) << text;
    EXPECT_EQ(format_address(*address), text);
    EXPECT_EQ(parse_address(format_address(*address)), address);
  }
}

}  // namespace
}  // namespace clusterd
