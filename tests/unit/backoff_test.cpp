// Restart timing: streak, equal jitter, cap, reset_after, burst.
#include "backoff.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;

RestartConfig restart_config() {
  RestartConfig config;
  config.delay = 100ms;
  config.max_delay = 1s;
  config.multiplier = 2.0;
  config.reset_after = 30s;
  return config;
}

TEST(Backoff, FirstRestartOfAStreakIsImmediate) {
  SlotBackoff backoff(restart_config());
  EXPECT_EQ(backoff.on_failure(TimePoint{}, 10ms, 1.0).delay, 0ms);
}

TEST(Backoff, CeilingDoublesFromTheBaseAndStopsAtTheCap) {
  const RestartConfig config = restart_config();
  EXPECT_EQ(backoff_ceiling(config, 1), 0ms);
  EXPECT_EQ(backoff_ceiling(config, 2), 100ms);
  EXPECT_EQ(backoff_ceiling(config, 3), 200ms);
  EXPECT_EQ(backoff_ceiling(config, 5), 800ms);
  EXPECT_EQ(backoff_ceiling(config, 6), 1s);
  EXPECT_EQ(backoff_ceiling(config, 5000), 1s);  // no overflow however long the streak
}

TEST(Backoff, EqualJitterStaysBetweenHalfAndAllOfTheCeiling) {
  SlotBackoff low(restart_config());
  SlotBackoff high(restart_config());
  const TimePoint now{};
  std::vector<Duration> lows;
  std::vector<Duration> highs;
  for (int restart = 1; restart <= 7; ++restart) {
    lows.push_back(low.on_failure(now, 1ms, 0.0).delay);
    highs.push_back(high.on_failure(now, 1ms, 1.0).delay);
  }
  EXPECT_EQ(lows, (std::vector<Duration>{0ms, 50ms, 100ms, 200ms, 400ms, 500ms, 500ms}));
  EXPECT_EQ(highs, (std::vector<Duration>{0ms, 100ms, 200ms, 400ms, 800ms, 1s, 1s}));
}

TEST(Backoff, UptimeOfResetAfterEndsTheStreak) {
  SlotBackoff backoff(restart_config());
  backoff.on_failure(TimePoint{}, 1ms, 1.0);
  backoff.on_failure(TimePoint{}, 1ms, 1.0);
  EXPECT_EQ(backoff.failures(), 2);
  EXPECT_EQ(backoff.on_failure(TimePoint{}, 30s, 1.0).delay, 0ms);
  EXPECT_EQ(backoff.failures(), 1);
}

TEST(Backoff, MoreThanBurstRestartsWithinIntervalFailForGood) {
  RestartConfig config = restart_config();
  config.burst = 3;
  config.interval = 10s;
  SlotBackoff backoff(config);
  const TimePoint start{};
  EXPECT_FALSE(backoff.on_failure(start, 1ms, 1.0).failed_for_good);
  EXPECT_FALSE(backoff.on_failure(start + 1s, 1ms, 1.0).failed_for_good);
  EXPECT_FALSE(backoff.on_failure(start + 2s, 1ms, 1.0).failed_for_good);
  EXPECT_TRUE(backoff.on_failure(start + 3s, 1ms, 1.0).failed_for_good);
}

TEST(Backoff, RestartsOlderThanIntervalDoNotCountTowardsBurst) {
  RestartConfig config = restart_config();
  config.burst = 2;
  config.interval = 10s;
  SlotBackoff backoff(config);
  const TimePoint start{};
  backoff.on_failure(start, 1ms, 1.0);
  backoff.on_failure(start + 1s, 1ms, 1.0);
  EXPECT_FALSE(backoff.on_failure(start + 11s, 1ms, 1.0).failed_for_good);
}

TEST(Backoff, PolicyDecidesWhichExitsRestart) {
  EXPECT_TRUE(policy_restarts(RestartPolicyKind::always, ExitCode{0}));
  EXPECT_FALSE(policy_restarts(RestartPolicyKind::on_failure, ExitCode{0}));
  EXPECT_TRUE(policy_restarts(RestartPolicyKind::on_failure, ExitCode{3}));
  EXPECT_TRUE(policy_restarts(RestartPolicyKind::on_failure, KilledBySignal{9}));
  EXPECT_FALSE(policy_restarts(RestartPolicyKind::never, KilledBySignal{9}));
}

}  // namespace
}  // namespace clusterd
