// The keys of `clusterd top` and its restart prompt.
#include "top_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(TopKeys, EachKeyMakesItsAction) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("r+-=_"), ElementsAre(TopAction{TopReload{}}, TopAction{TopScale{+1}}, TopAction{TopScale{-1}},
                                              TopAction{TopScale{+1}}, TopAction{TopScale{-1}}));
  EXPECT_THAT(keys.feed("q"), ElementsAre(TopAction{TopQuit{}}));
  EXPECT_THAT(keys.feed("\x03"), ElementsAre(TopAction{TopQuit{}}));
  EXPECT_THAT(keys.feed("\x1c"), ElementsAre(TopAction{TopQuit{}}));
}

TEST(TopKeys, UnboundKeysDoNothing) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("xyz 12\r\n"), IsEmpty());
  EXPECT_EQ(keys.prompt(), "");
}

TEST(TopKeys, ArrowsAndFunctionKeysAreSkippedWhole) {
  TopKeys keys;
  // Up, F5 (CSI 15~), SS3 F1, Alt+r: none of their bytes is a key, 'r' in Alt+r included.
  EXPECT_THAT(keys.feed("\x1b[A\x1b[15~\x1bOP\x1br"), IsEmpty());
  EXPECT_THAT(keys.feed("\x1b[1;5Cr"), ElementsAre(TopAction{TopReload{}}));
}

TEST(TopKeys, RestartNeedsTheSlotThenY) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("R"), IsEmpty());
  EXPECT_THAT(keys.prompt(), HasSubstr("restart slot: _"));
  EXPECT_THAT(keys.feed("12"), IsEmpty());
  EXPECT_THAT(keys.prompt(), HasSubstr("restart slot: 12_"));
  EXPECT_THAT(keys.feed("y"), ElementsAre(TopAction{TopRestart{12}}));
  EXPECT_EQ(keys.prompt(), "");
}

TEST(TopKeys, InThePromptOtherKeysAreNotCommands) {
  TopKeys keys;
  // 'r' and 'q' cancel the prompt, they do not reload or quit.
  EXPECT_THAT(keys.feed("R1r"), ElementsAre(TopAction{TopCancelled{}}));
  EXPECT_THAT(keys.feed("R1q"), ElementsAre(TopAction{TopCancelled{}}));
  EXPECT_THAT(keys.feed("q"), ElementsAre(TopAction{TopQuit{}}));
}

TEST(TopKeys, BackspaceEditsTheSlot) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("R13\x7f"), IsEmpty());
  EXPECT_THAT(keys.prompt(), HasSubstr("restart slot: 1_"));
  EXPECT_THAT(keys.feed("\b\b2y"), ElementsAre(TopAction{TopRestart{2}}));
}

TEST(TopKeys, YWithoutASlotCancels) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("Ry"), ElementsAre(TopAction{TopCancelled{}}));
}

TEST(TopKeys, EscAloneCancelsThePromptButAnArrowDoesNot) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("R3"), IsEmpty());
  EXPECT_THAT(keys.feed("\x1b[D"), IsEmpty());
  EXPECT_THAT(keys.prompt(), HasSubstr("restart slot: 3_"));
  EXPECT_THAT(keys.feed("\x1b"), ElementsAre(TopAction{TopCancelled{}}));
  EXPECT_EQ(keys.prompt(), "");
}

TEST(TopKeys, CtrlCQuitsFromThePrompt) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("R4\x03"), ElementsAre(TopAction{TopQuit{}}));
}

TEST(TopKeys, AtMostFourDigits) {
  TopKeys keys;
  EXPECT_THAT(keys.feed("R409512y"), ElementsAre(TopAction{TopRestart{4095}}));
}

}  // namespace
}  // namespace clusterd
