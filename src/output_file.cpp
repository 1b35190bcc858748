// Opens output.file and rotates it by size.
#include "output_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cerrno>

#include <fmt/format.h>

#include "errno_text.h"
#include "log_file.h"
#include "trusted_path.h"

namespace clusterd {

tl::expected<OpenedOutputFile, std::string> open_output_file(const std::string& path, uid_t euid) {
  // 0640: what workers print (a token in an error message, a customer's address) is not for every
  // local user, unlike clusterd's own log.
  auto file = open_log_file(path, euid, "output.file", 0640);
  if (!file) {
    return tl::make_unexpected(file.error());
  }
  struct stat status {};
  if (::fstat(file->get(), &status) != 0) {
    return tl::make_unexpected(fmt::format("cannot open \"{}\" for appending: {}", path, errno_text(errno)));
  }
  return OpenedOutputFile{std::move(*file), static_cast<std::uint64_t>(status.st_size)};
}

tl::expected<OpenedOutputFile, std::string> rotate_output_file(const std::string& path, int keep, uid_t euid) {
  const auto [directory, name] = split_directory(path);
  auto parent = open_trusted_directory(directory, euid, "output.file directory");
  if (!parent) {
    return tl::make_unexpected(fmt::format("cannot rotate \"{}\": {}", path, parent.error()));
  }
  const auto rename = [&](const std::string& from, const std::string& to) -> tl::expected<void, std::string> {
    // rename() never follows a link at either name: a link is moved as a link.
    if (::renameat(parent->get(), from.c_str(), parent->get(), to.c_str()) != 0 && errno != ENOENT) {
      return tl::make_unexpected(fmt::format("cannot rotate \"{}\": renaming {} to {}: {}", path, from, to,
                                             errno_text(errno)));
    }
    return {};
  };
  for (int index = keep - 1; index >= 1; --index) {
    if (auto moved = rename(fmt::format("{}.{}", name, index), fmt::format("{}.{}", name, index + 1)); !moved) {
      return tl::make_unexpected(moved.error());
    }
  }
  if (auto moved = rename(name, name + ".1"); !moved) {
    return tl::make_unexpected(moved.error());
  }
  return open_output_file(path, euid);
}

}  // namespace clusterd
