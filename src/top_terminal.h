// The terminal of `clusterd top` in full-screen mode: raw keys, the alternate screen, no cursor;
// and its window size.
//
// Plain ANSI/xterm escapes (alternate screen 1049, cursor 25), no curses: every terminal
// clusterd's operators use (xterm, tmux, screen, the Linux console, VTE) knows them.
#pragma once

#include <termios.h>

#include <string>
#include <vector>

#include "top_screen.h"

namespace clusterd {

// Owns the terminal's mode while it lives. The constructor saves the termios of `in` and sets raw
// mode (no echo, no line editing, no signals from keys: Ctrl-C arrives as a key, which top_keys.h
// takes as quit), switches `out` to the alternate screen and hides the cursor; the destructor
// restores all three on every path out (return, exception; a signal that would kill top is read
// from a signalfd instead, see top_client.h). Neither copyable nor movable.
class FullScreen {
 public:
  FullScreen(int in, int out);  // throws std::system_error when `in` is no terminal
  ~FullScreen();
  FullScreen(const FullScreen&) = delete;
  FullScreen& operator=(const FullScreen&) = delete;

  // The window's size now (TIOCGWINSZ); 24x80 when the terminal does not say.
  WindowSize size() const;

  // Writes `lines` from the top left, each on its own row, clearing what was there before.
  void draw(const std::vector<std::string>& lines);

 private:
  int in_;
  int out_;
  termios saved_{};
};

}  // namespace clusterd
