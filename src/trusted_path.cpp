// Decides whether another user could change what a path names; opens directories without
// following a link such a user planted.
#include "trusted_path.h"
#include "errno_text.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <vector>

#include <fmt/format.h>

namespace clusterd {
namespace {

bool trusted_owner(uid_t owner, uid_t euid) { return owner == 0 || owner == euid; }

std::string trusted_owners(uid_t euid) {
  return euid == 0 ? std::string("root") : fmt::format("root or uid {} (clusterd's user)", euid);
}

std::string mode_text(const struct stat& status) { return fmt::format("{:04o}", status.st_mode & 07777); }

std::string writers(mode_t mode) {
  const bool group = (mode & S_IWGRP) != 0;
  const bool others = (mode & S_IWOTH) != 0;
  return group && others ? "its group and by others" : group ? "its group" : "others";
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = path.find('/', start);
    const std::string part = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string path;
  for (const std::string& part : parts) {
    path += "/" + part;
  }
  return path.empty() ? "/" : path;
}

std::optional<std::string> read_link(int fd) {
  char target[PATH_MAX];
  const ssize_t length = ::readlinkat(fd, "", target, sizeof target);
  if (length < 0 || static_cast<std::size_t>(length) >= sizeof target) {
    return std::nullopt;
  }
  return std::string(target, static_cast<std::size_t>(length));
}

}  // namespace

std::optional<std::string> untrusted_directory(std::string_view path, const struct stat& status, uid_t euid,
                                               DirectoryRole role) {
  if (!S_ISDIR(status.st_mode)) {
    return fmt::format("{} is not a directory", path);
  }
  if (!trusted_owner(status.st_uid, euid)) {
    return fmt::format("{} is owned by uid {}, who could swap a file in it for a link to another; only {} "
                       "may own it (chown root {})",
                       path, status.st_uid, trusted_owners(euid), path);
  }
  const mode_t written_by_others = status.st_mode & (S_IWGRP | S_IWOTH);
  if (written_by_others == 0) {
    return std::nullopt;
  }
  if (role == DirectoryRole::on_the_way && (status.st_mode & S_ISVTX) != 0) {
    return std::nullopt;  // others may add names, never rename or remove one that is not theirs
  }
  if (role == DirectoryRole::holds_the_file && (status.st_mode & S_ISVTX) != 0) {
    return fmt::format("{} (mode {}) may be written by {}, who could create the file's name there first; "
                       "use a directory that only {} can write",
                       path, mode_text(status), writers(status.st_mode), trusted_owners(euid));
  }
  return fmt::format("{} (mode {}) is writable by {}, who could swap a file in it for a link to another "
                     "(chmod go-w {})",
                     path, mode_text(status), writers(status.st_mode), path);
}

std::optional<std::string> untrusted_file(std::string_view path, const struct stat& status, uid_t euid) {
  if (!S_ISREG(status.st_mode)) {
    return fmt::format("{} is not a regular file", path);
  }
  if (!trusted_owner(status.st_uid, euid)) {
    return fmt::format("{} is owned by uid {}, who could change it; only {} may own it (chown root {})", path,
                       status.st_uid, trusted_owners(euid), path);
  }
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return fmt::format("{} (mode {}) is writable by {}, who could change it (chmod go-w {})", path,
                       mode_text(status), writers(status.st_mode), path);
  }
  return std::nullopt;
}

std::pair<std::string, std::string> split_directory(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return {".", path};
  }
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

tl::expected<Fd, std::string> open_trusted_directory(const std::string& directory, uid_t euid,
                                                     std::string_view what) {
  std::string absolute = directory;
  if (!absolute.starts_with('/')) {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) {
      return tl::make_unexpected(fmt::format("{} {}: cannot read the working directory: {}", what, directory,
                                             errno_text(errno)));
    }
    absolute = std::string(cwd) + "/" + absolute;
  }
  auto fail = [&](const std::string& why) { return tl::make_unexpected(fmt::format("{} {}: {}", what, directory, why)); };

  // The directories opened so far, from /; a ".." pops one, a symlink restarts from its target.
  std::vector<Fd> opened;
  std::vector<std::string> names;
  std::deque<std::string> pending;
  for (const std::string& part : components(absolute)) {
    pending.push_back(part);
  }
  auto open_root = [&]() -> std::optional<std::string> {
    opened.clear();
    names.clear();
    Fd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat status {};
    if (!root || ::fstat(root.get(), &status) != 0) {
      return "cannot open /: " + errno_text(errno);
    }
    const auto role = pending.empty() ? DirectoryRole::holds_the_file : DirectoryRole::on_the_way;
    if (auto why = untrusted_directory("/", status, euid, role)) {
      return why;
    }
    opened.push_back(std::move(root));
    return std::nullopt;
  };
  if (auto why = open_root()) {
    return fail(*why);
  }
  int links_followed = 0;
  while (!pending.empty()) {
    const std::string name = pending.front();
    pending.pop_front();
    if (name == "..") {
      if (opened.size() > 1) {
        opened.pop_back();
        names.pop_back();
      }
      continue;
    }
    names.push_back(name);
    const std::string here = join(names);
    Fd entry(retry_on_eintr([&] { return ::openat(opened.back().get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC); }));
    struct stat status {};
    if (!entry || ::fstat(entry.get(), &status) != 0) {
      return fail(fmt::format("cannot open {}: {}", here, errno_text(errno)));
    }
    if (S_ISLNK(status.st_mode)) {
      // The directory holding the link was checked, so a trusted user put it there, unless it is
      // a world-writable sticky one: then the link must be trusted itself (as protected_symlinks).
      if (!trusted_owner(status.st_uid, euid)) {
        return fail(fmt::format("{} is a symbolic link owned by uid {}, who could point it anywhere; only {} may "
                                "own a link on this path",
                                here, status.st_uid, trusted_owners(euid)));
      }
      if (++links_followed > 40) {
        return fail("too many levels of symbolic links");
      }
      const auto target = read_link(entry.get());
      if (!target) {
        return fail(fmt::format("cannot read the symbolic link {}: {}", here, errno_text(errno)));
      }
      names.pop_back();
      const auto parts = components(*target);
      pending.insert(pending.begin(), parts.begin(), parts.end());
      if (target->starts_with('/')) {
        if (auto why = open_root()) {
          return fail(*why);
        }
      }
      continue;
    }
    const auto role = pending.empty() ? DirectoryRole::holds_the_file : DirectoryRole::on_the_way;
    if (auto why = untrusted_directory(here, status, euid, role)) {
      return fail(*why);
    }
    opened.push_back(std::move(entry));
  }
  return std::move(opened.back());
}

}  // namespace clusterd
