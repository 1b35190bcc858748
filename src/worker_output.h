// Workers' output in `output = "prefix"` mode (interface §3): a pipe per worker stream, whose read
// end clusterd owns and drains as the event loop reports it readable, writing each whole line to
// its own stdout or stderr as "[SLOT PID] text". Nothing here touches connection data.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include <tl/expected.hpp>

#include "fd.h"
#include "line_splitter.h"

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
  // `destination`: clusterd's fd 1 or 2, written with whole lines only.
  WorkerOutput(Fd read_end, int destination, int slot, pid_t pid);

  int fd() const { return read_end_.get(); }
  pid_t pid() const { return pid_; }

  enum class State { open, ended };
  // Reads what the pipe holds now, at most `budget` bytes (so one chatty worker cannot hold the
  // loop), and writes out the lines it completes. At end of file the last partial line is written
  // too and the result is `ended`.
  State drain(std::size_t budget);

 private:
  void write_out(const std::string& text);

  Fd read_end_;
  int destination_;
  int slot_;
  pid_t pid_;
  LineSplitter splitter_;
  bool write_failed_ = false;
};

}  // namespace clusterd
