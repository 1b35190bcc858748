// RecentOutput: each slot keeps its last lines, bounded by count and by bytes; the last N of one
// slot or of all come back in the order they were read.
#include "recent_output.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace clusterd {
namespace {

std::vector<std::string> texts(const std::vector<const RecentLine*>& lines) {
  std::vector<std::string> out;
  for (const RecentLine* line : lines) {
    out.push_back(std::to_string(line->slot) + ":" + line->text);
  }
  return out;
}

TEST(RecentOutput, EachSlotKeepsItsLastLines) {
  RecentOutput recent(3);
  for (int index = 0; index < 5; ++index) {
    recent.add(0, 100, 1, 1.0, "a" + std::to_string(index));
    recent.add(1, 101, 2, 1.0, "b" + std::to_string(index));
  }
  EXPECT_EQ(texts(recent.last(100, 0)), (std::vector<std::string>{"0:a2", "0:a3", "0:a4"}));
  EXPECT_EQ(texts(recent.last(2, 1)), (std::vector<std::string>{"1:b3", "1:b4"}));
  // Every slot: in the order read, across slots, the last N of them.
  EXPECT_EQ(texts(recent.last(100, std::nullopt)),
            (std::vector<std::string>{"0:a2", "1:b2", "0:a3", "1:b3", "0:a4", "1:b4"}));
  EXPECT_EQ(texts(recent.last(3, std::nullopt)), (std::vector<std::string>{"1:b3", "0:a4", "1:b4"}));
  EXPECT_TRUE(recent.last(0, std::nullopt).empty());
  EXPECT_TRUE(recent.last(10, 2).empty());
  EXPECT_FALSE(recent.has_slot(2));
}

TEST(RecentOutput, AddReturnsTheLineWithItsSequence) {
  RecentOutput recent(10);
  const RecentLine& first = recent.add(2, 7, 2, 12.5, "x");
  EXPECT_EQ(first.sequence, 1u);
  EXPECT_EQ(first.slot, 2);
  EXPECT_EQ(first.pid, 7);
  EXPECT_EQ(first.stream, 2);
  EXPECT_EQ(first.time, 12.5);
  EXPECT_EQ(recent.add(0, 8, 1, 13, "y").sequence, 2u);
}

TEST(RecentOutput, ASlotKeepsAtMostItsBytes) {
  RecentOutput recent(100000);
  const std::string line(4096, 'x');
  for (int index = 0; index < 200; ++index) {
    recent.add(0, 1, 1, 0, line);
  }
  EXPECT_EQ(recent.last(100000, 0).size(),
            RecentOutput::bytes_per_slot / (line.size() + RecentOutput::line_overhead));
  // Empty lines count too: a flood of them is bounded as well.
  RecentOutput empty(100000);
  for (int index = 0; index < 100000; ++index) {
    empty.add(0, 1, 1, 0, "");
  }
  EXPECT_EQ(empty.last(100000, 0).size(), RecentOutput::bytes_per_slot / RecentOutput::line_overhead);
}

TEST(RecentOutput, ALowerLimitTrimsNowAndZeroKeepsNothing) {
  RecentOutput recent(5);
  for (int index = 0; index < 5; ++index) {
    recent.add(0, 1, 1, 0, std::to_string(index));
  }
  recent.set_limit(2);
  EXPECT_EQ(texts(recent.last(10, 0)), (std::vector<std::string>{"0:3", "0:4"}));
  recent.set_limit(0);
  EXPECT_TRUE(recent.last(10, std::nullopt).empty());
  EXPECT_FALSE(recent.has_slot(0));
  const RecentLine& unkept = recent.add(0, 1, 1, 0, "still given back");
  EXPECT_EQ(unkept.text, "still given back");
  EXPECT_TRUE(recent.last(10, std::nullopt).empty());
}

}  // namespace
}  // namespace clusterd
