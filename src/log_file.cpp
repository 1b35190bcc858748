// Opens log.file without following a link another user planted; judges an existing log file.
#include "log_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "errno_text.h"
#include "trusted_path.h"

namespace clusterd {
namespace {

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

std::string cannot_open(const std::string& path, const std::string& why) {
  return "cannot open " + quoted(path) + " for appending: " + why;
}

std::string owners(uid_t euid) {
  return euid == 0 ? std::string("root") : fmt::format("root or uid {} (clusterd's user)", euid);
}

}  // namespace

std::optional<std::string> untrusted_log_file(std::string_view path, const struct stat& status, uid_t euid) {
  if (S_ISLNK(status.st_mode)) {
    return fmt::format("{} is a symbolic link; clusterd does not follow one there, since whoever made it would "
                       "choose the file clusterd appends to (remove it, and name the file itself in log.file)",
                       path);
  }
  if (!S_ISREG(status.st_mode)) {
    return fmt::format("{} is not a regular file", path);
  }
  if (status.st_nlink != 1) {
    return fmt::format("{} has {} hard links: another name may be a link that another user made to a file "
                       "clusterd must not append to (remove {} and let clusterd create it)",
                       path, status.st_nlink, path);
  }
  if (status.st_uid != 0 && status.st_uid != euid) {
    return fmt::format("{} is owned by uid {}; clusterd appends only to a log file owned by {} (chown root {}, "
                       "or remove it and let clusterd create it)",
                       path, status.st_uid, owners(euid), path);
  }
  return std::nullopt;
}

tl::expected<Fd, std::string> open_log_file(const std::string& path, uid_t euid, std::string_view key, mode_t mode) {
  const auto [directory, name] = split_directory(path);
  if (name.empty()) {
    return tl::make_unexpected(cannot_open(path, errno_text(EISDIR)));
  }
  auto parent = open_trusted_directory(directory, euid, std::string(key) + " directory");
  if (!parent) {
    return tl::make_unexpected(cannot_open(path, parent.error()));
  }
  // O_NOFOLLOW: a symbolic link at the name fails with ELOOP instead of being followed.
  // O_NONBLOCK: a FIFO at the name must not block the event loop; it is refused below as "not a
  // regular file". 0644: others may read the log, never write it, whatever the umask.
  Fd file(retry_on_eintr([&, leaf = name.c_str()] {
    return ::openat(parent->get(), leaf,
                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
  }));
  struct stat status {};
  if (!file) {
    const int error = errno;
    if (error == ELOOP && ::fstatat(parent->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) {
      if (auto why = untrusted_log_file(path, status, euid)) {
        return tl::make_unexpected(cannot_open(path, *why));
      }
    }
    return tl::make_unexpected(cannot_open(path, errno_text(error)));
  }
  if (::fstat(file.get(), &status) != 0) {
    return tl::make_unexpected(cannot_open(path, errno_text(errno)));
  }
  if (auto why = untrusted_log_file(path, status, euid)) {
    return tl::make_unexpected(cannot_open(path, *why));
  }
  return file;
}

std::optional<std::string> check_log_file(const std::string& path, uid_t euid, std::string_view key) {
  const auto failed = [&path](int error, const std::string& why = "") {
    return cannot_open(path, errno_text(error) + why);
  };
  if (path.empty()) {
    return failed(ENOENT);
  }
  if (path.ends_with("/")) {
    return failed(EISDIR);
  }
  const auto [directory, name] = split_directory(path);
  struct stat status {};
  const bool exists = ::lstat(path.c_str(), &status) == 0;
  if (exists && S_ISDIR(status.st_mode)) {
    return failed(EISDIR);
  }
  if (!exists) {
    if (errno != ENOENT) {
      return failed(errno);  // ENOTDIR (a file where a directory should be), EACCES, ELOOP
    }
    // The file is created on open, but never its directory: that would hide a typo in the path.
    if (::stat(directory.c_str(), &status) != 0) {
      const int error = errno;
      return failed(error, error == ENOENT ? " (clusterd creates no directories)" : "");
    }
    if (!S_ISDIR(status.st_mode)) {
      return failed(ENOTDIR);
    }
  }
  auto parent = open_trusted_directory(directory, euid, std::string(key) + " directory");
  if (!parent) {
    return cannot_open(path, parent.error());
  }
  // Judged relative to the directory just checked, as open_log_file opens it.
  bool present = false;
  if (::fstatat(parent->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) {
    present = true;
    if (auto why = untrusted_log_file(path, status, euid)) {
      return cannot_open(path, *why);
    }
  } else if (errno != ENOENT) {
    return failed(errno);
  }
  // Access for clusterd's effective ids, as its open will have (AT_EACCESS); the name is no link
  // here, so the path names the file (or, when it is missing, the directory) that was judged.
  const std::string target = present ? path : directory;
  if (::faccessat(AT_FDCWD, target.c_str(), present ? W_OK : W_OK | X_OK, AT_EACCESS) != 0) {
    return failed(errno);
  }
  return std::nullopt;
}

}  // namespace clusterd
