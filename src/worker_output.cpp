// Drains a worker's output pipe into clusterd's own stdout or stderr, a whole line at a time.
#include "worker_output.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

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

WorkerOutput::WorkerOutput(Fd read_end, int destination, int slot, pid_t pid)
    : read_end_(std::move(read_end)), destination_(destination), slot_(slot), pid_(pid) {}

WorkerOutput::State WorkerOutput::drain(std::size_t budget) {
  std::array<char, 16384> buffer;
  std::string lines;
  const auto collect = [this, &lines](std::string_view line) { lines += prefixed_line(slot_, pid_, line); };
  State state = State::open;
  while (budget > 0) {
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
    write_out(lines);
  }
  return state;
}

// One write() per batch of whole lines: clusterd is the only writer here and single-threaded, so
// no other line can land inside one of these. A stalled stdout stalls clusterd's copy, and then
// the worker, as it would have stalled the worker writing there itself with output = "inherit".
void WorkerOutput::write_out(const std::string& text) {
  if (write_failed_) {
    return;
  }
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t result = ::write(destination_, text.data() + written, text.size() - written);
    if (result >= 0) {
      written += static_cast<std::size_t>(result);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      // Somebody made our stdout non-blocking: wait until it takes more, as a blocking one would.
      pollfd writable{destination_, POLLOUT, 0};
      ::poll(&writable, 1, -1);
      continue;
    }
    // EPIPE (nobody reads our stdout any more), ENOSPC, EIO: keep draining the pipe so the worker
    // never blocks, and say so once.
    write_failed_ = true;
    spdlog::warn("cannot write worker output slot={} pid={}: {}; dropping its output from now on", slot_, pid_,
                 std::strerror(errno));
    return;
  }
}

}  // namespace clusterd
