// Keeps each slot's last output lines and picks the last N of one slot or all of them.
#include "recent_output.h"

#include <algorithm>

namespace clusterd {

void RecentOutput::set_limit(int lines_per_slot) {
  limit_ = lines_per_slot;
  for (auto it = slots_.begin(); it != slots_.end();) {
    trim(it->second);
    it = it->second.lines.empty() ? slots_.erase(it) : std::next(it);
  }
}

const RecentLine& RecentOutput::add(int slot, pid_t pid, int stream, double time, std::string_view text) {
  RecentLine line{next_sequence_++, slot, pid, stream, time, std::string(text)};
  if (limit_ <= 0) {
    unkept_ = std::move(line);
    return unkept_;
  }
  Slot& kept = slots_[slot];
  kept.bytes += line.text.size() + line_overhead;
  kept.lines.push_back(std::move(line));
  trim(kept);
  return kept.lines.back();
}

void RecentOutput::trim(Slot& slot) {
  const auto limit = static_cast<std::size_t>(std::max(limit_, 0));
  // The newest line stays even when it alone is over the byte limit (a line is at most 4 KiB).
  while (!slot.lines.empty() && (slot.lines.size() > limit || (slot.bytes > bytes_per_slot && slot.lines.size() > 1))) {
    slot.bytes -= slot.lines.front().text.size() + line_overhead;
    slot.lines.pop_front();
  }
}

std::vector<const RecentLine*> RecentOutput::last(std::size_t count, std::optional<int> slot) const {
  std::vector<const RecentLine*> lines;
  for (const auto& [number, kept] : slots_) {
    if (slot && number != *slot) {
      continue;
    }
    const std::size_t from = kept.lines.size() - std::min(count, kept.lines.size());
    for (std::size_t index = from; index < kept.lines.size(); ++index) {
      lines.push_back(&kept.lines[index]);
    }
  }
  std::sort(lines.begin(), lines.end(),
            [](const RecentLine* a, const RecentLine* b) { return a->sequence < b->sequence; });
  if (lines.size() > count) {
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(count));
  }
  return lines;
}

}  // namespace clusterd
