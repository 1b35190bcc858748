// The execve of `clusterd upgrade` and the state's way through it (upgrade_exec.h).
#include "upgrade_exec.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "errno_text.h"
#include "fd.h"
#include "text_file.h"
#include "trusted_path.h"

extern char** environ;

namespace clusterd {
namespace {

constexpr std::string_view deleted_suffix = " (deleted)";

std::optional<int> parse_fd(std::string_view text) {
  int fd = -1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (error != std::errc() || end != text.data() + text.size() || fd < 3) {
    return std::nullopt;
  }
  return fd;
}

bool set_cloexec(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC) == 0;
}

std::optional<std::string> read_link(const char* path) {
  std::string target(4096, '\0');
  const ssize_t length = ::readlink(path, target.data(), target.size());
  if (length < 0 || static_cast<std::size_t>(length) == target.size()) {
    return std::nullopt;
  }
  target.resize(static_cast<std::size_t>(length));
  return target;
}

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t wrote = ::write(fd, text.data(), text.size());
    if (wrote < 0 && errno == EINTR) {
      continue;
    }
    if (wrote <= 0) {
      return false;
    }
    text.remove_prefix(static_cast<std::size_t>(wrote));
  }
  return true;
}

// clusterd's own command line, as it was started: /proc/self/cmdline's NUL-separated words.
std::vector<std::string> own_command_line() {
  std::vector<std::string> words;
  const std::string text = read_text_file("/proc/self/cmdline").value_or("");
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\0', start);
    words.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    start = end == std::string::npos ? text.size() : end + 1;
  }
  return words;
}

std::string read_all(int fd) {
  std::string text;
  char buffer[65536];
  off_t offset = 0;
  for (;;) {
    const ssize_t got = ::pread(fd, buffer, sizeof buffer, offset);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(got));
    offset += got;
  }
}

// execve of `binary` (or of the file `exe_fd`) with the command line and environment of now.
int exec_self(const std::string& binary, int exe_fd) {
  std::vector<std::string> words = own_command_line();
  if (words.empty()) {
    words.push_back("clusterd");
  }
  std::vector<char*> argv;
  for (std::string& word : words) {
    argv.push_back(word.data());
  }
  argv.push_back(nullptr);
  if (exe_fd >= 0) {
    ::execveat(exe_fd, "", argv.data(), environ, AT_EMPTY_PATH);
  } else {
    ::execve(binary.c_str(), argv.data(), environ);
  }
  return errno;
}

}  // namespace

std::string installed_binary() {
  std::string path = read_link("/proc/self/exe").value_or("");
  if (path.ends_with(deleted_suffix)) {
    path.erase(path.size() - deleted_suffix.size());
  }
  return path;
}

std::optional<std::string> unusable_binary(const std::string& binary) {
  if (binary.empty() || binary.front() != '/') {
    return "the binary must be given as an absolute path: \"" + binary + "\"";
  }
  const auto [directory, name] = split_directory(binary);
  auto opened = open_trusted_directory(directory, ::geteuid(), "the binary's directory");
  if (!opened) {
    return opened.error();
  }
  struct stat status {};
  if (::fstatat(opened->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
    return "cannot use the binary " + binary + ": " + errno_text(errno);
  }
  if (S_ISLNK(status.st_mode) && ::stat(binary.c_str(), &status) != 0) {
    return "cannot use the binary " + binary + ": " + errno_text(errno);
  }
  if (auto problem = untrusted_file(binary, status, ::geteuid())) {
    return *problem;
  }
  if (::access(binary.c_str(), X_OK) != 0) {
    return "the binary " + binary + " is not executable: " + errno_text(errno);
  }
  return std::nullopt;
}

std::string exec_upgrade(const std::string& binary, const UpgradeState& state) {
  const Fd memfd(::memfd_create("clusterd-upgrade-state", MFD_CLOEXEC));
  if (!memfd) {
    return "memfd_create: " + errno_text(errno);
  }
  const std::string text = write_upgrade_state(state);
  if (!write_all(memfd.get(), text)) {
    return "cannot write the state: " + errno_text(errno);
  }
  // The running binary, kept open: a new one that cannot take the state runs it again, even
  // when the package upgrade replaced its file.
  const Fd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!self) {
    return "cannot open /proc/self/exe: " + errno_text(errno);
  }
  std::vector<int> fds = handed_fds(state);
  fds.push_back(memfd.get());
  fds.push_back(self.get());
  for (const int fd : fds) {
    set_cloexec(fd, false);
  }
  ::setenv(upgrade_state_variable, std::to_string(memfd.get()).c_str(), 1);
  ::setenv(upgrade_fallback_variable, (std::to_string(self.get()) + " " + std::to_string(memfd.get())).c_str(), 1);
  const int error = exec_self(binary, -1);
  ::unsetenv(upgrade_state_variable);
  ::unsetenv(upgrade_fallback_variable);
  for (const int fd : fds) {
    set_cloexec(fd, true);
  }
  return "cannot execute " + binary + ": " + errno_text(error);
}

std::optional<tl::expected<UpgradeState, std::string>> take_upgrade_state() {
  const char* value = std::getenv(upgrade_state_variable);
  if (value == nullptr) {
    return std::nullopt;
  }
  const auto fd = parse_fd(value);
  ::unsetenv(upgrade_state_variable);
  if (!fd) {
    return tl::make_unexpected(std::string(upgrade_state_variable) + " is not an fd: \"" + value + "\"");
  }
  // Not closed: a give-back hands the same memfd on.
  set_cloexec(*fd, true);
  return read_upgrade_state(read_all(*fd));
}

std::string give_upgrade_back(const std::string& why) {
  const char* value = std::getenv(upgrade_fallback_variable);
  const std::string_view fallback = value != nullptr ? value : "";
  const std::size_t space = fallback.find(' ');
  const auto exe_fd = space == std::string_view::npos ? std::nullopt : parse_fd(fallback.substr(0, space));
  const auto state_fd = space == std::string_view::npos ? std::nullopt : parse_fd(fallback.substr(space + 1));
  if (!exe_fd || !state_fd) {
    return std::string("no binary to give the state back to (") + upgrade_fallback_variable + " is unset)";
  }
  set_cloexec(*exe_fd, false);
  set_cloexec(*state_fd, false);
  ::setenv(upgrade_state_variable, std::to_string(*state_fd).c_str(), 1);
  ::setenv(upgrade_refused_variable, why.c_str(), 1);
  ::unsetenv(upgrade_fallback_variable);
  return "cannot execute the binary that handed the state over: " + errno_text(exec_self("", *exe_fd));
}

void keep_from_workers(const UpgradeState& state) {
  for (const int fd : handed_fds(state)) {
    set_cloexec(fd, true);
  }
}

std::optional<std::string> take_upgrade_refusal() {
  if (const char* fallback = std::getenv(upgrade_fallback_variable)) {
    // The state was taken over: the old binary's file and the state's memfd are not needed.
    const std::string_view text = fallback;
    const std::size_t space = text.find(' ');
    for (const auto fd : {parse_fd(text.substr(0, space)),
                          space == std::string_view::npos ? std::nullopt : parse_fd(text.substr(space + 1))}) {
      if (fd) {
        ::close(*fd);
      }
    }
    ::unsetenv(upgrade_fallback_variable);
  }
  const char* value = std::getenv(upgrade_refused_variable);
  if (value == nullptr) {
    return std::nullopt;
  }
  std::string why = value;
  ::unsetenv(upgrade_refused_variable);
  return why;
}

}  // namespace clusterd
