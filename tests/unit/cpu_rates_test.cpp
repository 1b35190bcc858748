// CPU percent between two requests: the interval since the previous sample, or the whole uptime.
#include "cpu_rates.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;

TEST(CpuRates, FirstSampleIsTheAverageOverTheUptime) {
  CpuRates rates;
  EXPECT_DOUBLE_EQ(rates.sample(7, 2.0, TimePoint{} + 100s, 8s), 25.0);
  EXPECT_DOUBLE_EQ(CpuRates().sample(7, 1.0, TimePoint{}, 0s), 0.0);  // just started
}

TEST(CpuRates, LaterSamplesCoverTheIntervalSinceThePreviousOne) {
  CpuRates rates;
  rates.sample(7, 2.0, TimePoint{} + 100s, 8s);
  EXPECT_DOUBLE_EQ(rates.sample(7, 3.5, TimePoint{} + 102s, 10s), 75.0);
  EXPECT_DOUBLE_EQ(rates.sample(7, 3.5, TimePoint{} + 104s, 12s), 0.0);
}

TEST(CpuRates, RequestsCloserThan100msGetThePreviousFigure) {
  CpuRates rates;
  rates.sample(7, 2.0, TimePoint{} + 100s, 8s);
  EXPECT_DOUBLE_EQ(rates.sample(7, 2.25, TimePoint{} + 101s, 9s), 25.0);
  EXPECT_DOUBLE_EQ(rates.sample(7, 2.5, TimePoint{} + 101s + 50ms, 9s), 25.0);
}

TEST(CpuRates, AForgottenPidStartsOverAndAPidReusedLaterIsNotConfused) {
  CpuRates rates;
  rates.sample(7, 50.0, TimePoint{} + 100s, 100s);
  rates.keep_only({8});
  EXPECT_DOUBLE_EQ(rates.sample(7, 1.0, TimePoint{} + 200s, 4s), 25.0);
}

}  // namespace
}  // namespace clusterd
