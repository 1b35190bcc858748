// The execve of `clusterd upgrade` and the state's way through it (upgrade_exec.h).
#include "upgrade_exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
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

tl::expected<std::string, std::string> usable_binary(const std::string& binary) {
  if (binary.empty() || binary.front() != '/') {
    return tl::make_unexpected("the binary must be given as an absolute path: \"" + binary + "\"");
  }
  char* resolved = ::realpath(binary.c_str(), nullptr);
  if (resolved == nullptr) {
    return tl::make_unexpected("cannot use the binary " + binary + ": " + errno_text(errno));
  }
  const std::string real = resolved;
  std::free(resolved);
  const auto [directory, name] = split_directory(real);
  auto opened = open_trusted_directory(directory, ::geteuid(), "the binary's directory");
  if (!opened) {
    return tl::make_unexpected(opened.error());
  }
  struct stat status {};
  if (::fstatat(opened->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
    return tl::make_unexpected("cannot use the binary " + real + ": " + errno_text(errno));
  }
  if (auto problem = untrusted_file(real, status, ::geteuid())) {
    return tl::make_unexpected(*problem);
  }
  if ((status.st_mode & 0111) == 0) {
    return tl::make_unexpected("the binary " + real + " is not executable (mode " + std::to_string(status.st_mode & 07777) +
                               ")");
  }
  return real;
}

std::string upgrade_formats_line() {
  std::string formats;
  for (int format = 1; format <= UpgradeState::current_format; ++format) {
    formats += (formats.empty() ? "" : ",") + std::to_string(format);
  }
  return "clusterd upgrade formats " + formats;
}

std::optional<std::string> probe_binary(const std::string& binary) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    return "cannot ask the binary which states it reads: pipe: " + errno_text(errno);
  }
  const Fd read_end(ends[0]);
  Fd write_end(ends[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string program = binary;
  std::string flag = "--upgrade-formats";
  char* argv[] = {program.data(), flag.data(), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, binary.c_str(), &actions, &attributes, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  write_end.reset();
  if (spawned != 0) {
    return "cannot run " + binary + ": " + errno_text(spawned);
  }
  // Bounded: a binary that does not answer in time is killed, and the upgrade refused.
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(probe_limit_ms);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd waiting{read_end.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&waiting, 1, static_cast<int>(left.count())) == 0) {
      timed_out = true;
      break;
    }
    char buffer[256];
    const ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0 || answer.size() > 4096) {
      break;
    }
    answer.append(buffer, static_cast<std::size_t>(got));
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return binary + " did not say which states it reads within " + std::to_string(probe_limit_ms) + " ms";
  }
  const std::string expected_start = "clusterd upgrade formats ";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !answer.starts_with(expected_start)) {
    return binary + " does not take over a running clusterd (`" + binary +
           " --upgrade-formats` did not name the state formats it reads: a clusterd from before `upgrade`, or "
           "another program)";
  }
  std::string_view formats = std::string_view(answer).substr(expected_start.size());
  formats = formats.substr(0, formats.find('\n'));
  const std::string mine = std::to_string(UpgradeState::current_format);
  std::size_t start = 0;
  while (start <= formats.size()) {
    const std::size_t end = std::min(formats.find(',', start), formats.size());
    if (formats.substr(start, end - start) == mine) {
      return std::nullopt;
    }
    start = end + 1;
  }
  return binary + " reads the state formats " + std::string(formats) + ", not this clusterd's " + mine;
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

std::optional<TakenUpgrade> take_upgrade() {
  const char* value = std::getenv(upgrade_state_variable);
  if (value == nullptr) {
    return std::nullopt;
  }
  const std::string state_text = value;
  const std::string fallback_text = std::getenv(upgrade_fallback_variable) != nullptr ? std::getenv(upgrade_fallback_variable) : "";
  std::optional<std::string> refused;
  if (const char* why = std::getenv(upgrade_refused_variable)) {
    refused = why;
  }
  for (const char* variable : {upgrade_state_variable, upgrade_fallback_variable, upgrade_refused_variable}) {
    ::unsetenv(variable);
  }
  UpgradeFallback fallback;
  fallback.refused = refused;
  const std::size_t space = fallback_text.find(' ');
  if (space != std::string::npos) {
    fallback.exe_fd = parse_fd(std::string_view(fallback_text).substr(0, space)).value_or(-1);
    fallback.state_fd = parse_fd(std::string_view(fallback_text).substr(space + 1)).value_or(-1);
  }
  for (const int fd : {fallback.exe_fd, fallback.state_fd}) {
    if (fd >= 0) {
      set_cloexec(fd, true);  // until a give-back needs them
    }
  }
  const auto fd = parse_fd(state_text);
  if (!fd) {
    return TakenUpgrade{tl::make_unexpected(std::string(upgrade_state_variable) + " is not an fd: \"" + state_text + "\""),
                        fallback};
  }
  set_cloexec(*fd, true);
  return TakenUpgrade{read_upgrade_state(read_all(*fd)), fallback};
}

std::string give_upgrade_back(const UpgradeFallback& fallback, const std::string& why) {
  if (fallback.refused) {
    return "this binary was given the state back already (the new one said: " + *fallback.refused + ")";
  }
  if (fallback.exe_fd < 0 || fallback.state_fd < 0) {
    return std::string("no binary to give the state back to (") + upgrade_fallback_variable + " was not set)";
  }
  set_cloexec(fallback.exe_fd, false);
  set_cloexec(fallback.state_fd, false);
  ::setenv(upgrade_state_variable, std::to_string(fallback.state_fd).c_str(), 1);
  ::setenv(upgrade_fallback_variable,
           (std::to_string(fallback.exe_fd) + " " + std::to_string(fallback.state_fd)).c_str(), 1);
  ::setenv(upgrade_refused_variable, why.c_str(), 1);
  return "cannot execute the binary that handed the state over: " + errno_text(exec_self("", fallback.exe_fd));
}

void close_fallback(const UpgradeFallback& fallback) {
  for (const int fd : {fallback.exe_fd, fallback.state_fd}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void keep_from_workers(const UpgradeState& state) {
  for (const int fd : handed_fds(state)) {
    set_cloexec(fd, true);
  }
}

}  // namespace clusterd
