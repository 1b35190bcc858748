// Chooses, creates and checks control socket directories, and finds the sockets in them.
#include "control_paths.h"
#include "errno_text.h"
#include "trusted_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <system_error>

#include <fmt/format.h>

namespace clusterd {
namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::nullopt : std::optional<std::string>(value);
}

bool is_absolute(const std::optional<std::string>& path) { return path && path->starts_with('/'); }

// A directory whose name anyone can predict must be ours and closed to others, or someone else
// could replace the socket in it between our bind and a client's connect (interface §4.4).
// Group write is refused as well as other write: either lets another user rename ours away.
std::optional<std::string> judge_directory(const std::string& path, const struct stat& status, std::string_view what) {
  if (!S_ISDIR(status.st_mode)) {
    return fmt::format("{} {} is not a directory", what, path);
  }
  if (status.st_uid != ::geteuid()) {
    return fmt::format("{} {} is owned by uid {}, not by clusterd's uid {}", what, path, status.st_uid, ::geteuid());
  }
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return fmt::format("{} {} is writable by other users (mode {:04o})", what, path, status.st_mode & 07777);
  }
  return std::nullopt;
}

std::vector<std::string> distinct_paths(const DefaultDirectories& defaults) {
  std::vector<std::string> directories;
  for (const DefaultDirectory& directory : defaults.directories) {
    // The same directory twice (RUNTIME_DIRECTORY=/run/clusterd) is looked at once.
    if (std::find(directories.begin(), directories.end(), directory.path) == directories.end()) {
      directories.push_back(directory.path);
    }
  }
  return directories;
}

}  // namespace

std::optional<std::string> prepare_private_directory(const std::string& path, bool create, std::string_view what) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    const int error = errno;
    if (error != ENOENT) {
      return fmt::format("cannot inspect {} {}: {}", what, path, errno_text(error));
    }
    const std::string parent = std::filesystem::path(path).parent_path().string();
    if (!create) {
      // `check` creates nothing: a start would create it if its parent is there.
      struct stat parent_status {};
      if (::stat(parent.c_str(), &parent_status) != 0 || !S_ISDIR(parent_status.st_mode)) {
        return fmt::format("cannot create {} {}: {} is not a directory", what, path, parent);
      }
      return std::nullopt;
    }
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return fmt::format("cannot create {} {}: {}", what, path, errno_text(errno));
    }
    if (::lstat(path.c_str(), &status) != 0) {
      return fmt::format("cannot inspect {} {}: {}", what, path, errno_text(errno));
    }
    // The umask can only have narrowed 0700; this makes it exactly 0700 whatever it was.
    if (S_ISDIR(status.st_mode) && status.st_uid == ::geteuid() && ::chmod(path.c_str(), 0700) == 0) {
      status.st_mode = (status.st_mode & ~07777u) | 0700;
    }
  }
  // $RUNTIME_DIRECTORY (made for us by systemd, 0755 by default) is judged the same way: a socket
  // in a directory others may write can be swapped all the same.
  return judge_directory(path, status, what);
}

DefaultDirectories default_directories(const std::optional<std::string>& runtime_directory,
                                       const std::optional<std::string>& xdg_runtime_dir, uid_t euid,
                                       bool every_base) {
  DefaultDirectories defaults;
  if (is_absolute(runtime_directory)) {
    // systemd lists one path per RuntimeDirectory= entry, separated by ':'.
    defaults.directories.push_back({runtime_directory->substr(0, runtime_directory->find(':')), true});
  } else if (runtime_directory && !runtime_directory->empty()) {
    defaults.ignored.push_back("$RUNTIME_DIRECTORY=" + *runtime_directory + ": not an absolute path");
  }
  if (is_absolute(xdg_runtime_dir)) {
    defaults.directories.push_back({*xdg_runtime_dir + "/clusterd", false});
  } else if (xdg_runtime_dir && !xdg_runtime_dir->empty()) {
    defaults.ignored.push_back("$XDG_RUNTIME_DIR=" + *xdg_runtime_dir + ": not an absolute path");
  }
  if (euid == 0 || every_base) {
    defaults.directories.push_back({"/run/clusterd", false});
  }
  if (euid != 0 || every_base) {
    defaults.directories.push_back({"/tmp/clusterd-" + std::to_string(euid), false});
  }
  return defaults;
}

