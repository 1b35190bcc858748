// Drains a worker's output pipe into the sink of clusterd's stdout or stderr, a whole line at a time.
#include "worker_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>

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

WorkerOutput::WorkerOutput(Fd read_end, OutputSink& sink, int slot, pid_t pid)
    : read_end_(std::move(read_end)), sink_(&sink), slot_(slot), pid_(pid) {}

WorkerOutput::State WorkerOutput::drain(std::size_t budget) {
  std::array<char, 16384> buffer;
  // Handed over in one push per drain: the sink writes straight from it when nothing waits, and
  // no other stream's line can land inside it.
  std::string lines;
  const auto collect = [this, &lines](std::string_view line) { lines += prefixed_line(slot_, pid_, line); };
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
  splitter_.finish([this, &lines](std::string_view line) { lines += prefixed_line(slot_, pid_, line); });
  if (!lines.empty()) {
    sink_->push(lines);
  }
}

}  // namespace clusterd
