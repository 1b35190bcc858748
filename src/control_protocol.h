// The control protocol (interface §4.5): a request line parsed into a Request, replies built as
// one line of JSON each, and a reply line parsed again on the client side.
//
// Pure: no I/O. Both sides use nlohmann-json, so no JSON is written or parsed by hand; text that
// is not UTF-8 (a worker's STATUS=, a config path given as bytes) is written with U+FFFD in place
// of the bad bytes instead of making the reply fail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "duration.h"
#include "process_tree.h"
#include "worker_cgroups.h"
#include "supervisor.h"

namespace clusterd {

// The longest request line, without its '\n' (interface §4.5).
inline constexpr std::size_t max_request_line = 4096;

// `status`, or `status pss`: with each worker tree's proportional memory too, which costs more
// to read than everything else together (/proc/PID/smaps_rollup walks the page tables).
struct StatusRequest {
  bool pss = false;
  bool operator==(const StatusRequest&) const = default;
};
struct ReloadRequest {
  bool operator==(const ReloadRequest&) const = default;
};
// `scale N` (to N, 1-4096), `scale +N` and `scale -N` (by N, 1-4096, from the count wanted now).
struct ScaleRequest {
  int workers = 1;        // the count, or with `relative` the change (negative: fewer)
  bool relative = false;
  bool operator==(const ScaleRequest&) const = default;
};
// `restart SLOT` or `restart all`: replace the slot's worker now, new one first (or start a slot
// in backoff or failed at once), and clear its restart count and last exit.
struct RestartRequest {
  std::optional<int> slot;  // nullopt: every slot
  bool operator==(const RestartRequest&) const = default;
};
struct StopRequest {
  bool operator==(const StopRequest&) const = default;
};
// `metrics`: the Prometheus text of metrics_text.h.
struct MetricsRequest {
  bool operator==(const MetricsRequest&) const = default;
};
// `logs [slot N] [lines N] [follow]`: the last lines workers wrote (output = "prefix"), of one
// slot or all, and with `follow` every line from then on, on the same connection.
struct LogsRequest {
  static constexpr int default_lines = 10;
  static constexpr int max_lines = 100000;
  std::optional<int> slot;  // nullopt: every slot
  int lines = default_lines;
  bool follow = false;
  bool operator==(const LogsRequest&) const = default;
};
// `upgrade [BINARY]`: clusterd executes BINARY (an absolute path; default: the file it was
// started from, as installed now) in its own process, handing its workers over (upgrade_exec.h).
struct UpgradeRequest {
  std::optional<std::string> binary;
  bool operator==(const UpgradeRequest&) const = default;
};
using Request = std::variant<StatusRequest, ReloadRequest, ScaleRequest, RestartRequest, StopRequest, MetricsRequest,
                             LogsRequest, UpgradeRequest>;

// One request line without its '\n': words separated by spaces or tabs; a trailing '\r' (from
// `nc -C` and telnet) and surrounding blanks are ignored. The error is what the reply's "error"
// says (`unknown request "frob"; expected status, reload, scale N|+N|-N, restart SLOT|all, stop, metrics, logs or upgrade`).
tl::expected<Request, std::string> parse_request(std::string_view line);

// The line a client sends for `request`, without the '\n'.
std::string request_line(const Request& request);

// ---- Replies: each one JSON object on one line, without the '\n'.

struct ListenerStatus {
  std::string name;
  std::string address;    // as bound: "127.0.0.1:43121", "unix:/run/shop.sock"
  int fd = 3;             // the fd number workers get it on
  bool per_slot = false;  // reuseport = "per-slot": each slot's workers get their slot's own socket
  int sockets = 1;        // sockets open now: one per slot that has one, for a per-slot listener
  bool steered = false;   // per-slot: new connections go only to slots whose worker is ready
};

// What a worker's process tree costs, read when `status` was asked (process_tree.h).
struct WorkerCost {
  double cpu_percent = 0;  // of one core, since the previous request (cpu_rates.h)
  ProcessTreeCost tree;
  std::optional<CgroupCost> cgroup;  // with a cgroup per worker: what the cgroup counted
};

// What `status` shows about the instance besides the Supervisor's snapshot.
struct InstanceStatus {
  std::string name;
  int pid = 0;
  std::string version;
  std::optional<std::string> config;  // the config file, absolute; nullopt without one
  std::vector<ListenerStatus> listeners;
  StatusSnapshot snapshot;
  std::map<int, WorkerCost> costs;  // by pid; a worker without one (it exited meanwhile) shows null
  double now_unix = 0;              // the wall clock now, for each worker's started_at

