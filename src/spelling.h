// "Did you mean": the known word nearest a mistyped one (config keys, command-line options).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace clusterd {

// Optimal string alignment distance: a swapped pair of letters ("restrat") counts as one edit,
// which is the typo people make most.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate fewest edits from `word`, when that is at most two edits and fewer than the
// candidate's length (so "x" does not suggest every one-letter name); the first of equals wins.
std::optional<std::string_view> closest_word(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace clusterd
