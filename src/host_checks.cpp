// The HostChecks that build_config asks (config.h), answered by this system: the file system,
// PATH and the user and group databases. Reads only; creates nothing.
#include "host_checks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "credentials.h"
#include "executable_path.h"
#include "errno_text.h"

namespace clusterd {
namespace {

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

// Whether clusterd's effective ids may `mode` (W_OK, X_OK) `path`; errno when not. AT_EACCESS:
// clusterd opens the file with its effective ids, which is not what plain access(2) checks.
int access_error(const std::string& path, int mode) {
  return ::faccessat(AT_FDCWD, path.c_str(), mode, AT_EACCESS) == 0 ? 0 : errno;
}

std::optional<std::string> check_directory(const std::string& directory) {
  struct stat info {};
  const std::string expected = "expected an existing directory, found " + quoted(directory);
  if (::stat(directory.c_str(), &info) != 0) {
    return errno == ENOENT ? expected : expected + " (" + errno_text(errno) + ")";
  }
  if (!S_ISDIR(info.st_mode)) {
    return expected + " (not a directory)";
  }
  return std::nullopt;
}

// Where a PROGRAM with a '/' is looked for: as written when absolute or without `directory`
// (the working directory then), else inside `directory`.
std::string program_path(const std::string& program, const std::string& directory) {
  if (program.starts_with("/") || directory.empty()) {
    return program;
  }
  return directory + "/" + program;
}

std::string parent_directory(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::optional<std::string> check_log_file(const std::string& path) {
  const auto cannot_open = [&path](int error, const std::string& why = "") {
    return "cannot open " + quoted(path) + " for appending: " + errno_text(error) + why;
  };
  if (path.empty()) {
    return cannot_open(ENOENT);
  }
  if (path.ends_with("/")) {
    return cannot_open(EISDIR);
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) {
      return cannot_open(EISDIR);
    }
    if (const int error = access_error(path, W_OK); error != 0) {
      return cannot_open(error);
    }
    return std::nullopt;
  }
  if (errno != ENOENT) {
    return cannot_open(errno);  // ENOTDIR (a file where a directory should be), EACCES, ELOOP
  }
  // The file is created on open, but never its directory: the logger (spdlog's file sink) would
  // create missing parents, which would hide a typo in the path.
  const std::string parent = parent_directory(path);
  if (::stat(parent.c_str(), &info) != 0) {
    const int error = errno;
    return cannot_open(error, error == ENOENT ? " (clusterd creates no directories)" : "");
  }
  if (!S_ISDIR(info.st_mode)) {
    return cannot_open(ENOTDIR);
  }
  if (const int error = access_error(parent, W_OK | X_OK); error != 0) {
    return cannot_open(error);
  }
  return std::nullopt;
}

}  // namespace

tl::expected<std::string, std::string> find_program(const std::string& program,
                                                    const std::string& directory) {
  const char* path = std::getenv("PATH");
  auto executable =
      resolve_executable(program, directory, path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  if (executable) {
    return *executable;
  }
  const int error = executable.error();
  const bool searched = program.find('/') == std::string::npos;
  std::string reason = errno_text(error);
  if (searched && error == ENOENT) {
    reason += " (searched PATH)";
  }
  // execve(2) says EACCES for a directory, which reads like a permission problem; say what it is.
  if (!searched && error == EACCES && is_directory(program_path(program, directory))) {
    reason = "is a directory";
  }
  return tl::make_unexpected("cannot execute " + quoted(program) + ": " + reason);
}

HostChecks system_host_checks() {
  HostChecks checks;
  checks.directory = check_directory;
  checks.program = [](const std::string& program,
                      const std::string& directory) -> std::optional<std::string> {
    auto found = find_program(program, directory);
    if (found) {
      return std::nullopt;
    }
    return found.error();
  };
  checks.user = check_user_known;
  checks.group = check_group_known;
  checks.log_file = check_log_file;
  return checks;
}

}  // namespace clusterd
