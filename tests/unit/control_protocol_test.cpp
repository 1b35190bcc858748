// Control protocol: request lines in (good, junk, long, binary), JSON reply lines out (fields,
// escaping, exit reasons, slots without a process), reply lines parsed back.
#include "control_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cerrno>
#include <string>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;

std::string error_of(std::string_view line) {
  const auto parsed = parse_request(line);
  EXPECT_FALSE(parsed.has_value()) << "parsed: " << line;
  return parsed ? std::string() : parsed.error();
}

// ----- requests

TEST(ControlRequest, TheFourRequests) {
  EXPECT_EQ(parse_request("status"), Request{StatusRequest{}});
  EXPECT_EQ(parse_request("status pss"), Request{StatusRequest{true}});
  EXPECT_EQ(parse_request("reload"), Request{ReloadRequest{}});
  EXPECT_EQ(parse_request("stop"), Request{StopRequest{}});
  EXPECT_EQ(parse_request("scale 3"), Request{ScaleRequest{3}});
  EXPECT_EQ(parse_request("scale 1"), Request{ScaleRequest{1}});
  EXPECT_EQ(parse_request("scale 4096"), Request{ScaleRequest{4096}});
}

TEST(ControlRequest, BlanksAndACarriageReturnAreIgnored) {
  EXPECT_EQ(parse_request("status\r"), Request{StatusRequest{}});
  EXPECT_EQ(parse_request("  scale\t 7  "), Request{ScaleRequest{7}});
  EXPECT_EQ(parse_request("scale 0012"), Request{ScaleRequest{12}});
}

TEST(ControlRequest, RequestLineRoundTrips) {
  for (const Request& request : {Request{StatusRequest{}}, Request{StatusRequest{true}}, Request{ReloadRequest{}}, Request{StopRequest{}},
                                 Request{ScaleRequest{12}}, Request{ScaleRequest{-2, true}},
                                 Request{RestartRequest{3}}, Request{RestartRequest{}}, Request{UpgradeRequest{}},
                                 Request{UpgradeRequest{"/usr/bin/clusterd"}}}) {
    EXPECT_EQ(parse_request(request_line(request)), request);
  }
  EXPECT_EQ(request_line(ScaleRequest{5}), "scale 5");
}

TEST(ControlRequest, ScaleOutOfRangeOrNotANumber) {
  const std::string expected = "scale: expected a worker count 1-4096, or +N or -N to change it by N, found ";
  EXPECT_EQ(error_of("scale 0"), expected + "\"0\"");
  EXPECT_EQ(error_of("scale 5000"), expected + "\"5000\"");
  EXPECT_EQ(error_of("scale x"), expected + "\"x\"");
  EXPECT_EQ(error_of("scale -0"), expected + "\"-0\"");
  EXPECT_EQ(error_of("scale +"), expected + "\"+\"");
  EXPECT_EQ(error_of("scale +-1"), expected + "\"+-1\"");
  EXPECT_EQ(error_of("scale 3.5"), expected + "\"3.5\"");
  EXPECT_EQ(error_of("scale 99999999999999999999"), expected + "\"99999999999999999999\"");
  EXPECT_EQ(error_of("scale"), expected + "nothing");
  EXPECT_EQ(error_of("scale 3 4"), expected + "\"3 4\"");
}

TEST(ControlRequest, Upgrade) {
  EXPECT_EQ(parse_request("upgrade"), Request{UpgradeRequest{}});
  EXPECT_EQ(parse_request("upgrade /opt/clusterd-0.2/bin/clusterd"), Request{UpgradeRequest{"/opt/clusterd-0.2/bin/clusterd"}});
  EXPECT_EQ(error_of("upgrade clusterd"), "upgrade: expected nothing or the binary's absolute path, found \"clusterd\"");
  EXPECT_EQ(error_of("upgrade /a /b"), "upgrade: expected nothing or the binary's absolute path, found \"/a /b\"");
  EXPECT_EQ(upgrade_reply(42, "0.2.0", "0.1.0", 8, {3}),
            R"({"ok":true,"pid":42,"version":"0.2.0","from_version":"0.1.0","workers":8,"restarted":[3]})");
}

