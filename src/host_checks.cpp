// The HostChecks that build_config asks (config.h), answered by this system: the file system,
// PATH and the user and group databases. Reads only; creates nothing.
#include "host_checks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

#include "credentials.h"
#include "executable_path.h"
#include "log_file.h"
#include "inherited_output.h"
#include "errno_text.h"

namespace clusterd {
namespace {

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
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
  checks.log_file = [](const std::string& path, std::string_view key) { return check_log_file(path, ::geteuid(), key); };
  checks.working_directory = []() -> std::string {
    std::error_code error;
    auto cwd = std::filesystem::current_path(error);
    return error ? std::string() : cwd.string();
  };
  checks.effective_uid = [] { return static_cast<unsigned>(::geteuid()); };
  checks.user_uid = [](const std::string& user) -> std::optional<unsigned> {
    const auto uid = uid_of_user(user);
    return uid ? std::optional<unsigned>(*uid) : std::nullopt;
  };
  checks.regular_output_files = regular_output_files;
  return checks;
}

}  // namespace clusterd
