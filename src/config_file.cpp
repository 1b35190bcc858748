// Reads the config file only when no user but root and clusterd's own could have changed it.
#include "config_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include "errno_text.h"
#include "fd.h"
#include "trusted_path.h"

namespace clusterd::config_detail {
namespace {

// As many links as the kernel follows in one path (path_resolution(7)).
constexpr int max_links = 40;

tl::unexpected<std::string> cannot_read(int error) {
  return tl::unexpected("cannot read config file: " + errno_text(error));
}

tl::unexpected<std::string> refused(const std::string& why) {
  return tl::unexpected("config file refused: " + why);
}

tl::expected<std::string, std::string> read_all(int fd) {
  std::string text;
  std::array<char, 65536> buffer{};
  for (;;) {
    const ssize_t got = retry_on_eintr([&] { return ::read(fd, buffer.data(), buffer.size()); });
    if (got < 0) {
      return cannot_read(errno);
    }
    if (got == 0) {
      return text;
    }
    text.append(buffer.data(), static_cast<std::size_t>(got));
  }
}

}  // namespace

tl::expected<std::string, std::string> read_config_file(const std::string& path, uid_t euid) {
  // A plain stat first, for the message only: a missing or unreadable file is an everyday mistake
  // and keeps its plain "cannot read" wording. Nothing is read through this path.
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    return cannot_read(errno);
  }
  if (S_ISDIR(status.st_mode)) {
    return cannot_read(EISDIR);
  }
  std::string current = path;
  int links = 0;
  for (;;) {
    const auto [directory, name] = split_directory(current);
    auto parent = open_trusted_directory(directory, euid, "config file directory");
    if (!parent) {
      return refused(parent.error());
    }
    // O_NONBLOCK: a FIFO planted by a trusted user must not hang a reload; it is refused below
    // as "not a regular file" once opened. It changes nothing for a regular file.
    Fd file(retry_on_eintr([&, leaf = name.c_str()] {
      return ::openat(parent->get(), leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    }));
    if (!file) {
      const int error = errno;
      struct stat link {};
      if (error != ELOOP || ::fstatat(parent->get(), name.c_str(), &link, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISLNK(link.st_mode)) {
        return cannot_read(error);
      }
      // The link sits in a directory only trusted users may write, so a trusted user made it;
      // the owner is checked anyway, as open_trusted_directory does for links on the way.
      if (link.st_uid != 0 && link.st_uid != euid) {
        return refused(fmt::format("{} is a symbolic link owned by uid {}, who could point it anywhere; only root "
                                   "or clusterd's user may own it (chown -h root {})",
                                   current, link.st_uid, current));
      }
      if (++links > max_links) {
        return cannot_read(ELOOP);
      }
      std::array<char, PATH_MAX> target{};
      const ssize_t length = ::readlinkat(parent->get(), name.c_str(), target.data(), target.size());
      if (length < 0 || static_cast<std::size_t>(length) >= target.size()) {
        return cannot_read(length < 0 ? errno : ENAMETOOLONG);
      }
      const std::string destination(target.data(), static_cast<std::size_t>(length));
      current = destination.starts_with('/') ? destination
                                             : (directory == "/" ? "" : directory) + "/" + destination;
      continue;
    }
    if (::fstat(file.get(), &status) != 0) {
      return cannot_read(errno);
    }
    if (S_ISDIR(status.st_mode)) {
      return cannot_read(EISDIR);
    }
    if (auto why = untrusted_file(current, status, euid)) {
      return refused(*why);
    }
    return read_all(file.get());
  }
}

}  // namespace clusterd::config_detail
