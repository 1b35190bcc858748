// Cuts a byte stream into whole lines for `output = "prefix"`: each complete line, over-long
// lines in pieces of at most max_line bytes, never half a line mixed with another's.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace clusterd {

class LineSplitter {
 public:
  using Emit = std::function<void(std::string_view line)>;

  explicit LineSplitter(std::size_t max_line = 4096) : max_line_(max_line) {}

  // Adds `data`; calls `emit` for each line it completes (without its '\n') and for each
  // max_line piece of a longer one. What is left waits for more data.
  void feed(std::string_view data, const Emit& emit);

  // End of the stream: a last line without '\n' is emitted too.
  void finish(const Emit& emit);

 private:
  std::size_t max_line_;
  std::string pending_;
  bool after_cut_ = false;  // the last piece was cut at max_line, its '\n' not seen yet
};

// "[SLOT PID] text\n": how a worker's output line appears on clusterd's stdout or stderr.
std::string prefixed_line(int slot, int pid, std::string_view line);

}  // namespace clusterd
