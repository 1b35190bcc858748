// Reads a small text file whole.
#include "text_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "fd.h"

namespace clusterd {

std::optional<std::string> read_text_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return std::nullopt;
  }
  return text.str();
}

bool read_file_at(int directory, const char* name, std::string& text) {
  const Fd file(retry_on_eintr([&] { return ::openat(directory, name, O_RDONLY | O_CLOEXEC | O_NOCTTY); }));
  if (!file) {
    return false;
  }
  constexpr std::size_t chunk = 4096;
  std::size_t size = 0;
  for (;;) {
    if (text.size() < size + chunk) {
      text.resize(size + chunk);
    }
    const ssize_t got = retry_on_eintr([&] { return ::read(file.get(), text.data() + size, text.size() - size); });
    if (got < 0) {
      return false;
    }
    if (got == 0) {
      text.resize(size);
      return true;
    }
    size += static_cast<std::size_t>(got);
  }
}

}  // namespace clusterd
