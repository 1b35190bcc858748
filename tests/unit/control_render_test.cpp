// What the client subcommands print for people: the status table and the one-line answers.
#include "control_render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <string>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;
using ::testing::Not;

Json status_json() {
  InstanceStatus status;
  status.name = "shop";
  status.pid = 4100;
  status.version = "0.1.0";
  status.config = "/etc/clusterd/shop.toml";
  status.listeners = {{"http", "127.0.0.1:8000", 3}};
  StatusSnapshot& snapshot = status.snapshot;
  snapshot.generation = 2;
  snapshot.workers_wanted = 3;
  snapshot.workers_ready = 1;
  SlotStatus ready;
  ready.slot = 0;
  ready.workers = {WorkerStatus{{0, 2, 7}, 4121, WorkerState::ready, 192s, std::nullopt, std::nullopt}};
  SlotStatus backoff;
  backoff.slot = 1;
  backoff.state = SlotState::backoff;
  backoff.restarts = 3;
  backoff.last_exit = ExitCode{1};
  backoff.next_restart_in = 1600ms;
  SlotStatus starting;
  starting.slot = 12;
  starting.restarts = 1;
  starting.last_exit = KilledBySignal{SIGKILL};
  starting.workers = {WorkerStatus{{12, 2, 9}, 41234, WorkerState::starting, 400ms, std::nullopt, std::nullopt}};
  snapshot.slots = {ready, backoff, starting};
  status.costs[4121] = WorkerCost{1.23, ProcessTreeCost{2.5, 60 << 20, 24536678, 2}, std::nullopt};            // PSS shown
  status.costs[41234] = WorkerCost{37.25, ProcessTreeCost{0.2, 812 << 10, std::nullopt, 1}, std::nullopt};  // else RSS
  return Json::parse(status_reply(status));
}

TEST(ControlRender, StatusTableWithAlignedColumns) {
  EXPECT_EQ(render_status(status_json()),
            "shop: pid 4100, generation 2, 1/3 workers ready (clusterd 0.1.0)\n"
            "  listening: http 127.0.0.1:8000 (fd 3)\n"
            "  config:    /etc/clusterd/shop.toml\n"
            "\n"
            "SLOT  PID    GEN  STATE           UPTIME  CPU   MEM    RESTARTS  LAST EXIT\n"
            "0     4121   2    ready           3m12s   1.2%  23.4M  0         -\n"
            "1     -      -    backoff (1.6s)  -       -     -      3         code 1\n"
            "12    41234  2    starting        0.4s    37%   812K   1         signal KILL\n");
}

TEST(ControlRender, NoLineEndsInBlanks) {
  const std::string text = render_status(status_json());
  EXPECT_THAT(text, Not(HasSubstr(" \n")));
}

TEST(ControlRender, StatusColumnOnlyWhenAWorkerReportsOne) {
  Json reply = status_json();
  EXPECT_THAT(render_status(reply), Not(HasSubstr("STATUS")));
  reply["workers"][0]["notify_status"] = "warming up \x1b[31m";
  const std::string text = render_status(reply);
  EXPECT_THAT(text, HasSubstr("LAST EXIT    STATUS\n"));
  // A worker's own text reaches the terminal with its control characters escaped.
  EXPECT_THAT(text, HasSubstr("warming up \\x1b[31m\n"));
  EXPECT_THAT(text, HasSubstr("code 1       -\n"));
}

TEST(ControlRender, ExecErrorReloadAndStopInTheHeader) {
  InstanceStatus status;
  status.name = "api";
  status.pid = 7;
  status.version = "0.1.0";
  status.snapshot.generation = 4;
  status.snapshot.workers_wanted = 1;
  status.snapshot.reloading_to = 5;
  status.snapshot.stopping = true;
  SlotStatus slot;
  slot.state = SlotState::backoff;
  slot.last_exit = StartFailure{"exec", ENOENT};
  slot.next_restart_in = 30s;
  status.snapshot.slots = {slot};
  const std::string text = render_status(Json::parse(status_reply(status)));
  EXPECT_THAT(text, HasSubstr("api: pid 7, generation 4, 0/1 workers ready, reloading to generation 5, stopping "
                              "(clusterd 0.1.0)\n"));
  EXPECT_THAT(text, HasSubstr("  listening: nothing\n  config:    none (command line only)\n"));
  EXPECT_THAT(text, HasSubstr("backoff (30.0s)  -       -    -    0         exec error: No such file or directory\n"));
}

TEST(ControlRender, MissingOrStrangeFieldsAreDashes) {
  const Json reply = Json::parse(R"({"ok":true,"name":"x","workers":[{"slot":0,"state":"ready","extra":1}]})");
  EXPECT_EQ(render_status(reply),
            "x: pid -, generation - (clusterd -)\n"
            "  listening: nothing\n"
            "  config:    none (command line only)\n"
            "\n"
            "SLOT  PID  GEN  STATE  UPTIME  CPU  MEM  RESTARTS  LAST EXIT\n"
            "0     -    -    ready  -       -    -    -         -\n");
  EXPECT_THAT(render_status(Json::parse(R"({"ok":true,"name":"x","workers":[]})")), HasSubstr("\nno workers\n"));
}

