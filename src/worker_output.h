// Workers' output in `output = "prefix"` mode (interface §3): a pipe per worker stream, whose read
// end clusterd owns and drains as the event loop reports it readable, handing each whole line,
// as "[SLOT PID] text", to the OutputSink of its own stdout or stderr. Nothing here touches
// connection data.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "fd.h"
#include "line_splitter.h"
#include "output_sink.h"

namespace clusterd {

// Both ends close-on-exec (the child's dup2 onto 1 or 2 clears that for the worker); the read end
// non-blocking, so a drain never waits for a worker.
struct OutputPipe {
  Fd read_end;
  Fd write_end;
};
tl::expected<OutputPipe, int> make_output_pipe();  // the error is an errno

// A line as clusterd read it from a worker, for `clusterd logs` (recent_output.h).
struct WorkerLine {
  int slot = 0;
  pid_t pid = 0;
  int stream = 1;  // STDOUT_FILENO or STDERR_FILENO
  std::chrono::system_clock::time_point time;  // when it was read: one time for a whole read
  std::string_view text;  // without its '\n'
};
using LineObserver = std::function<void(const WorkerLine&)>;

// How a stream's lines are written out: "[SLOT PID] text", after the local time it was read
// ("2026-12-06T21:30:00.123 ", as clusterd's own log lines) with `timestamps`.
struct LineFormat {
  int slot = 0;
  pid_t pid = 0;
  int stream = 1;  // STDOUT_FILENO or STDERR_FILENO
  bool timestamps = false;
};

// "2026-12-06T21:30:00.123 ": the prefix `timestamps` puts before a line read at `time`.
std::string line_timestamp(std::chrono::system_clock::time_point time);

// One worker stream. It outlives the worker's process entry: it ends at end of file, when every
// writer is gone, so output written just before an exit is never lost.
class WorkerOutput {
 public:
  // `sink`: where its lines go (clusterd's stdout or stderr, or output.file); `observer` (may be
  // null) is given each line as well. Both must outlive this stream.
  WorkerOutput(Fd read_end, OutputSink& sink, LineFormat format, const LineObserver* observer = nullptr);

  int fd() const { return read_end_.get(); }
  pid_t pid() const { return format_.pid; }
  int stream() const { return format_.stream; }
  OutputSink& sink() const { return *sink_; }
  void set_sink(OutputSink& sink) { sink_ = &sink; }

  enum class State {
    open,   // read all it held, or its budget; more may come
    held,   // the sink is full: read this pipe no more until the sink has room (back-pressure)
    ended,  // end of file: every writer is gone
  };
  // Reads what the pipe holds now, at most `budget` bytes (so one chatty worker cannot hold the
  // loop) and never while the sink is full, and hands the sink the lines it completes. At end of
  // file the last partial line goes too.
  State drain(std::size_t budget);

  // clusterd exits and reads no more: a partial line goes out as it is.
  void finish();

 private:
  // Appends `line` to `lines` as it is written out, and hands it to the observer. `time` and
  // `stamp` are taken at the first line of a read, once for all its lines.
  void collect(std::string& lines, std::string_view line, std::optional<std::chrono::system_clock::time_point>& time,
               std::string& stamp);

  Fd read_end_;
  OutputSink* sink_;
  LineFormat format_;
  const LineObserver* observer_;
  LineSplitter splitter_;
};

}  // namespace clusterd
