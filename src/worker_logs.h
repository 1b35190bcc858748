// `clusterd logs`: each slot's recent output lines and the followers of new ones, fed by the
// workers' output (output = "prefix") and read over the control socket's `logs` request.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "control_protocol.h"
#include "control_server.h"
#include "recent_output.h"
#include "worker_output.h"

namespace clusterd {

class WorkerLogs {
 public:
  // The most a `logs` reply holds: the newest lines that fit (the client takes 64 MiB at most).
  static constexpr std::size_t max_reply_bytes = 16u << 20;

  explicit WorkerLogs(int recent_lines) : recent_(recent_lines) {}

  // A reload's output.recent_lines.
  void set_recent_lines(int lines) { recent_.set_limit(lines); }

  // A line a worker wrote: kept, and queued for each follower of its slot. A follower that reads
  // too slowly is cut off by the control server, never waited for.
  void on_line(const WorkerLine& line);

  // Answers `logs` request `id` with the recent lines it asks for; with `follow` its connection
  // stays open and receives every later line of its slot (or of all).
  void answer(ControlServer& control, RequestId id, const LogsRequest& request);

  bool has_slot(int slot) const { return recent_.has_slot(slot); }

 private:
  struct Follower {
    std::uint64_t stream = 0;
    std::optional<int> slot;
  };

  RecentOutput recent_;
  ControlServer* control_ = nullptr;  // the followers' server, set by the first follow
  std::vector<Follower> followers_;
};

}  // namespace clusterd
