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

// The lines of `stream` fed in reads cut where `cuts` (a bit per gap between bytes) says.
std::vector<std::string> lines_when_cut(std::size_t max_line, const std::string& stream, unsigned cuts) {
  LineSplitter splitter(max_line);
  Collect out;
  std::size_t start = 0;
  for (std::size_t gap = 1; gap <= stream.size(); ++gap) {
    if (gap == stream.size() || (cuts >> (gap - 1) & 1U) != 0) {
      splitter.feed(std::string_view(stream).substr(start, gap - start), out.emit());
      start = gap;
    }
  }
  splitter.finish(out.emit());
  return out.lines;
}

// The property the fuzz target line_splitter checks, here exhaustively for short streams: every
// stream of up to 7 bytes over {a, b, \n}, every max_line from 1 to 4, every way of cutting it
// into reads give the same lines as one read (max_line 1, "a\n" byte by byte once gave [a][]).
TEST(LineSplitter, TheLinesAreTheSameHoweverTheStreamIsCutIntoReads) {
  const std::string alphabet = "ab\n";
  for (std::size_t length = 1; length <= 7; ++length) {
    std::size_t streams = 1;
    for (std::size_t i = 0; i < length; ++i) {
      streams *= alphabet.size();
    }
    for (std::size_t code = 0; code < streams; ++code) {
      std::string stream;
      for (std::size_t rest = code, i = 0; i < length; ++i, rest /= alphabet.size()) {
        stream += alphabet[rest % alphabet.size()];
      }
      for (std::size_t max_line = 1; max_line <= 4; ++max_line) {
        const auto whole = lines_when_cut(max_line, stream, 0);
        for (unsigned cuts = 1; cuts < (1U << (length - 1)); ++cuts) {
          ASSERT_EQ(lines_when_cut(max_line, stream, cuts), whole)
              << "max_line " << max_line << ", stream \"" << stream << "\", cuts " << cuts;
        }
      }
    }
  }
}

TEST(LineSplitter, PrefixNamesSlotAndPid) {
  EXPECT_EQ(prefixed_line(3, 4121, "listening"), "[3 4121] listening\n");
}

}  // namespace
}  // namespace clusterd
