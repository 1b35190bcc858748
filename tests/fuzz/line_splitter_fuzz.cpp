// Fuzz target `line_splitter`: the first byte sets max_line (1-64), the second seeds how the rest
// is cut into reads. The lines are the same however the stream is cut (whole, byte by byte, or in
// pieces), each at most max_line bytes and without a '\n'.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_require.h"
#include "line_splitter.h"

namespace {

using Lines = std::vector<std::string>;

// The lines of `stream` fed in reads of the sizes `next_size` returns (each ≥ 1).
template <typename NextSize>
Lines split(std::size_t max_line, std::string_view stream, NextSize next_size) {
  clusterd::LineSplitter splitter(max_line);
  Lines lines;
  const auto emit = [&lines](std::string_view line) { lines.emplace_back(line); };
  while (!stream.empty()) {
    const std::size_t take = std::min(next_size(), stream.size());
    splitter.feed(stream.substr(0, take), emit);
    stream.remove_prefix(take);
  }
  splitter.finish(emit);
  return lines;
}

std::string shown(const Lines& lines) {
  std::string out;
  for (const auto& line : lines) {
    out += "[" + line + "]";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using clusterd::fuzz::require;
  if (size < 2) {
    return 0;
  }
  const std::size_t max_line = 1 + data[0] % 64;
  std::uint32_t state = data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  const Lines whole = split(max_line, stream, [&] { return stream.size() + 1; });
  const Lines bytes = split(max_line, stream, [] { return std::size_t{1}; });
  const Lines pieces = split(max_line, stream, [&] {
    state = state * 1103515245U + 12345U;  // a fixed LCG: the same input is cut the same way
    return std::size_t{1} + (state >> 16) % 17;
  });
  require(bytes == whole, "byte by byte gives the lines of the whole", shown(whole) + " vs " + shown(bytes));
  require(pieces == whole, "in pieces gives the lines of the whole", shown(whole) + " vs " + shown(pieces));
  for (const auto& line : whole) {
    require(line.size() <= max_line, "no line is longer than max_line", line);
    require(line.find('\n') == std::string::npos, "no line holds a newline", line);
  }
  return 0;
}
