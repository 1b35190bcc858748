// Keeps the workers' recent lines and sends new ones to the `logs follow` connections.
#include "worker_logs.h"

#include <algorithm>
#include <chrono>
#include <string>

namespace clusterd {
namespace {

double unix_seconds(std::chrono::system_clock::time_point time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

}  // namespace

void WorkerLogs::on_line(const WorkerLine& line) {
  const RecentLine& kept = recent_.add(line.slot, line.pid, line.stream, unix_seconds(line.time), line.text);
  if (followers_.empty()) {
    return;
  }
  std::string record;  // encoded once, for every follower that wants it
  std::erase_if(followers_, [&](const Follower& follower) {
    if (follower.slot && *follower.slot != kept.slot) {
      return false;
    }
    if (record.empty()) {
      record = log_line_record(kept.slot, kept.pid, kept.stream, kept.time, kept.text);
    }
    return !control_->stream_record(follower.stream, record);
  });
}

void WorkerLogs::answer(ControlServer& control, RequestId id, const LogsRequest& request) {
  const auto lines = recent_.last(static_cast<std::size_t>(request.lines), request.slot);
  // The newest lines that fit in max_reply_bytes, oldest first.
  std::vector<std::string> records;
  std::size_t bytes = 0;
  for (auto line = lines.rbegin(); line != lines.rend(); ++line) {
    std::string record = log_line_record((*line)->slot, (*line)->pid, (*line)->stream, (*line)->time, (*line)->text);
    bytes += record.size() + 1;
    if (bytes > max_reply_bytes) {
      break;
    }
    records.push_back(std::move(record));
  }
  std::reverse(records.begin(), records.end());
  if (!request.follow) {
    control.reply(id, logs_reply(records));
    return;
  }
  control_ = &control;
  // Followers that ended meanwhile (on a slot that has been quiet since) go now.
  std::erase_if(followers_, [&control](const Follower& follower) { return !control.streaming(follower.stream); });
  if (const std::uint64_t stream = control.start_stream(id, logs_reply(records)); stream != 0) {
    followers_.push_back(Follower{stream, request.slot});
  }
}

}  // namespace clusterd
