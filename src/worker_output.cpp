// Drains a worker's output pipe into the sink of clusterd's stdout or stderr, a whole line at a time.
#include "worker_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <string>

#include <fmt/format.h>

namespace clusterd {

tl::expected<OutputPipe, int> make_output_pipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    return tl::unexpected(errno);
  }
  OutputPipe pipe{Fd(ends[0]), Fd(ends[1])};
  const int flags = ::fcntl(pipe.read_end.get(), F_GETFL);
  if (flags < 0 || ::fcntl(pipe.read_end.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return tl::unexpected(errno);
  }
  return pipe;
}

std::string line_timestamp(std::chrono::system_clock::time_point time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char text[32];
  const std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  return fmt::format("{}.{:03} ", std::string_view(text, length), millis);
}

WorkerOutput::WorkerOutput(Fd read_end, OutputSink& sink, LineFormat format, const LineObserver* observer)
    : read_end_(std::move(read_end)), sink_(&sink), format_(format), observer_(observer) {}

void WorkerOutput::collect(std::string& lines, std::string_view line,
                           std::optional<std::chrono::system_clock::time_point>& time, std::string& stamp) {
  if (!time && (format_.timestamps || observer_ != nullptr)) {
    time = std::chrono::system_clock::now();
    if (format_.timestamps) {
      stamp = line_timestamp(*time);
    }
  }
  lines += stamp;
  lines += prefixed_line(format_.slot, format_.pid, line);
  if (observer_ != nullptr && *observer_) {
    (*observer_)(WorkerLine{format_.slot, format_.pid, format_.stream, *time, line});
  }
}

WorkerOutput::State WorkerOutput::drain(std::size_t budget) {
  std::array<char, 16384> buffer;
  // Handed over in one push per drain: the sink writes straight from it when nothing waits, and
  // no other stream's line can land inside it.
  std::string lines;
  std::optional<std::chrono::system_clock::time_point> time;
  std::string stamp;
  const auto collect = [&](std::string_view line) { this->collect(lines, line, time, stamp); };
  State state = State::open;
  while (budget > 0) {
    if (!sink_->has_room(lines.size())) {
      break;  // what is unread stays in the pipe, and the worker waits when that is full
    }
    const ssize_t got = ::read(read_end_.get(), buffer.data(), std::min(buffer.size(), budget));
    if (got > 0) {
      splitter_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(got)), collect);
      budget -= static_cast<std::size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0 && errno == EAGAIN) {
      break;
    }
    // End of file, or an error that will not go away (EIO): either way the stream is over.
    splitter_.finish(collect);
    state = State::ended;
    break;
  }
  if (!lines.empty()) {
    sink_->push(lines);
  }
  // Judged after the push: it may have written everything at once, and a pipe held for a sink
  // that is empty would never be read again.
  if (state == State::open && !sink_->has_room()) {
    state = State::held;
  }
  return state;
}

void WorkerOutput::finish() {
  std::string lines;
  std::optional<std::chrono::system_clock::time_point> time;
  std::string stamp;
  splitter_.finish([&](std::string_view line) { collect(lines, line, time, stamp); });
  if (!lines.empty()) {
    sink_->push(lines);
  }
}

}  // namespace clusterd