TEST(ControlRequest, Metrics) {
  EXPECT_EQ(parse_request("metrics"), Request{MetricsRequest{}});
  EXPECT_EQ(request_line(MetricsRequest{}), "metrics");
  EXPECT_EQ(error_of("metrics now"), "metrics takes no argument, found \"now\"");
  EXPECT_EQ(metrics_reply("a 1\n"), R"({"ok":true,"metrics":"a 1\n"})");
}

TEST(ControlRequest, ScaleByN) {
  EXPECT_EQ(parse_request("scale +2"), Request{(ScaleRequest{2, true})});
  EXPECT_EQ(parse_request("scale -1"), Request{(ScaleRequest{-1, true})});
  EXPECT_EQ(parse_request("scale -4096"), Request{(ScaleRequest{-4096, true})});
  EXPECT_EQ(request_line(ScaleRequest{-3, true}), "scale -3");
  EXPECT_EQ(request_line(ScaleRequest{3, true}), "scale +3");
}

TEST(ControlRequest, RestartASlotOrAll) {
  EXPECT_EQ(parse_request("restart 0"), Request{RestartRequest{0}});
  EXPECT_EQ(parse_request("restart 4095"), Request{RestartRequest{4095}});
  EXPECT_EQ(parse_request("restart all"), Request{RestartRequest{}});
  EXPECT_EQ(request_line(RestartRequest{7}), "restart 7");
  EXPECT_EQ(request_line(RestartRequest{}), "restart all");
  const std::string expected = "restart: expected a slot number 0-4095 or all, found ";
  EXPECT_EQ(error_of("restart"), expected + "nothing");
  EXPECT_EQ(error_of("restart 4096"), expected + "\"4096\"");
  EXPECT_EQ(error_of("restart 01"), expected + "\"01\"");
  EXPECT_EQ(error_of("restart -1"), expected + "\"-1\"");
  EXPECT_EQ(error_of("restart ALL"), expected + "\"ALL\"");
  EXPECT_EQ(error_of("restart 1 2"), expected + "\"1 2\"");
  EXPECT_EQ(restart_reply({0, 1}), R"({"ok":true,"slots":[0,1]})");
}

TEST(ControlRequest, LogsOfASlotOrAllWithACountAndFollow) {
  EXPECT_EQ(parse_request("logs"), Request{LogsRequest{}});
  EXPECT_EQ(parse_request("logs follow slot 3 lines 0"), Request{(LogsRequest{3, 0, true})});
  EXPECT_EQ(parse_request("logs lines 100000"), Request{(LogsRequest{std::nullopt, 100000, false})});
  EXPECT_EQ(request_line(LogsRequest{}), "logs");
  EXPECT_EQ(request_line(LogsRequest{2, 50, true}), "logs slot 2 lines 50 follow");
  EXPECT_EQ(parse_request(request_line(LogsRequest{0, 1, false})), Request{(LogsRequest{0, 1, false})});
  EXPECT_EQ(error_of("logs slot"), "logs: slot: expected a slot number 0-4095, found nothing");
  EXPECT_EQ(error_of("logs slot 4096"), "logs: slot: expected a slot number 0-4095, found \"4096\"");
  EXPECT_EQ(error_of("logs lines 100001"), "logs: lines: expected a count 0-100000, found \"100001\"");
  EXPECT_EQ(error_of("logs lines -1"), "logs: lines: expected a count 0-100000, found \"-1\"");
  EXPECT_EQ(error_of("logs follow follow"), "logs: unexpected \"follow\"; expected logs [slot N] [lines N] [follow]");
  EXPECT_EQ(error_of("logs slot 1 slot 2"), "logs: unexpected \"slot\"; expected logs [slot N] [lines N] [follow]");
  EXPECT_EQ(log_line_record(1, 42, 2, 1765056600.1234, "a\xff"),
            std::string(R"({"slot":1,"pid":42,"stream":"stderr","time":1765056600.123,"text":"a)") + "\xEF\xBF\xBD\"}");
  EXPECT_EQ(logs_reply({}), R"({"ok":true,"lines":[]})");
  EXPECT_EQ(logs_reply({log_line_record(0, 7, 1, 2.5, "hi")}),
            R"({"ok":true,"lines":[{"slot":0,"pid":7,"stream":"stdout","time":2.5,"text":"hi"}]})");
  EXPECT_EQ(logs_end_record(), R"({"ok":true,"end":"clusterd stopped"})");
}

