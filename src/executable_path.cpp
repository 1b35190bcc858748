// The PATH search of a start: execvp's rules, with relative names taken from the worker's directory.
#include "executable_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string_view>

namespace clusterd {
namespace {

bool is_absolute(std::string_view path) { return !path.empty() && path.front() == '/'; }

// `base` + "/" + `relative`, without "." components or repeated slashes. ".." is kept: with
// symlinks it does not simply cancel the component before it.
std::string join_path(std::string_view base, std::string_view relative) {
  std::string joined;
  for (const std::string_view part : {base, relative}) {
    std::size_t start = 0;
    while (start <= part.size()) {
      const std::size_t end = std::min(part.find('/', start), part.size());
      const std::string_view component = part.substr(start, end - start);
      if (!component.empty() && component != ".") {
        joined += '/';
        joined += component;
      }
      start = end + 1;
    }
  }
  return joined.empty() ? "/" : joined;
}

// 0 when `path` is a file this process could execute, else the errno execve would most likely
// give. A directory is EACCES, as execve(2) reports it.
int executable_error(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    return errno;
  }
  if (!S_ISREG(status.st_mode)) {
    return EACCES;
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return errno;
  }
  return 0;
}

tl::expected<std::string, int> current_directory() {
  std::string buffer(PATH_MAX, '\0');
  if (::getcwd(buffer.data(), buffer.size()) == nullptr) {
    return tl::make_unexpected(errno);
  }
  buffer.resize(buffer.find('\0'));
  return buffer;
}

}  // namespace

tl::expected<std::string, int> resolve_executable(const std::string& program,
                                                  const std::string& directory,
                                                  const std::string& path_variable) {
  if (program.empty()) {
    return tl::make_unexpected(ENOENT);
  }
  // Where the worker will run: relative names are found from there, as its own exec would.
  std::string base = directory;
  if (!is_absolute(base)) {
    auto cwd = current_directory();
    if (!cwd) {
      return tl::make_unexpected(cwd.error());
    }
    base = join_path(*cwd, directory);
  }

  if (program.find('/') != std::string::npos) {
    std::string candidate = is_absolute(program) ? join_path("", program) : join_path(base, program);
    if (const int error = executable_error(candidate); error != 0) {
      return tl::make_unexpected(error);
    }
    return candidate;
  }

  // execvp's rules (exec(3)): an unset or empty PATH means the default "/bin:/usr/bin", an
  // empty entry means the working directory, EACCES from any entry wins over ENOENT, and other
  // errors (ENOTDIR, ELOOP) just move on to the next entry.
  const std::string_view path = path_variable.empty() ? std::string_view("/bin:/usr/bin") : path_variable;
  bool denied = false;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    const std::string_view entry = path.substr(start, end - start);
    start = end + 1;
    const std::string entry_directory = is_absolute(entry) ? join_path("", entry) : join_path(base, entry);
    std::string candidate = join_path(entry_directory, program);
    const int error = executable_error(candidate);
    if (error == 0) {
      return candidate;
    }
    denied = denied || error == EACCES;
  }
  return tl::make_unexpected(denied ? EACCES : ENOENT);
}

}  // namespace clusterd
