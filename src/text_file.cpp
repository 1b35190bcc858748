// Reads a small text file whole.
#include "text_file.h"

#include <fstream>
#include <sstream>

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

}  // namespace clusterd