TEST(ControlRequest, UnknownWordsAndArguments) {
  EXPECT_EQ(error_of("frob"), "unknown request \"frob\"; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
  EXPECT_EQ(error_of("STATUS"), "unknown request \"STATUS\"; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
  EXPECT_EQ(error_of("status now"), "status takes no argument but pss, found \"now\"");
  EXPECT_EQ(error_of("status pss pss"), "status takes no argument but pss, found \"pss\"");
  EXPECT_EQ(error_of("stop 1"), "stop takes no argument, found \"1\"");
  EXPECT_EQ(error_of(""), "empty request; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
  EXPECT_EQ(error_of("   \t"), "empty request; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
}

TEST(ControlRequest, AnUnknownLongWordIsShownCut) {
  const std::string word(100, 'a');
  EXPECT_EQ(error_of(word), "unknown request \"" + std::string(40, 'a') +
                                "...\"; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
}

TEST(ControlRequest, BinaryIsNeverEchoed) {
  const std::string binary("sta\0tus\xff\x01", 9);
  EXPECT_EQ(error_of(binary), "request is not plain text; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
  EXPECT_EQ(error_of("st\x1b[2Jatus"), "request is not plain text; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
  EXPECT_EQ(error_of("statüs"), "request is not plain text; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade");
}

TEST(ControlRequest, LongerThan4KiB) {
  EXPECT_EQ(error_of(std::string(max_request_line + 1, 'x')), "request line longer than 4096 bytes");
  // 4096 bytes is still a line (of junk here): the limit is on the length, not the content.
  EXPECT_THAT(error_of(std::string(max_request_line, 'x')), HasSubstr("unknown request"));
}

// ----- replies

TEST(ControlReply, SimpleReplies) {
  EXPECT_EQ(ok_reply(), R"({"ok":true})");
  EXPECT_EQ(scale_reply(3), R"({"ok":true,"workers_wanted":3})");
  EXPECT_EQ(reload_reply(true, 3, ""), R"({"ok":true,"generation":3})");
  EXPECT_EQ(reload_reply(false, 3, "reload abandoned: slot=1 gen=3 not ready within 60s"),
            R"({"ok":false,"error":"reload abandoned: slot=1 gen=3 not ready within 60s","generation":3})");
  EXPECT_EQ(error_reply("permission denied"), R"({"ok":false,"error":"permission denied"})");
}

TEST(ControlReply, ErrorTextIsEscaped) {
  EXPECT_EQ(error_reply("a \"quoted\" \\ path\nnext\x01"),
            R"({"ok":false,"error":"a \"quoted\" \\ path\nnext\u0001"})");
  // Bytes that are not UTF-8 become U+FFFD rather than making the reply fail.
  EXPECT_EQ(error_reply("bad \xff byte"), "{\"ok\":false,\"error\":\"bad \xef\xbf\xbd byte\"}");
}

TEST(ControlReply, ExitReasons) {
  EXPECT_EQ(exit_to_json(ExitCode{1}).dump(), R"({"code":1})");
  EXPECT_EQ(exit_to_json(ExitCode{0}).dump(), R"({"code":0})");
  EXPECT_EQ(exit_to_json(KilledBySignal{SIGKILL}).dump(), R"({"signal":"KILL"})");
  EXPECT_EQ(exit_to_json(KilledBySignal{SIGSEGV}).dump(), R"({"signal":"SEGV"})");
  EXPECT_EQ(exit_to_json(StartFailure{"exec", ENOENT}).dump(), R"({"exec_error":"No such file or directory"})");
  EXPECT_EQ(exit_to_json(StartFailure{"chdir", EACCES}).dump(), R"({"exec_error":"chdir: Permission denied"})");
}

InstanceStatus sample_status() {
  InstanceStatus status;
  status.name = "shop";
  status.pid = 4100;
  status.version = "0.1.0";
  status.config = "/etc/clusterd/shop \"new\".toml";
  status.listeners = {{"http", "127.0.0.1:8000", 3}, {"admin", "unix:/run/a\\b.sock", 4}};
  StatusSnapshot& snapshot = status.snapshot;
  snapshot.generation = 2;
  snapshot.workers_wanted = 3;
  snapshot.workers_ready = 1;
  SlotStatus ready;
  ready.slot = 0;
  ready.workers = {
      WorkerStatus{{0, 2, 7}, 4121, WorkerState::ready, 12500ms, std::string("serving \"ok\""), std::nullopt}};
  SlotStatus backoff;
  backoff.slot = 1;
  backoff.state = SlotState::backoff;
  backoff.restarts = 3;
  backoff.last_exit = KilledBySignal{SIGKILL};
  backoff.next_restart_in = 1600ms;
  SlotStatus failed;
  failed.slot = 2;
  failed.state = SlotState::failed;
  failed.restarts = 10;
  failed.last_exit = StartFailure{"exec", ENOENT};
  snapshot.slots = {ready, backoff, failed};
  status.now_unix = 1800000012.75;
  status.costs[4121] = WorkerCost{12.34, ProcessTreeCost{3.456, 52428800, 31457280, 3},
                                  CgroupCost{"/sys/fs/cgroup/shop.service/worker.0.2.7", 4.567, 4, 61440000}};
  return status;
}

TEST(ControlReply, StatusHasTheInstanceFields) {
  const Json json = Json::parse(status_reply(sample_status()));
  EXPECT_EQ(json["ok"], true);
  EXPECT_EQ(json["name"], "shop");
  EXPECT_EQ(json["pid"], 4100);
  EXPECT_EQ(json["version"], "0.1.0");
  EXPECT_EQ(json["generation"], 2);
  EXPECT_EQ(json["config"], "/etc/clusterd/shop \"new\".toml");
  EXPECT_EQ(json["workers_wanted"], 3);
  EXPECT_EQ(json["workers_ready"], 1);
  EXPECT_EQ(json["reloading_to"], nullptr);
  EXPECT_EQ(json["stopping"], false);
  EXPECT_EQ(json["listeners"].dump(),
            R"([{"name":"http","address":"127.0.0.1:8000","fd":3},{"name":"admin","address":"unix:/run/a\\b.sock","fd":4}])");
  // "ok" first, as in every reply, so `head -c 12` tells success from failure.
  EXPECT_THAT(status_reply(sample_status()), ::testing::StartsWith(R"({"ok":true,"name":"shop",)"));
}

TEST(ControlReply, StatusHasOneEntryPerWorkerWithEveryField) {
  const Json json = Json::parse(status_reply(sample_status()));
  ASSERT_EQ(json["workers"].size(), 3u);
  EXPECT_EQ(json["workers"][0].dump(),
            R"({"slot":0,"pid":4121,"generation":2,"state":"ready","uptime_s":12.5,"restarts":0,)"
            R"("last_exit":null,"next_restart_in_s":null,"notify_status":"serving \"ok\"","cpu_percent":12.3,)"
            R"("cpu_s":3.46,"rss_bytes":52428800,"pss_bytes":31457280,"processes":3,)"
            R"("cgroup":{"path":"/sys/fs/cgroup/shop.service/worker.0.2.7","cpu_s":4.57,"processes":4,)"
            R"("memory_bytes":61440000},"started_at":1800000000.25})");
}

TEST(ControlReply, ASlotWithoutAProcessIsOneEntryWithPidNull) {
  const Json json = Json::parse(status_reply(sample_status()));
  EXPECT_EQ(json["workers"][1].dump(),
            R"({"slot":1,"pid":null,"generation":null,"state":"backoff","uptime_s":null,"restarts":3,)"
            R"("last_exit":{"signal":"KILL"},"next_restart_in_s":1.6,"notify_status":null,"cpu_percent":null,)"
            R"("cpu_s":null,"rss_bytes":null,"pss_bytes":null,"processes":null,"cgroup":null,"started_at":null})");
  EXPECT_EQ(json["workers"][2]["state"], "failed");
  EXPECT_EQ(json["workers"][2]["pid"], nullptr);
  EXPECT_EQ(json["workers"][2]["last_exit"].dump(), R"({"exec_error":"No such file or directory"})");
}

TEST(ControlReply, ASlotBeingReplacedShowsBothWorkers) {
  InstanceStatus status;
  status.name = "shop";
  status.snapshot.reloading_to = 3;
  SlotStatus slot;
  slot.workers = {WorkerStatus{{0, 2, 1}, 100, WorkerState::ready, 5s, std::nullopt, std::nullopt},
                  WorkerStatus{{0, 3, 2}, 101, WorkerState::starting, 0s, std::nullopt, std::nullopt}};
  status.snapshot.slots = {slot};
  const Json json = Json::parse(status_reply(status));
  EXPECT_EQ(json["reloading_to"], 3);
  ASSERT_EQ(json["workers"].size(), 2u);
  EXPECT_EQ(json["workers"][0]["generation"], 2);
  EXPECT_EQ(json["workers"][1]["generation"], 3);
  EXPECT_EQ(json["workers"][1]["state"], "starting");
}

TEST(ControlReply, ASlotInBackoffWithOnlyAStoppingWorkerStillShowsTheBackoff) {
  InstanceStatus status;
  SlotStatus slot;
  slot.state = SlotState::backoff;
  slot.next_restart_in = 2s;
  slot.workers = {WorkerStatus{{0, 1, 1}, 100, WorkerState::stopping, 5s, std::nullopt, std::nullopt}};
  status.snapshot.slots = {slot};
  const Json json = Json::parse(status_reply(status));
  ASSERT_EQ(json["workers"].size(), 2u);
  EXPECT_EQ(json["workers"][0]["state"], "stopping");
  EXPECT_EQ(json["workers"][1]["state"], "backoff");
  EXPECT_EQ(json["workers"][1]["pid"], nullptr);
}

TEST(ControlReply, AWorkerWithASigkillPendingSaysWhenOnlyThen) {
  InstanceStatus status;
  status.snapshot.stopping = true;
  status.now_unix = 1800;  // a worker without a cost (it exited meanwhile) still has its start
  SlotStatus slot;
  slot.workers = {WorkerStatus{{0, 1, 1}, 100, WorkerState::stopping, 5s, std::nullopt, 7250ms},
                  WorkerStatus{{0, 1, 2}, 101, WorkerState::stopping, 5s, std::nullopt, std::nullopt}};  // killed
  status.snapshot.slots = {slot};
  const Json json = Json::parse(status_reply(status));
  ASSERT_EQ(json["workers"].size(), 2u);
  EXPECT_EQ(json["workers"][0].dump(),
            R"({"slot":0,"pid":100,"generation":1,"state":"stopping","uptime_s":5.0,"restarts":0,)"
            R"("last_exit":null,"next_restart_in_s":null,"notify_status":null,"kill_in_s":7.25,)"
            R"("cpu_percent":null,"cpu_s":null,"rss_bytes":null,"pss_bytes":null,"processes":null,)"
            R"("cgroup":null,"started_at":1795.0})");
  EXPECT_FALSE(json["workers"][1].contains("kill_in_s"));
}

TEST(ControlReply, ASlotThatWillNotRestartIsExited) {
  InstanceStatus status;
  SlotStatus slot;
  slot.state = SlotState::done;
  slot.last_exit = ExitCode{0};
  status.snapshot.slots = {slot};
  const Json json = Json::parse(status_reply(status));
  ASSERT_EQ(json["workers"].size(), 1u);
  EXPECT_EQ(json["workers"][0]["state"], "exited");
  EXPECT_EQ(json["workers"][0]["last_exit"].dump(), R"({"code":0})");
}

TEST(ControlReply, NotUtf8StatusTextIsReplacedNotFatal) {
  InstanceStatus status;
  status.name = "shop";
  status.config = std::string("/etc/\xff.toml");
  SlotStatus slot;
  slot.workers = {
      WorkerStatus{{0, 1, 1}, 100, WorkerState::ready, 1s, std::string("load \xfe\xff"), std::nullopt}};
  status.snapshot.slots = {slot};
  const Json json = Json::parse(status_reply(status));
  EXPECT_EQ(json["config"], "/etc/\xef\xbf\xbd.toml");
  EXPECT_EQ(json["workers"][0]["notify_status"], "load \xef\xbf\xbd\xef\xbf\xbd");
}

// ----- replies parsed by the client

TEST(ControlParseReply, OkAndError) {
  const auto ok = parse_reply(R"({"ok":true,"workers_wanted":3})");
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)["workers_wanted"], 3);
  const auto error = parse_reply(error_reply("permission denied"));
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["error"], "permission denied");
}

TEST(ControlParseReply, WhatIsNotAReply) {
  EXPECT_EQ(parse_reply("not json").error(), "the reply is not JSON");
  EXPECT_EQ(parse_reply("[1,2]").error(), "the reply has no \"ok\": true or false");
  EXPECT_EQ(parse_reply(R"({"ok":"yes"})").error(), "the reply has no \"ok\": true or false");
  EXPECT_EQ(parse_reply(R"({"ok":false})").error(), "the reply says \"ok\": false without an \"error\"");
}

}  // namespace
}  // namespace clusterd
