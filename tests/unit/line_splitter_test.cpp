// Whole lines out of a byte stream, over-long lines cut, the prefix format.
#include "line_splitter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class Collect {
 public:
  LineSplitter::Emit emit() {
    return [this](std::string_view line) { lines.emplace_back(line); };
  }
  std::vector<std::string> lines;
};

TEST(LineSplitter, EmitsEachCompleteLineWithoutItsNewline) {
  LineSplitter splitter;
  Collect out;
  splitter.feed("one\ntwo\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("one", "two"));
}

TEST(LineSplitter, HalfALineWaitsForTheRest) {
  LineSplitter splitter;
  Collect out;
  splitter.feed("hal", out.emit());
  EXPECT_THAT(out.lines, IsEmpty());
  splitter.feed("f\nnext", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("half"));
}

TEST(LineSplitter, FinishEmitsALastLineWithoutNewline) {
  LineSplitter splitter;
  Collect out;
  splitter.feed("tail", out.emit());
  splitter.finish(out.emit());
  EXPECT_THAT(out.lines, ElementsAre("tail"));
  splitter.finish(out.emit());
  EXPECT_EQ(out.lines.size(), 1u);
}

TEST(LineSplitter, LongLinesAreCutAtTheLimit) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("abcdefghij\nxy\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("abcd", "efgh", "ij", "xy"));
}

TEST(LineSplitter, ALineOfExactlyTheLimitIsOneLine) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("abcd\nef\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("abcd", "ef"));
}

// The newline of a line cut at exactly the limit may come in a later read: it ends that line,
// it is not an empty line of its own.
TEST(LineSplitter, ANewlineInTheNextReadEndsALineCutAtTheLimit) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("abcd", out.emit());
  splitter.feed("\nef\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("abcd", "ef"));
}

TEST(LineSplitter, ANewlineInTheNextReadEndsTheLastPieceOfALongLine) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("abcdefgh", out.emit());
  splitter.feed("\n", out.emit());
  splitter.feed("\n", out.emit());  // a real empty line after it is kept
  EXPECT_THAT(out.lines, ElementsAre("abcd", "efgh", ""));
}

TEST(LineSplitter, APieceCompletedAcrossReadsThenItsNewline) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("ab", out.emit());
  splitter.feed("cd", out.emit());
  splitter.feed("\nx\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("abcd", "x"));
}

TEST(LineSplitter, FinishAfterACutEmitsNothingMore) {
  LineSplitter splitter(4);
  Collect out;
  splitter.feed("abcd", out.emit());
  splitter.finish(out.emit());
  EXPECT_THAT(out.lines, ElementsAre("abcd"));
}

TEST(LineSplitter, EmptyLinesAreKept) {
  LineSplitter splitter;
  Collect out;
  splitter.feed("\n\nx\n", out.emit());
  EXPECT_THAT(out.lines, ElementsAre("", "", "x"));
}

TEST(LineSplitter, PrefixNamesSlotAndPid) {
  EXPECT_EQ(prefixed_line(3, 4121, "listening"), "[3 4121] listening\n");
}

}  // namespace
}  // namespace clusterd
