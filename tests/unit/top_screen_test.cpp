// The screen of `clusterd top`: totals, layout, and cutting to the window.
#include "top_screen.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::ElementsAre;

// A status reply as clusterd sends it (control_protocol.h), two workers and a slot in backoff.
Json reply() {
  return Json::parse(R"({"ok":true,"name":"shop","pid":4100,"version":"0.1.0","generation":2,"config":null,
    "workers_wanted":3,"workers_ready":2,"reloading_to":null,"stopping":false,"listeners":[],
    "workers":[
      {"slot":0,"pid":4121,"generation":2,"state":"ready","uptime_s":192,"restarts":0,"last_exit":null,
       "cpu_percent":1.25,"cpu_s":2.5,"rss_bytes":62914560,"pss_bytes":24536678,"processes":2},
      {"slot":1,"pid":4122,"generation":2,"state":"ready","uptime_s":3,"restarts":1,"last_exit":{"code":1},
       "cpu_percent":10,"cpu_s":0.2,"rss_bytes":831488,"pss_bytes":null,"processes":1},
      {"slot":2,"pid":null,"generation":null,"state":"backoff","uptime_s":null,"restarts":3,
       "last_exit":{"signal":"KILL"},"next_restart_in_s":1.6,"cpu_percent":null,"cpu_s":null,
       "rss_bytes":null,"pss_bytes":null,"processes":null}]})");
}

TEST(TopScreen, TotalsAddWhatEachWorkerCosts) {
  const PoolTotals totals = pool_totals(reply());
  EXPECT_DOUBLE_EQ(*totals.cpu_percent, 11.25);
  EXPECT_DOUBLE_EQ(*totals.memory_bytes, 24536678.0 + 831488.0);  // PSS, else RSS
  EXPECT_EQ(totals.processes, 3);
  EXPECT_EQ(totals_line(reply()), "workers 2/3 ready, CPU 11%, memory 24.2M, 3 processes; reload: none");
}

TEST(TopScreen, TotalsWithoutCostsAreDashes) {
  Json status = reply();
  status["workers"] = Json::array();
  EXPECT_EQ(totals_line(status), "workers 2/3 ready, CPU -, memory -, 0 processes; reload: none");
  status["reloading_to"] = 3;
  EXPECT_EQ(totals_line(status), "workers 2/3 ready, CPU -, memory -, 0 processes; reload: to generation 3");
}

TEST(TopScreen, FillsTheWindowWithTheMessageAndFooterAtTheBottom) {
  const auto lines = top_screen(reply(), "reload finished: generation 3", "q quit", {10, 200});
  EXPECT_THAT(lines, ElementsAre("shop: pid 4100, generation 2, 2/3 workers ready (clusterd 0.1.0)",
                                 "workers 2/3 ready, CPU 11%, memory 24.2M, 3 processes; reload: none", "",
                                 "SLOT  PID   GEN  STATE           UPTIME  CPU   MEM    RESTARTS  LAST EXIT",
                                 "0     4121  2    ready           3m12s   1.2%  23.4M  0         -",
                                 "1     4122  2    ready           3.0s    10%   812K   1         code 1",
                                 "2     -     -    backoff (1.6s)  -       -     -      3         signal KILL", "",
                                 "reload finished: generation 3", "q quit"));
}

TEST(TopScreen, RowsThatDoNotFitAreCounted) {
  const auto lines = top_screen(reply(), "", "q quit", {7, 200});
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[3], "SLOT  PID   GEN  STATE           UPTIME  CPU   MEM    RESTARTS  LAST EXIT");
  EXPECT_EQ(lines[4], "... 3 more lines (a taller window shows them)");
  EXPECT_EQ(lines[6], "q quit");
}

TEST(TopScreen, LinesAreCutToTheWidth) {
  const auto lines = top_screen(reply(), "a message", "q quit", {10, 8});
  for (const std::string& line : lines) {
    EXPECT_LE(line.size(), 8u) << line;
  }
  EXPECT_EQ(lines[0], "shop: pi");
  EXPECT_EQ(lines[4], "0     41");
}

TEST(TopScreen, ATinyWindowKeepsTheFooter) {
  EXPECT_THAT(top_screen(reply(), "message", "q quit", {1, 80}), ElementsAre("q quit"));
  EXPECT_THAT(top_screen(reply(), "message", "q quit", {2, 80}), ElementsAre("message", "q quit"));
}

TEST(TopScreen, BeforeTheFirstReplyOnlyTheMessage) {
  EXPECT_THAT(top_screen(std::nullopt, "asking", "q quit", {3, 80}), ElementsAre("", "asking", "q quit"));
}

TEST(TopScreen, CutsByCodePointsNotBytes) {
  EXPECT_EQ(fit_to_width("h\xc3\xa9llo", 2), "h\xc3\xa9");
  EXPECT_EQ(fit_to_width("h\xc3\xa9llo", 10), "h\xc3\xa9llo");
  EXPECT_EQ(fit_to_width("abc", 0), "");
}

}  // namespace
}  // namespace clusterd