  // The cost read for `worker`; nullptr for an entry without a process or one not read.
  const WorkerCost* cost_of(const WorkerStatus& worker) const;
  // When `worker` was started, Unix time: the wall clock now less its uptime.
  double started_at(const WorkerStatus& worker) const;
};

// `{"ok":true,"name":…,"pid":…,"version":…,"generation":…,"config":…,"workers_wanted":…,
// "workers_ready":…,"reloading_to":…,"stopping":…,"listeners":[…],"workers":[…]}`. A per-slot
// listener's entry adds "reuseport":"per-slot" and "sockets":N to name, address and fd. One entry
// per worker process (a slot being replaced has two); a slot in backoff, failed for good, or
// exited and not to be restarted, without a process other than stopping ones, adds one entry
// with "pid":null and "state" "backoff", "failed" or "exited". A worker clusterd asked to stop
// and will SIGKILL at the end of its grace adds "kill_in_s" (seconds left).
// Each entry also says what the worker's process tree costs: "cpu_percent" (of one core, since
// the previous request), "cpu_s", "rss_bytes", "pss_bytes" (null where unreadable), "processes",
// and "started_at" (Unix time); all null for an entry without a process.
std::string status_reply(const InstanceStatus& status);
// `{"ok":true,"generation":3}` or `{"ok":false,"error":"…","generation":3}`.
// `restart_needed`: keys whose change a reload cannot apply (they take effect when clusterd
// restarts); listed only when there are some.
std::string reload_reply(bool ok, std::uint64_t generation, std::string_view error,
                         const std::vector<std::string>& restart_needed = {});
// `{"ok":true,"workers_wanted":3}`.
std::string scale_reply(int workers_wanted);
// `{"ok":true,"slots":[0,1,2]}`: the slots being restarted.
std::string restart_reply(const std::vector<int>& slots);
// `{"ok":true,"metrics":"# HELP …"}`: the Prometheus text exposition, as one JSON string.
std::string metrics_reply(std::string_view text);
// `{"ok":true,"lines":[…]}`: log_line_record texts, oldest first. With `follow`, each later line
// comes as one log_line_record a line, and the stream ends with `{"ok":true,"end":"…"}`
// when clusterd stops, or `{"ok":false,"error":"…"}` when it cut the follower off.
std::string logs_reply(const std::vector<std::string>& records);
// One line a worker wrote: `{"slot":0,"pid":4242,"stream":"stdout","time":1765056600.123,"text":"…"}`
// (time: Unix time when clusterd read it, to the millisecond).
std::string log_line_record(int slot, int pid, int stream, double time, std::string_view text);
// `{"ok":true,"end":"clusterd stopped"}`: the last record of a followed stream when clusterd stops.
std::string logs_end_record();
// `{"ok":true}`.
std::string ok_reply();
// `{"ok":false,"error":"…"}`.
std::string error_reply(std::string_view error);
// `{"ok":true,"pid":…,"version":…,"from_version":…,"workers":N,"restarted":[SLOT…]}`: sent by the
// new binary; `restarted`: the slots whose worker it could not take over (killed, started anew).
std::string upgrade_reply(int pid, std::string_view version, std::string_view from_version, int workers,
                          const std::vector<int>& restarted);

// "starting", "ready", "stopping": a worker's state as status and metrics name it.
const char* state_name(WorkerState state);

// The JSON text of `last_exit`: {"code":1}, {"signal":"KILL"}, {"exec_error":"…"}.
nlohmann::ordered_json exit_to_json(const WorkerExit& exit);

// ---- Client side.

// A reply line: a JSON object with a boolean "ok" (and a string "error" when ok is false);
// otherwise what is wrong with it.
tl::expected<nlohmann::ordered_json, std::string> parse_reply(std::string_view line);

}  // namespace clusterd
