// Creates and removes the private directory that holds workers' notify sockets (protocols §2.3
// step 1), choosing a base where every socket path fits in sun_path.
#include "notify_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

#include "control_paths.h"
#include "errno_text.h"
#include "trusted_path.h"

namespace clusterd {
namespace {

// sun_path holds 108 bytes; a path needs its terminating NUL (unix(7)).
constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

constexpr std::string_view directory_suffix = ".notify.XXXXXX";

// Whether `uid` may pass through `path` and every directory above it. Judged from the bits
// alone, without the uid's groups: not the owner → group and other must both allow search,
// because the kernel applies the group bits to a member even when the other bits say more.
std::optional<std::string> not_searchable_by(const std::string& path, uid_t uid) {
  if (uid == 0) {
    return std::nullopt;
  }
  std::filesystem::path walked;
  for (const auto& part : std::filesystem::path(path)) {
    walked /= part;
    struct stat status {};
    if (::stat(walked.c_str(), &status) != 0) {
      return "stat " + walked.string() + ": " + errno_text(errno);
    }
    const bool searchable = status.st_uid == uid ? (status.st_mode & S_IXUSR) != 0
                                                 : (status.st_mode & S_IXGRP) != 0 && (status.st_mode & S_IXOTH) != 0;
    if (!searchable) {
      return walked.string() + " is not searchable by the workers' uid " + std::to_string(uid);
    }
  }
  return std::nullopt;
}

// The instance name in a file name: only characters config names allow, never a '/'.
std::string file_name_part(const std::string& name) {
  std::string part = name.empty() ? "clusterd" : name;
  for (char& c : part) {
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) {
      c = '_';
    }
  }
  return part;
}

struct Base {
  std::string path;
  bool predictable = false;  // created by clusterd under a fixed name: ownership is checked
};

// The control socket's default directories (interface §4.4), in the same order and by the same
// rules; the ones with a predictable name are prepared and judged like the control socket's.
std::vector<Base> candidate_bases(DefaultDirectories defaults, std::vector<std::string>& refused) {
  refused = std::move(defaults.ignored);
  std::vector<Base> bases;
  for (DefaultDirectory& directory : defaults.directories) {
    bases.push_back({std::move(directory.path), !directory.from_runtime_directory});
  }
  return bases;
}

// Why no notify directory may be made in `base`; nullopt when one may. clusterd creates the
// directory there, then binds, chowns and removes sockets inside it by name: a user who could
// swap `base` or a directory above it for a symlink would choose where those land. So every
// directory from / down to `base` must be trusted (trusted_path.h). `base` itself may be
// world-writable if it is sticky and trusted (/tmp, or a $RUNTIME_DIRECTORY like it): mkdtemp()
// makes a new name there atomically, with a random part, and the sticky bit keeps others from
// renaming or removing what is ours. Checked in every mode, with or without a control socket
// (whose own checks cover only its directory).
std::optional<std::string> untrusted_base(const std::string& base) {
  const uid_t euid = ::geteuid();
  struct stat status {};
  if (::lstat(base.c_str(), &status) == 0 && S_ISDIR(status.st_mode) && (status.st_mode & S_ISVTX) != 0) {
    if (auto problem = untrusted_directory(base, status, euid, DirectoryRole::on_the_way)) {
      return "notify socket base directory " + base + ": " + *problem;
    }
    // Its parent is judged the same way: it holds `base`, not a file, so it may be sticky too
    // (a sticky directory in /tmp). "/" has no parent to judge.
    const std::string parent = split_directory(base).first;
    return parent == base ? std::nullopt : untrusted_base(parent);
  }
  if (auto opened = open_trusted_directory(base, euid, "notify socket base directory"); !opened) {
    return opened.error();
  }
  return std::nullopt;
}

// The directory open and flock()ed for as long as its clusterd runs: a directory of this name
// whose lock can be taken belongs to a clusterd that is gone (SIGKILL leaves no time to remove it).
Fd lock_directory(const std::string& path, bool wait) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd && ::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    fd.reset();
  }
  return fd;
}

// Removes what SIGKILLed instances of `part` left in `base`: our own directories named
// PART.notify.XXXXXX whose lock nobody holds. Never follows a symlink, never touches another
// user's directory (base may be /tmp).
void remove_stale_directories(const std::string& base, const std::string& part) {
  const std::string prefix = part + std::string(directory_suffix.substr(0, directory_suffix.size() - 6));
  DIR* directory = ::opendir(base.c_str());
  if (directory == nullptr) {
    return;
  }
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(directory)) {
    const std::string_view entry_name = entry->d_name;
    if (!entry_name.starts_with(prefix) || entry_name.size() != prefix.size() + 6) {
      continue;
    }
    const std::string path = base + "/" + std::string(entry_name);
    struct stat status {};
    if (::lstat(path.c_str(), &status) != 0 || !S_ISDIR(status.st_mode) || status.st_uid != ::geteuid()) {
      continue;
    }
    if (lock_directory(path, false)) {
      stale.push_back(path);  // locked by us now; removed below, lock released with the fd
    }
  }
  ::closedir(directory);
  for (const std::string& path : stale) {
    std::error_code error;
    std::filesystem::remove_all(path, error);
    spdlog::info("removed a notify socket directory left by a clusterd that is gone path={}{}", path,
                 error ? " error=\"" + error.message() + "\"" : "");
  }
}

