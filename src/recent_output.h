// The last lines each slot's workers wrote (output.recent_lines), kept in memory for
// `clusterd logs`: a bounded ring per slot, by line count and by bytes. Pure: no I/O.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd {

struct RecentLine {
  std::uint64_t sequence = 0;  // the order clusterd read the lines in, across slots
  int slot = 0;
  pid_t pid = 0;
  int stream = 1;    // STDOUT_FILENO or STDERR_FILENO
  double time = 0;   // Unix time when it was read
  std::string text;  // without its '\n'
};

class RecentOutput {
 public:
  // However many lines recent_lines allows, a slot keeps at most this many bytes (each line's
  // text and line_overhead): 1,000 chatty workers cost at most 256 MiB, not recent_lines × 4 KiB.
  static constexpr std::size_t bytes_per_slot = 256 * 1024;
  // What a kept line costs besides its text: its fields and its string's header.
  static constexpr std::size_t line_overhead = sizeof(RecentLine);

  explicit RecentOutput(int lines_per_slot = 1000) : limit_(lines_per_slot) {}

  // A reload's output.recent_lines: each slot is trimmed to it now.
  void set_limit(int lines_per_slot);

  // Keeps `line` (the oldest lines of its slot make room) and returns it as kept, with its
  // sequence number; kept nowhere when the limit is 0, but returned all the same.
  const RecentLine& add(int slot, pid_t pid, int stream, double time, std::string_view text);

  // The last `count` lines of `slot` (nullopt: of every slot), oldest first.
  std::vector<const RecentLine*> last(std::size_t count, std::optional<int> slot) const;

  bool has_slot(int slot) const { return slots_.contains(slot); }

 private:
  struct Slot {
    std::deque<RecentLine> lines;
    std::size_t bytes = 0;
  };
  void trim(Slot& slot);

  int limit_;
  std::map<int, Slot> slots_;
  std::uint64_t next_sequence_ = 1;
  RecentLine unkept_;  // add()'s answer when nothing is kept
};

}  // namespace clusterd