DefaultDirectories default_directories_here(bool every_base) {
  return default_directories(environment("RUNTIME_DIRECTORY"), environment("XDG_RUNTIME_DIR"), ::geteuid(),
                             every_base);
}

std::vector<std::string> control_directories(const std::optional<std::string>& runtime_directory,
                                             const std::optional<std::string>& xdg_runtime_dir, uid_t euid,
                                             bool every_base) {
  return distinct_paths(default_directories(runtime_directory, xdg_runtime_dir, euid, every_base));
}

std::vector<std::string> control_directories_here(bool every_base) {
  return distinct_paths(default_directories_here(every_base));
}

tl::expected<std::optional<std::string>, std::string> control_socket_path(const ControlConfig& control,
                                                                         const std::string& name, bool create) {
  if (!control.enabled) {
    return std::optional<std::string>();
  }
  if (control.socket) {
    const std::string parent = std::filesystem::path(*control.socket).parent_path().string();
    struct stat status {};
    if (::stat(parent.empty() ? "/" : parent.c_str(), &status) != 0) {
      return tl::make_unexpected("control.socket " + *control.socket + ": cannot use directory " + parent + ": " +
                                 errno_text(errno));
    }
    if (!S_ISDIR(status.st_mode)) {
      return tl::make_unexpected("control.socket " + *control.socket + ": " + parent + " is not a directory");
    }
    return control.socket;
  }
  const std::string directory = control_directories_here(false).front();
  const std::string path = directory + "/" + name + ".sock";
  if (path.size() > max_control_path) {
    return tl::make_unexpected(fmt::format(
        "control socket path {} is {} bytes, the limit is {}; set control.socket (or --control) to a shorter path",
        path, path.size(), max_control_path));
  }
  if (auto problem = prepare_private_directory(directory, create, "control socket directory")) {
    return tl::make_unexpected(*problem + "; set control.socket (or --control) to another path, or none");
  }
  return std::optional<std::string>(path);
}

ControlSearch find_control_sockets(const std::vector<std::string>& directories,
                                   const std::optional<std::string>& name, uid_t euid) {
  ControlSearch search;
  for (const std::string& directory : directories) {
    const std::string looked_for = directory + "/" + (name ? *name : std::string("*")) + ".sock";
    struct stat status {};
    if (::stat(directory.c_str(), &status) != 0) {
      search.tried.push_back(looked_for);  // not there (or not ours to see): nothing to find
      continue;
    }
    auto trusted = open_trusted_directory(directory, euid, "control socket directory");
    if (!trusted) {
      search.untrusted.push_back(trusted.error());
      continue;
    }
    search.tried.push_back(looked_for);
    // Looked at through the fd that was checked, so the names are those of the trusted directory.
    const int at = trusted->get();
    const auto is_socket = [at](const std::string& entry) {
      struct stat entry_status {};
      return ::fstatat(at, entry.c_str(), &entry_status, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(entry_status.st_mode);
    };
    if (name) {
      if (is_socket(*name + ".sock")) {
        search.found.push_back(directory + "/" + *name + ".sock");
      }
      continue;
    }
    // An O_PATH fd cannot be read: the directory is opened again through it to list it.
    const int listing = ::openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    std::unique_ptr<DIR, int (*)(DIR*)> stream(listing < 0 ? nullptr : ::fdopendir(listing), ::closedir);
    if (!stream) {
      if (listing >= 0) {
        ::close(listing);
      }
      continue;
    }
    std::vector<std::string> here;
    while (const dirent* entry = ::readdir(stream.get())) {
      const std::string entry_name = entry->d_name;
      if (entry_name.size() > 5 && entry_name.ends_with(".sock") && is_socket(entry_name)) {
        here.push_back(directory + "/" + entry_name);
      }
    }
    std::sort(here.begin(), here.end());
    search.found.insert(search.found.end(), here.begin(), here.end());
  }
  return search;
}

}  // namespace clusterd
