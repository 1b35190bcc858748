// VmRSS out of /proc/<pid>/status text.
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

}  // namespace
}  // namespace clusterd
