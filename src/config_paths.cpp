// Makes a relative path of the configuration absolute: a value written in the config file is taken
// from the file's directory, a value given on the command line from clusterd's working directory.
#include "config_paths.h"

#include <utility>

namespace clusterd::config_detail {

std::string absolute_path(std::string_view path, std::string_view base) {
  if (path.starts_with('/') || base.empty()) {
    return std::string(path);
  }
  std::string out(base);
  std::string_view rest = path;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (segment.empty() || segment == ".") {
      continue;
    }
    if (!out.ends_with('/')) {
      out += '/';
    }
    out += segment;
  }
  // "dir/" keeps its meaning of "a directory" when it is one: the kernel refuses a file there.
  if (path.ends_with('/') && !out.ends_with('/')) {
    out += '/';
  }
  return out;
}

PathBases::PathBases(const std::string& config_file, std::string working_directory)
    : working_directory_(std::move(working_directory)) {
  if (config_file.empty()) {
    return;
  }
  const auto slash = config_file.rfind('/');
  if (slash == std::string::npos) {
    file_directory_ = working_directory_;
  } else {
    file_directory_ = absolute_path(slash == 0 ? "/" : config_file.substr(0, slash), working_directory_);
  }
}

std::string PathBases::resolve(const toml::node& node, const Reporter& report, std::string_view path) const {
  return absolute_path(path, report.from_flag(node) ? working_directory_ : file_directory_);
}

}  // namespace clusterd::config_detail