struct MadeDirectory {
  std::string path;
  Fd lock;
};

// mkdtemp under `base`, made 0711 (protocols §2.3 step 1) and locked; the name part is
// shortened so that socket_name_room bytes remain within sun_path.
tl::expected<MadeDirectory, std::string> make_notify_directory(const std::string& base, const std::string& name) {
  const std::size_t fixed = base.size() + 1 + directory_suffix.size() + NotifyDirectory::socket_name_room;
  if (fixed >= max_socket_path) {
    return tl::make_unexpected(base + " is too long for socket paths (sun_path holds " +
                               std::to_string(max_socket_path) + " bytes)");
  }
  const std::string part = file_name_part(name).substr(0, max_socket_path - fixed);
  remove_stale_directories(base, part);
  std::string pattern = base + "/" + part + std::string(directory_suffix);
  if (::mkdtemp(pattern.data()) == nullptr) {
    return tl::make_unexpected("mkdtemp " + pattern + ": " + errno_text(errno));
  }
  // mkdtemp makes it 0700; workers running as another user must pass through to their socket.
  // fchmod() on the directory opened without following a link, so the mode goes to the
  // directory mkdtemp made and to nothing else; the fd is then its lock.
  Fd lock = lock_directory(pattern, true);
  struct stat status {};
  if (!lock || ::fstat(lock.get(), &status) != 0 || ::fchmod(lock.get(), 0711) != 0) {
    const int error = errno;
    ::rmdir(pattern.c_str());
    return tl::make_unexpected("chmod " + pattern + ": " + errno_text(error));
  }
  return MadeDirectory{std::move(pattern), std::move(lock)};
}

}  // namespace

tl::expected<NotifyDirectory, std::string> NotifyDirectory::create(const std::string& name,
                                                                   std::optional<uid_t> worker_uid) {
  return create(name, worker_uid, default_directories_here(false));
}

tl::expected<NotifyDirectory, std::string> NotifyDirectory::create(const std::string& name,
                                                                   std::optional<uid_t> worker_uid,
                                                                   DefaultDirectories defaults) {
  std::vector<std::string> refused;
  std::vector<Base> bases = candidate_bases(std::move(defaults), refused);
  // The last resort, always there: /tmp is sticky, and mkdtemp's directory is ours alone.
  bases.push_back({"/tmp", false});
  for (const Base& base : bases) {
    if (base.predictable) {
      if (auto problem = prepare_private_directory(base.path, true, "notify socket base directory")) {
        refused.push_back(std::move(*problem));
        continue;
      }
    }
    if (auto problem = untrusted_base(base.path)) {
      spdlog::warn("notify sockets: skipped a base directory another user could change: {}", *problem);
      refused.push_back(std::move(*problem));
      continue;
    }
    if (worker_uid) {
      if (auto problem = not_searchable_by(base.path, *worker_uid)) {
        refused.push_back(std::move(*problem));
        continue;
      }
    }
    auto made = make_notify_directory(base.path, name);
    if (!made) {
      refused.push_back(std::move(made.error()));
      continue;
    }
    for (const std::string& reason : refused) {
      spdlog::debug("notify socket directory not used: {}", reason);
    }
    return NotifyDirectory(std::move(made->path), std::move(made->lock));
  }
  std::string text = "cannot create a directory for notify sockets:";
  for (const std::string& reason : refused) {
    text += (&reason == &refused.front() ? " " : "; ") + reason;
  }
  return tl::make_unexpected(std::move(text));
}

NotifyDirectory::NotifyDirectory(NotifyDirectory&& other) noexcept
    : path_(std::exchange(other.path_, {})), lock_(std::move(other.lock_)) {}

NotifyDirectory& NotifyDirectory::operator=(NotifyDirectory&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    lock_ = std::move(other.lock_);
  }
  return *this;
}

NotifyDirectory::~NotifyDirectory() { remove(); }

void NotifyDirectory::remove() noexcept {
  if (path_.empty()) {
    return;
  }
  // remove_all does not follow symlinks, and nobody but us can write in a 0711 directory.
  std::error_code error;
  std::filesystem::remove_all(path_, error);
  if (error) {
    spdlog::debug("cannot remove notify socket directory path={} error=\"{}\"", path_, error.message());
  }
  path_.clear();
}

std::string NotifyDirectory::worker_socket_path(int slot, std::uint64_t generation, std::uint64_t instance) const {
  return path_ + "/w" + std::to_string(slot) + "-" + std::to_string(generation) + "-" + std::to_string(instance) +
         ".sock";
}

}  // namespace clusterd
