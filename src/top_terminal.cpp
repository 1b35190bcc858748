// Puts the terminal into full-screen raw mode for `clusterd top` and draws its screen.
#include "top_terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <system_error>

#include "fd.h"

namespace clusterd {
namespace {

constexpr std::string_view enter_screen = "\x1b[?1049h\x1b[?25l";  // alternate screen, cursor hidden
constexpr std::string_view leave_screen = "\x1b[?25h\x1b[?1049l";

// Writes all of `text`, blocking; a terminal that went away (EIO, EPIPE) ends the writing
// quietly: top then learns of it from its stdin (EOF or hangup).
void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t written = retry_on_eintr([&] { return ::write(fd, text.data(), text.size()); });
    if (written <= 0) {
      return;
    }
    text.remove_prefix(static_cast<std::size_t>(written));
  }
}

}  // namespace

FullScreen::FullScreen(int in, int out) : in_(in), out_(out) {
  if (::tcgetattr(in_, &saved_) != 0) {
    throw std::system_error(errno, std::generic_category(), "tcgetattr");
  }
  termios raw = saved_;
  // cfmakeraw without its output part: OPOST stays, and nothing top writes relies on it either way.
  raw.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  if (::tcsetattr(in_, TCSAFLUSH, &raw) != 0) {
    throw std::system_error(errno, std::generic_category(), "tcsetattr");
  }
  write_all(out_, enter_screen);
}

FullScreen::~FullScreen() {
  write_all(out_, leave_screen);
  ::tcsetattr(in_, TCSAFLUSH, &saved_);
}

WindowSize FullScreen::size() const {
  winsize size{};
  if (::ioctl(out_, TIOCGWINSZ, &size) != 0 || size.ws_row == 0 || size.ws_col == 0) {
    return {};
  }
  return {size.ws_row, size.ws_col};
}

void FullScreen::draw(const std::vector<std::string>& lines) {
  // Each row addressed by itself and cleared before it is written, never a newline after the
  // last row: a line feed on the bottom row would scroll the screen by one. Cleared before, not
  // after (ESC [ K): after a line that fills the row, the cursor still stands on its last column,
  // and clearing from there would erase that character.
  std::string frame;
  for (std::size_t row = 0; row < lines.size(); ++row) {
    frame += "\x1b[" + std::to_string(row + 1) + ";1H\x1b[2K" + lines[row];
  }
  // Below a screen shorter than the window, what an earlier, taller one left; never from the
  // last row, which would clear what was just drawn there.
  if (static_cast<int>(lines.size()) < size().rows) {
    frame += "\x1b[" + std::to_string(lines.size() + 1) + ";1H\x1b[J";
  }
  write_all(out_, frame);
}

}  // namespace clusterd
