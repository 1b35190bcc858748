// toml++'s implementation, compiled once with the hooks of toml_library.h.
#define TOML_IMPLEMENTATION
#include "toml_library.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace clusterd {

void toml_check_failed(const char* check, const char* file, int line) {
  const std::string_view path(file);
  const auto name = path.substr(path.rfind('/') + 1);  // npos + 1 == 0: the whole path
  throw TomlCheckFailed("`" + std::string(check) + "` at " + std::string(name) + ":" + std::to_string(line));
}

void toml_unreachable_reached(const char* file, int line) noexcept {
  std::fprintf(stderr, "clusterd: the TOML library reached a point it believes unreachable (%s:%d)\n", file, line);
  std::abort();
}

}  // namespace clusterd
