// Workers' output in `output = "prefix"` mode (interface §3): a pipe per worker stream, whose read
// end clusterd owns and drains as the event loop reports it readable, handing each whole line,
// as "[SLOT PID] text", to the OutputSink of its own stdout or stderr. Nothing here touches
// connection data.
#pragma once

#include <sys/types.h>

#include <cstddef>

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

// One worker stream. It outlives the worker's process entry: it ends at end of file, when every
// writer is gone, so output written just before an exit is never lost.
class WorkerOutput {
 public:
  // `sink`: where its lines go (clusterd's stdout or stderr); it must outlive this stream.
  WorkerOutput(Fd read_end, OutputSink& sink, int slot, pid_t pid);

  int fd() const { return read_end_.get(); }
  pid_t pid() const { return pid_; }
  OutputSink& sink() const { return *sink_; }

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
  Fd read_end_;
  OutputSink* sink_;
  int slot_;
  pid_t pid_;
  LineSplitter splitter_;
};

}  // namespace clusterd
