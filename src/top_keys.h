// The keys of `clusterd top`: bytes read from a terminal in raw mode → what the user asked for.
//
// Pure: no I/O. It is not a terminal decoder: escape sequences (arrows, function keys, Alt+key)
// are recognised only to be skipped, so that their bytes never count as keys.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace clusterd {

struct TopQuit {
  bool operator==(const TopQuit&) const = default;
};
struct TopReload {
  bool operator==(const TopReload&) const = default;
};
struct TopScale {
  int delta = 1;  // +1 or -1
  bool operator==(const TopScale&) const = default;
};
struct TopRestart {
  int slot = 0;
  bool operator==(const TopRestart&) const = default;
};
// A restart prompt left without restarting anything.
struct TopCancelled {
  bool operator==(const TopCancelled&) const = default;
};
using TopAction = std::variant<TopQuit, TopReload, TopScale, TopRestart, TopCancelled>;

// The keys, as the footer and the man page list them:
//   q, Ctrl-C, Ctrl-\   quit
//   r                   reload
//   + (or =), - (or _)  one worker more, one fewer
//   R, digits, y        restart that slot: R opens a prompt, the digits name the slot,
//                       y confirms; Backspace edits; Esc or any other key cancels
// Other keys do nothing. Ctrl-C quits in the prompt as well.
class TopKeys {
 public:
  // The bytes of one read() from the terminal; the actions they make, in order.
  std::vector<TopAction> feed(std::string_view bytes);

  // While R's prompt is open, what it shows ("restart slot: 12  (y restarts it, Esc cancels)");
  // empty otherwise.
  std::string prompt() const;

 private:
  enum class Escape { none, started, sequence };

  void key(char byte, bool last_in_read, std::vector<TopAction>& actions);
  void prompt_key(char byte, std::vector<TopAction>& actions);

  bool prompting_ = false;
  std::string slot_;  // the digits typed after R
  Escape escape_ = Escape::none;
};

}  // namespace clusterd
