// Durations and sizes: what parses, what is refused, and how they print.
#include "duration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::Eq;
using ::testing::Optional;

TEST(ParseDuration, ReadsEachUnit) {
  EXPECT_THAT(parse_duration("250ms"), Optional(Duration{250}));
  EXPECT_THAT(parse_duration("2s"), Optional(Duration{2000}));
  EXPECT_THAT(parse_duration("3m"), Optional(Duration{180'000}));
  EXPECT_THAT(parse_duration("1h"), Optional(Duration{3'600'000}));
}

TEST(ParseDuration, AddsPartsInDecreasingOrder) {
  EXPECT_THAT(parse_duration("1m30s"), Optional(Duration{90'000}));
  EXPECT_THAT(parse_duration("1h2m3s500ms"), Optional(Duration{3'723'500}));
  EXPECT_THAT(parse_duration("1h500ms"), Optional(Duration{3'600'500}));
}

TEST(ParseDuration, AcceptsZeroAndPartsLargerThanTheNextUnit) {
  EXPECT_THAT(parse_duration("0s"), Optional(Duration{0}));
  EXPECT_THAT(parse_duration("0ms"), Optional(Duration{0}));
  EXPECT_THAT(parse_duration("90s"), Optional(Duration{90'000}));
  EXPECT_THAT(parse_duration("1500ms"), Optional(Duration{1500}));
}

TEST(ParseDuration, RefusesABareNumber) {
  EXPECT_EQ(parse_duration("5"), std::nullopt);
  EXPECT_EQ(parse_duration("0"), std::nullopt);
  EXPECT_EQ(parse_duration("1m30"), std::nullopt);
}

TEST(ParseDuration, RefusesEmptyTextSignsAndSpaces) {
  EXPECT_EQ(parse_duration(""), std::nullopt);
  EXPECT_EQ(parse_duration("-1s"), std::nullopt);
  EXPECT_EQ(parse_duration("+1s"), std::nullopt);
  EXPECT_EQ(parse_duration(" 1s"), std::nullopt);
  EXPECT_EQ(parse_duration("1s "), std::nullopt);
  EXPECT_EQ(parse_duration("1 s"), std::nullopt);
}

TEST(ParseDuration, RefusesUnknownUnitsAndFractions) {
  EXPECT_EQ(parse_duration("1d"), std::nullopt);
  EXPECT_EQ(parse_duration("1us"), std::nullopt);
  EXPECT_EQ(parse_duration("1S"), std::nullopt);
  EXPECT_EQ(parse_duration("1sec"), std::nullopt);
  EXPECT_EQ(parse_duration("1.5s"), std::nullopt);
  EXPECT_EQ(parse_duration("s"), std::nullopt);
  EXPECT_EQ(parse_duration("ms"), std::nullopt);
}

TEST(ParseDuration, RefusesUnitsOutOfOrderOrRepeated) {
  EXPECT_EQ(parse_duration("30s1m"), std::nullopt);
  EXPECT_EQ(parse_duration("1s1s"), std::nullopt);
  EXPECT_EQ(parse_duration("500ms1s"), std::nullopt);
  EXPECT_EQ(parse_duration("1m1h"), std::nullopt);
}

TEST(ParseDuration, RefusesOverflow) {
  // 2^63 - 1 ms is the largest; one more in any unit overflows.
  EXPECT_THAT(parse_duration("9223372036854775807ms"),
              Optional(Duration{std::numeric_limits<Duration::rep>::max()}));
  EXPECT_EQ(parse_duration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999999ms"), std::nullopt);
  EXPECT_THAT(parse_duration("2562047788015h12m55s807ms"),
              Optional(Duration{std::numeric_limits<Duration::rep>::max()}));
  EXPECT_EQ(parse_duration("2562047788015h12m55s808ms"), std::nullopt);
  EXPECT_EQ(parse_duration("2562047788016h"), std::nullopt);
}

TEST(ParseSize, ReadsEachBinaryUnit) {
  EXPECT_THAT(parse_size("1KiB"), Optional(Eq(1024u)));
  EXPECT_THAT(parse_size("512MiB"), Optional(Eq(512u * 1024 * 1024)));
  EXPECT_THAT(parse_size("2GiB"), Optional(Eq(2ull * 1024 * 1024 * 1024)));
  EXPECT_THAT(parse_size("0MiB"), Optional(Eq(0u)));
}

TEST(ParseSize, RefusesBareNumbersOtherUnitsAndJunk) {
  EXPECT_EQ(parse_size("512"), std::nullopt);
  EXPECT_EQ(parse_size(""), std::nullopt);
  EXPECT_EQ(parse_size("MiB"), std::nullopt);
  EXPECT_EQ(parse_size("512MB"), std::nullopt);
  EXPECT_EQ(parse_size("512mib"), std::nullopt);
  EXPECT_EQ(parse_size("1TiB"), std::nullopt);
  EXPECT_EQ(parse_size("-1MiB"), std::nullopt);
  EXPECT_EQ(parse_size("1.5GiB"), std::nullopt);
  EXPECT_EQ(parse_size("512 MiB"), std::nullopt);
  EXPECT_EQ(parse_size("1MiB1KiB"), std::nullopt);
}

TEST(ParseSize, RefusesOverflow) {
  EXPECT_THAT(parse_size("17179869183GiB"), Optional(Eq(17179869183ull << 30)));
  EXPECT_EQ(parse_size("17179869184GiB"), std::nullopt);
  EXPECT_EQ(parse_size("99999999999999999999999KiB"), std::nullopt);
}

TEST(FormatDuration, WritesEveryNonZeroUnitLargestFirst) {
  EXPECT_EQ(format_duration(Duration{0}), "0s");
  EXPECT_EQ(format_duration(Duration{250}), "250ms");
  EXPECT_EQ(format_duration(Duration{2000}), "2s");
  EXPECT_EQ(format_duration(Duration{90'000}), "1m30s");
  EXPECT_EQ(format_duration(Duration{3'600'000}), "1h");
  EXPECT_EQ(format_duration(Duration{3'600'500}), "1h500ms");
  EXPECT_EQ(format_duration(Duration{3'723'500}), "1h2m3s500ms");
  EXPECT_EQ(format_duration(Duration{100 * 3'600'000}), "100h");
}

TEST(FormatDuration, IsReadBackExactlyByParseDuration) {
  for (const Duration duration :
       {Duration{0}, Duration{1}, Duration{999}, Duration{1000}, Duration{59'999}, Duration{60'000},
        Duration{3'599'999}, Duration{86'400'000}, Duration{std::numeric_limits<Duration::rep>::max()}}) {
    EXPECT_THAT(parse_duration(format_duration(duration)), Optional(duration)) << duration.count();
  }
}

TEST(FormatDuration, MarksANegativeDurationWithASign) {
  EXPECT_EQ(format_duration(Duration{-1500}), "-1s500ms");
  EXPECT_EQ(format_duration(Duration{std::numeric_limits<Duration::rep>::min()}),
            "-2562047788015h12m55s808ms");
}

TEST(FormatDurationHuman, ShowsOneDecimalBelowAMinute) {
  EXPECT_EQ(format_duration_human(0s), "0.0s");
  EXPECT_EQ(format_duration_human(400ms), "0.4s");
  EXPECT_EQ(format_duration_human(1600ms), "1.6s");
  EXPECT_EQ(format_duration_human(1640ms), "1.6s");
  EXPECT_EQ(format_duration_human(1660ms), "1.7s");
  EXPECT_EQ(format_duration_human(30s), "30.0s");
  EXPECT_EQ(format_duration_human(59940ms), "59.9s");
}

TEST(FormatDurationHuman, ShowsMinutesAndSecondsBelowAnHour) {
  EXPECT_EQ(format_duration_human(59960ms), "1m0s");
  EXPECT_EQ(format_duration_human(60s), "1m0s");
  EXPECT_EQ(format_duration_human(12min + 3s), "12m3s");
  EXPECT_EQ(format_duration_human(12min + 3400ms), "12m3s");
  EXPECT_EQ(format_duration_human(59min + 59s), "59m59s");
}

TEST(FormatDurationHuman, ShowsHoursAndMinutesFromAnHour) {
  EXPECT_EQ(format_duration_human(3599600ms), "1h0m");
  EXPECT_EQ(format_duration_human(1h), "1h0m");
  EXPECT_EQ(format_duration_human(2h + 5min), "2h5m");
  EXPECT_EQ(format_duration_human(2h + 5min + 29s), "2h5m");
  EXPECT_EQ(format_duration_human(2h + 5min + 30s), "2h6m");
  EXPECT_EQ(format_duration_human(100h), "100h0m");
}

TEST(FormatDurationHuman, MarksNegativeAndAbsurdValues) {
  EXPECT_EQ(format_duration_human(-1500ms), "-1.5s");
  EXPECT_EQ(format_duration_human(std::chrono::duration<double>(1e300)), "inf");
  EXPECT_EQ(format_duration_human(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())),
            "?");
}

}  // namespace
}  // namespace clusterd
