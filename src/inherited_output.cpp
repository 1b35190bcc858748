// Tells which of clusterd's own stdout and stderr are regular files.
#include "inherited_output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <string_view>
#include <utility>

namespace clusterd {

std::vector<std::string> regular_output_files() {
  std::vector<std::string> files;
  constexpr std::array<std::pair<int, std::string_view>, 2> streams{{{1, "stdout"}, {2, "stderr"}}};
  for (const auto& [fd, name] : streams) {
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      continue;
    }
    std::string described(name);
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    std::array<char, 4096> target{};
    const ssize_t length = ::readlink(link.c_str(), target.data(), target.size() - 1);
    if (length > 0) {
      described += " (" + std::string(target.data(), static_cast<std::size_t>(length)) + ")";
    }
    files.push_back(std::move(described));
  }
  return files;
}

}  // namespace clusterd
