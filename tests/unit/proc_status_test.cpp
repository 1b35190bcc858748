// What /proc/<pid>/status, stat, smaps_rollup and children texts say.
#include "proc_status.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

TEST(ProcStatus, ReadsVmRssInBytes) {
  const std::string_view text =
      "Name:\tpython3\nState:\tS (sleeping)\nVmPeak:\t  30000 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
  EXPECT_EQ(parse_vm_rss(text), 12345u * 1024u);
}

TEST(ProcStatus, MissingLineIsNoValue) {
  EXPECT_EQ(parse_vm_rss("Name:\tkthreadd\nState:\tS (sleeping)\n"), std::nullopt);
}

TEST(ProcStatus, MalformedValueIsNoValue) {
  EXPECT_EQ(parse_vm_rss("VmRSS:\t  12x kB\n"), std::nullopt);
  EXPECT_EQ(parse_vm_rss("VmRSS:\t  12 MB\n"), std::nullopt);
}

TEST(ProcStatus, LastLineWithoutNewlineIsRead) {
  EXPECT_EQ(parse_vm_rss("VmRSS:\t1 kB"), 1024u);
}

TEST(ProcStatus, PssOfSmapsRollup) {
  const std::string rollup =
      "55d0c0a00000-7ffd1c9f2000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:               12288 kB\nPss:                4096 kB\nPss_Anon:           1024 kB\n";
  EXPECT_EQ(parse_pss(rollup), 4096U * 1024);
  EXPECT_EQ(parse_pss("Pss_Anon:   1024 kB\n"), std::nullopt);
}

// The command name may hold spaces and parentheses: fields are counted after the last ')'.
TEST(ProcStatus, StatGivesParentCpuTicksThreadsAndRss) {
  const auto stat = parse_proc_stat(
      "4121 (my (odd) srv) S 4100 4121 4121 0 -1 4194560 812 0 0 0 250 17 0 0 20 -5 3 0 "
      "1234 10000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent, 4100);
  EXPECT_EQ(stat->cpu_ticks, 267U);
  EXPECT_EQ(stat->threads, 3);
  EXPECT_EQ(stat->rss_pages, 300U);
}

TEST(ProcStatus, StatEndingAtRssIsRead) {
  const auto stat = parse_proc_stat("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 4 5 0 0 20 0 1 0 99 0 12");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->cpu_ticks, 9U);
  EXPECT_EQ(stat->rss_pages, 12U);
}

TEST(ProcStatus, StatWithAFieldMissingOrNotANumberIsNoValue) {
  EXPECT_EQ(parse_proc_stat("4121 (srv) S 4100"), std::nullopt);
  EXPECT_EQ(parse_proc_stat("no name at all"), std::nullopt);
  EXPECT_EQ(parse_proc_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 -5 2 0 0 20 0 1 0 99 0 12"), std::nullopt);
  EXPECT_EQ(parse_proc_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 5 2 0 0 20 0 1 0 99 0 12x"), std::nullopt);
  EXPECT_EQ(parse_proc_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 5 2 0 0 20 0 1 0 99 0"), std::nullopt);
}

TEST(ProcStatus, ChildrenAreTheNumbersListed) {
  EXPECT_EQ(parse_children("4101 4102 "), (std::vector<int>{4101, 4102}));
  EXPECT_EQ(parse_children(""), std::vector<int>{});
  EXPECT_EQ(parse_children("7 x 0 -3 9"), (std::vector<int>{7, 9}));
}

}  // namespace
}  // namespace clusterd
