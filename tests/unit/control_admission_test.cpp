// Which control connection makes room for a new one: per-uid and total caps, oldest idle first,
// busy connections never shed.
#include "control_admission.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;

const TimePoint t0{};
const ConnectionLimits small{3, 5};

OpenConnection idle(std::uint64_t id, std::uint32_t uid, Duration since) { return {id, uid, true, t0 + since}; }
OpenConnection busy(std::uint64_t id, std::uint32_t uid, Duration since) { return {id, uid, false, t0 + since}; }

TEST(AdmitConnection, UnderEveryCapNothingIsShed) {
  const auto verdict = admit_connection({idle(1, 0, 1s), idle(2, 1000, 2s)}, 0, small);
  EXPECT_TRUE(verdict.admit);
  EXPECT_EQ(verdict.shed, std::nullopt);
}

TEST(AdmitConnection, AtItsOwnCapAUidShedsItsOwnOldestIdle) {
  const auto verdict =
      admit_connection({idle(1, 1000, 5s), busy(2, 1000, 1s), idle(3, 1000, 3s), idle(4, 0, 0s)}, 1000, small);
  EXPECT_TRUE(verdict.admit);
  EXPECT_EQ(verdict.shed, 3u);  // not 2 (busy), not 4 (root's, older but another uid)
}

TEST(AdmitConnection, AtItsOwnCapWithNothingIdleItIsRefused) {
  const auto verdict =
      admit_connection({busy(1, 1000, 1s), busy(2, 1000, 2s), busy(3, 1000, 3s), idle(4, 0, 0s)}, 1000, small);
  EXPECT_FALSE(verdict.admit);
  EXPECT_EQ(verdict.shed, std::nullopt);
}

// The flood of uid 1000 fills the total cap; root, under its own cap, takes one of the
// flooder's places, never one of root's own.
TEST(AdmitConnection, AtTheTotalCapTheUidHoldingTheMostPays) {
  const std::vector<OpenConnection> open{idle(1, 0, 0s), idle(2, 1000, 1s), idle(3, 1000, 2s), idle(4, 1000, 3s),
                                         idle(5, 2000, 0s)};
  const auto verdict = admit_connection(open, 0, ConnectionLimits{3, 5});
  EXPECT_TRUE(verdict.admit);
  EXPECT_EQ(verdict.shed, 2u);
}

TEST(AdmitConnection, AtTheTotalCapAHolderWithNothingIdleIsPassedOver) {
  const std::vector<OpenConnection> open{busy(1, 1000, 0s), busy(2, 1000, 1s), busy(3, 1000, 2s), idle(4, 2000, 3s),
                                         idle(5, 2000, 4s)};
  const auto verdict = admit_connection(open, 0, ConnectionLimits{3, 5});
  EXPECT_TRUE(verdict.admit);
  EXPECT_EQ(verdict.shed, 4u);
}

TEST(AdmitConnection, AtTheTotalCapWithNothingIdleItIsRefused) {
  const std::vector<OpenConnection> open{busy(1, 1000, 0s), busy(2, 1000, 1s), busy(3, 2000, 2s)};
  const auto verdict = admit_connection(open, 0, ConnectionLimits{3, 3});
  EXPECT_FALSE(verdict.admit);
  EXPECT_EQ(verdict.shed, std::nullopt);
}

TEST(AdmitConnection, TiesBetweenHoldersGoToTheOldestIdle) {
  const std::vector<OpenConnection> open{idle(1, 1000, 4s), idle(2, 1000, 5s), idle(3, 2000, 1s), idle(4, 2000, 6s)};
  const auto verdict = admit_connection(open, 0, ConnectionLimits{3, 4});
  EXPECT_TRUE(verdict.admit);
  EXPECT_EQ(verdict.shed, 3u);
}

}  // namespace
}  // namespace clusterd
