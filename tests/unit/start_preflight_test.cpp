// What `check` says about a listener address that a start could not bind.
#include "start_preflight.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace clusterd {
namespace {

TEST(StartPreflight, AnAddressInUseNamesTheBindErrorAndHowToFindTheHolder) {
  EXPECT_EQ(bind_problem("127.0.0.1:8000", "127.0.0.1", 8000, EADDRINUSE, 1024),
            "127.0.0.1:8000 is in use: another socket is bound to it, so a start would fail (bind: Address already "
            "in use); find its process with ss -ltnp 'sport = :8000', stop it or choose another port");
}

TEST(StartPreflight, APrivilegedPortSaysWhichPortsAreFreeAndWhatPrivilegeIsNeeded) {
  EXPECT_EQ(bind_problem("0.0.0.0:80", "0.0.0.0", 80, EACCES, 1024),
            "0.0.0.0:80: ports below 1024 need root or CAP_NET_BIND_SERVICE (net.ipv4.ip_unprivileged_port_start), "
            "so a start would fail (bind: Permission denied); run clusterd as root or with that capability "
            "(AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit), or choose a port of 1024 or above");
}

TEST(StartPreflight, AnAddressOfAnotherHostSaysSo) {
  EXPECT_EQ(bind_problem("192.0.2.1:80", "192.0.2.1", 80, EADDRNOTAVAIL, 1024),
            "192.0.2.1:80: 192.0.2.1 is not an address of this host, so a start would fail (bind: Cannot assign "
            "requested address); choose one it has (ip -brief address) or 0.0.0.0");
}

TEST(StartPreflight, AnyOtherBindErrorIsReportedAsIs) {
  EXPECT_EQ(bind_problem("[::1]:80", "::1", 80, EAFNOSUPPORT, 1024),
            "[::1]:80: a start would fail (bind: Address family not supported by protocol)");
}

}  // namespace
}  // namespace clusterd
