// NotifyPacing: how much of a notify socket is read per window, and when drops are reported,
// with the time passed explicitly.
#include "notify_pacing.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;

constexpr int budget = NotifyPacing::datagrams_per_window;

TEST(NotifyPacing, ReadsAWindowsBudgetThenPausesUntilTheWindowEnds) {
  NotifyPacing pacing;
  const TimePoint start{};
  for (int i = 0; i < budget - 1; ++i) {
    pacing.read_one(start + 1ms, true);
    EXPECT_EQ(pacing.resume_at(start + 1ms), std::nullopt) << i;
  }
  pacing.read_one(start + 2ms, true);
  EXPECT_EQ(pacing.resume_at(start + 2ms), start + 1ms + NotifyPacing::window);
  EXPECT_EQ(pacing.resume_at(start + 1ms + NotifyPacing::window - 1ms), start + 1ms + NotifyPacing::window);
  EXPECT_EQ(pacing.resume_at(start + 1ms + NotifyPacing::window), std::nullopt);
}

TEST(NotifyPacing, AcceptedDatagramsCountTowardsTheBudgetToo) {
  NotifyPacing pacing;
  const TimePoint start{};
  for (int i = 0; i < budget; ++i) {
    pacing.read_one(start, false);
  }
  EXPECT_EQ(pacing.resume_at(start), start + NotifyPacing::window);
  EXPECT_EQ(pacing.take_report(start), 0);  // nothing was dropped
}

TEST(NotifyPacing, ANewWindowStartsWithAFullBudget) {
  NotifyPacing pacing;
  const TimePoint start{};
  for (int i = 0; i < budget; ++i) {
    pacing.read_one(start, true);
  }
  const TimePoint next = start + NotifyPacing::window;
  pacing.read_one(next, true);
  EXPECT_EQ(pacing.resume_at(next), std::nullopt);
}

TEST(NotifyPacing, AFewDatagramsNeverPause) {
  NotifyPacing pacing;
  TimePoint now{};
  for (int i = 0; i < 10 * budget; ++i) {
    now += NotifyPacing::window / (budget / 2);  // half the budget per window
    pacing.read_one(now, false);
    ASSERT_EQ(pacing.resume_at(now), std::nullopt) << i;
  }
}

TEST(NotifyPacing, TheFirstDropIsReportedAtOnceTheNextOnesOncePerInterval) {
  NotifyPacing pacing;
  const TimePoint start{};
  pacing.read_one(start, true);
  EXPECT_EQ(pacing.take_report(start), 1);
  pacing.read_one(start + 1s, true);
  pacing.read_one(start + 2s, true);
  EXPECT_EQ(pacing.take_report(start + 2s), 0);
  EXPECT_EQ(pacing.unreported(), 2);
  pacing.read_one(start + NotifyPacing::report_interval - 1ms, true);
  EXPECT_EQ(pacing.take_report(start + NotifyPacing::report_interval - 1ms), 0);
  pacing.read_one(start + NotifyPacing::report_interval, true);
  EXPECT_EQ(pacing.take_report(start + NotifyPacing::report_interval), 4);
  EXPECT_EQ(pacing.unreported(), 0);
  EXPECT_EQ(pacing.take_report(start + 3 * NotifyPacing::report_interval), 0);  // nothing new: no line
}

}  // namespace
}  // namespace clusterd
