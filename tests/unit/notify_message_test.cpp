// sd_notify datagrams as workers send them: flags, values, the first-occurrence rule, and the
// lines that are skipped.
#include "notify_message.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

TEST(NotifyMessage, ReadyWithStatusAsGunicornSendsIt) {
  const NotifyMessage message = parse_notify_message("READY=1\nSTATUS=Gunicorn arbiter booted\n");
  EXPECT_TRUE(message.ready);
  EXPECT_EQ(message.status, "Gunicorn arbiter booted");
  EXPECT_FALSE(message.stopping);
  EXPECT_FALSE(message.watchdog);
}

TEST(NotifyMessage, TrailingNewlineIsOptional) {
  EXPECT_TRUE(parse_notify_message("READY=1").ready);
  EXPECT_TRUE(parse_notify_message("STATUS=x\nREADY=1").ready);
}

TEST(NotifyMessage, EveryFlagIsReadFromItsExactLine) {
  const NotifyMessage message =
      parse_notify_message("STOPPING=1\nRELOADING=1\nWATCHDOG=1\nWATCHDOG=trigger\nMAINPID=4242\n");
  EXPECT_FALSE(message.ready);
  EXPECT_TRUE(message.stopping);
  EXPECT_TRUE(message.reloading);
  EXPECT_TRUE(message.watchdog);
  EXPECT_TRUE(message.watchdog_trigger);
  EXPECT_TRUE(message.mainpid);
}

TEST(NotifyMessage, FlagValuesOtherThanTheDocumentedOneAreNothing) {
  const NotifyMessage message = parse_notify_message("READY=yes\nREADY=0\nready=1\nREADY=1 \nWATCHDOG=2\n");
  EXPECT_EQ(message, NotifyMessage{});
}

TEST(NotifyMessage, AFlagAnywhereCountsEvenAfterAnotherValue) {
  EXPECT_TRUE(parse_notify_message("READY=0\nREADY=1\n").ready);
}

TEST(NotifyMessage, ExtendTimeoutIsInMicroseconds) {
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=5000000").extend_timeout, 5s);
}

TEST(NotifyMessage, ExtendTimeoutOfUint64MaxMeansForever) {
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=18446744073709551615").extend_timeout,
            std::chrono::microseconds::max());
}

TEST(NotifyMessage, UnparsableNumbersAreSkipped) {
  const NotifyMessage message =
      parse_notify_message("EXTEND_TIMEOUT_USEC=-1\nERRNO=-5\nEXTEND_TIMEOUT_USEC=1s\nERRNO=abc\n");
  EXPECT_EQ(message.extend_timeout, std::nullopt);
  EXPECT_EQ(message.errno_value, std::nullopt);
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=").extend_timeout, std::nullopt);
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC= 5").extend_timeout, std::nullopt);
  EXPECT_EQ(parse_notify_message("ERRNO=99999999999").errno_value, std::nullopt);
}

TEST(NotifyMessage, ErrnoAsSystemdNotifySendsAfterAFailedBarrier) {
  EXPECT_EQ(parse_notify_message("ERRNO=110").errno_value, 110);
}

TEST(NotifyMessage, TheFirstOccurrenceOfAValuedKeyDecidesEvenWhenInvalid) {
  EXPECT_EQ(parse_notify_message("STATUS=one\nSTATUS=two\n").status, "one");
  EXPECT_EQ(parse_notify_message("ERRNO=x\nERRNO=5\n").errno_value, std::nullopt);
}

TEST(NotifyMessage, EmptyStatusIsAStatus) { EXPECT_EQ(parse_notify_message("STATUS=\n").status, ""); }

TEST(NotifyMessage, StatusKeepsEqualsSignsAndUtf8) {
  EXPECT_EQ(parse_notify_message("STATUS=a=b \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80").status,
            "a=b \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(NotifyMessage, StatusThatIsNotUtf8IsDropped) {
  EXPECT_EQ(parse_notify_message("STATUS=\xFF").status, std::nullopt);
  EXPECT_EQ(parse_notify_message("STATUS=\xC3").status, std::nullopt);              // cut short
  EXPECT_EQ(parse_notify_message("STATUS=\xC0\xAF").status, std::nullopt);          // overlong '/'
  EXPECT_EQ(parse_notify_message("STATUS=\xED\xA0\x80").status, std::nullopt);      // surrogate
  EXPECT_EQ(parse_notify_message("STATUS=\xF4\x90\x80\x80").status, std::nullopt);  // > U+10FFFF
}

TEST(NotifyMessage, IgnoredKeysLeaveEverythingUnset) {
  EXPECT_EQ(parse_notify_message("BARRIER=1\n"), NotifyMessage{});
  EXPECT_EQ(parse_notify_message("MONOTONIC_USEC=123456\nX_APP=1\nFDSTORE=1\nFDNAME=a\n"), NotifyMessage{});
}

TEST(NotifyMessage, MalformedLinesAreSkippedAndTheRestIsRead) {
  const NotifyMessage message = parse_notify_message("garbage\n=1\n\nREADY=1\n\nSTATUS=ok");
  EXPECT_TRUE(message.ready);
  EXPECT_EQ(message.status, "ok");
}

TEST(NotifyMessage, ALineWithNulIsSkipped) {
  const NotifyMessage message = parse_notify_message("STATUS=a\0b\nREADY=1\0\nWATCHDOG=1"s);
  EXPECT_EQ(message.status, std::nullopt);
  EXPECT_FALSE(message.ready);
  EXPECT_TRUE(message.watchdog);
}

TEST(NotifyMessage, EmptyDatagramIsEmptyMessage) {
  EXPECT_EQ(parse_notify_message(""), NotifyMessage{});
  EXPECT_EQ(parse_notify_message("\n\n"), NotifyMessage{});
}

}  // namespace
}  // namespace clusterd
