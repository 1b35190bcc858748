// Cuts a byte stream into whole lines, and prefixes them with the worker they came from.
#include "line_splitter.h"

#include <utility>

#include <fmt/format.h>

namespace clusterd {

void LineSplitter::feed(std::string_view data, const Emit& emit) {
  while (!data.empty()) {
    // A '\n' right after a piece cut at the limit ends that line, even when it comes in a later
    // read: it is not an empty line of its own.
    if (std::exchange(after_cut_, false) && data.front() == '\n') {
      data.remove_prefix(1);
      continue;
    }
    const std::size_t newline = data.find('\n');
    const std::size_t take = newline == std::string_view::npos ? data.size() : newline;
    // Never hold more than max_line: the rest of a long line becomes the next piece.
    const std::size_t room = max_line_ - pending_.size();
    if (take >= room) {
      pending_.append(data.substr(0, room));
      emit(pending_);
      pending_.clear();
      data.remove_prefix(room);
      after_cut_ = true;
      continue;
    }
    pending_.append(data.substr(0, take));
    if (newline == std::string_view::npos) {
      return;
    }
    emit(pending_);
    pending_.clear();
    data.remove_prefix(take + 1);
  }
}

void LineSplitter::finish(const Emit& emit) {
  after_cut_ = false;
  if (!pending_.empty()) {
    emit(pending_);
    pending_.clear();
  }
}

std::string prefixed_line(int slot, int pid, std::string_view line) {
  return fmt::format("[{} {}] {}\n", slot, pid, line);
}

}  // namespace clusterd