// Any field may hold anything a server or a worker chose: nothing of it reaches the terminal as a
// control sequence or a bidirectional override.
TEST(ControlRender, EveryFieldIsShownEscaped) {
  const std::string evil = "a\x1b]0;t\x07\u009b2J\u202eb\x7f";
  const std::string shown = "a\\x1b]0;t\\x07\\u009b2J\\u202eb\\x7f";
  Json reply = status_json();
  for (const char* key : {"name", "version", "config"}) {
    reply[key] = evil;
  }
  reply["pid"] = Json::array({evil});
  reply["listeners"][0]["name"] = evil;
  reply["listeners"][0]["address"] = evil;
  reply["workers"][0]["state"] = evil;
  reply["workers"][0]["notify_status"] = evil;
  reply["workers"][1]["last_exit"] = {{"exec_error", evil}};
  reply["workers"][2]["last_exit"] = {{"other", evil}};
  const std::string text = render_status(reply);
  for (const char raw : {'\x1b', '\x07', '\x7f'}) {
    EXPECT_EQ(text.find(raw), std::string::npos) << static_cast<int>(raw);
  }
  EXPECT_THAT(text, Not(HasSubstr("\u009b")));
  EXPECT_THAT(text, Not(HasSubstr("\u202e")));
  // Not a string: its JSON form, where the C0 controls are JSON escapes already.
  EXPECT_THAT(text, HasSubstr(shown + R"(: pid ["a\u001b]0;t\u0007\u009b2J\u202eb\x7f"], generation 2)"));
  EXPECT_THAT(text, HasSubstr("  listening: " + shown + " " + shown + " (fd 3)\n"));
  EXPECT_THAT(text, HasSubstr("  config:    " + shown + "\n"));
  EXPECT_THAT(text, HasSubstr("exec error: " + shown));
  EXPECT_THAT(text, HasSubstr("STATUS\n"));

  const Json reload = {{"ok", true}, {"generation", 2}, {"restart_needed", {evil, 7}}};
  EXPECT_EQ(render_reply(ReloadRequest{}, reload),
            "reload finished: generation 2\nnot applied until clusterd restarts: " + shown + ", 7\n");
}

// A reply of an older, newer or strange server: wrong types are "-" or their JSON, never a throw.
TEST(ControlRender, WrongTypesNeverThrow) {
  const char* replies[] = {
      R"({"ok":true,"stopping":"yes","workers_ready":"2","workers_wanted":[1]})",
      R"({"ok":true,"stopping":0})",  // found by tests/fuzz's control target: once a type_error
      R"({"ok":true,"workers":[1,"x",null,[],{"last_exit":"code"},{"last_exit":{"code":{"a":1}}}]})",
      R"({"ok":true,"workers":{"slot":0},"listeners":"http"})",
      R"({"ok":true,"listeners":[1,null,{"fd":"3","reuseport":"per-slot","sockets":{}}]})",
      R"({"ok":true,"workers":[{"uptime_s":1e308,"next_restart_in_s":-1e308,"notify_status":{"x":"\u001b"}}]})",
      R"({"ok":true,"generation":18446744073709551615,"restart_needed":"log.file"})",
      R"({"ok":true,"restart_needed":[null,{"k":[]},1.5]})",
      R"({"ok":true,"version":[],"restarted":"1"})",
      R"({"ok":true,"restarted":[null,{"a":1},"\u001b"]})",
  };
  for (const char* text : replies) {
    const Json reply = Json::parse(text);
    EXPECT_NO_THROW(render_status(reply)) << text;
    for (const Request& request : {Request{StatusRequest{}}, Request{ReloadRequest{}}, Request{ScaleRequest{2}},
                                   Request{RestartRequest{}}, Request{StopRequest{}}, Request{MetricsRequest{}},
                                   Request{UpgradeRequest{}}}) {
      EXPECT_NO_THROW(render_reply(request, reply)) << text;
    }
  }
  EXPECT_THAT(render_status(Json::parse(replies[5])), HasSubstr("{\"x\":\"\\u001b\"}"));
  EXPECT_NO_THROW(render_status(Json::array()));
  EXPECT_NO_THROW(render_status(Json(nullptr)));
}

TEST(ControlRender, AnUpgradeSaysWhatItKeptAndWhatItStartedAnew) {
  EXPECT_EQ(render_reply(UpgradeRequest{}, Json::parse(upgrade_reply(42, "0.2.0", "0.1.0", 8, {}))),
            "upgraded in place to 0.2.0 (from 0.1.0): pid 42, 8 workers kept\n");
  EXPECT_EQ(render_reply(UpgradeRequest{}, Json::parse(upgrade_reply(42, "0.2.0", "0.1.0", 6, {1, 5}))),
            "upgraded in place to 0.2.0 (from 0.1.0): pid 42, 6 workers kept\n"
            "not taken over, started anew: slot 1, 5 (the log says why)\n");
}

TEST(ControlRender, MetricsAreShownAsSentWithControlsEscaped) {
  EXPECT_EQ(render_reply(MetricsRequest{}, Json::parse(metrics_reply("# HELP a b\na 1\n"))), "# HELP a b\na 1\n");
  EXPECT_EQ(render_reply(MetricsRequest{}, Json::parse(R"({"ok":true,"metrics":"a\u001b[2J 1\n"})")),
            "a\\x1b[2J 1\n");
  EXPECT_EQ(render_reply(MetricsRequest{}, Json::parse(R"({"ok":true,"metrics":7})")), "-\n");
}

TEST(ControlRender, OneLineAnswers) {
  EXPECT_EQ(render_reply(ReloadRequest{}, Json::parse(reload_reply(true, 3, ""))), "reload finished: generation 3\n");
  EXPECT_EQ(render_reply(ScaleRequest{4}, Json::parse(scale_reply(4))), "workers wanted: 4\n");
  EXPECT_EQ(render_reply(StopRequest{}, Json::parse(ok_reply())), "");
  EXPECT_THAT(render_reply(StatusRequest{}, status_json()), HasSubstr("SLOT"));
}

}  // namespace
}  // namespace clusterd
