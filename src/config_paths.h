// Makes a relative path of the configuration absolute: a value written in the config file is taken
// from the file's directory, a value given on the command line from clusterd's working directory.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <string>
#include <string_view>

#include "toml_library.h"

#include "config_report.h"

namespace clusterd::config_detail {

// `path` made absolute from `base`: unchanged when already absolute or when `base` is "" (no
// working directory known). "." segments and repeated slashes are dropped; ".." is kept, since
// only the kernel knows what it means after a symbolic link.
std::string absolute_path(std::string_view path, std::string_view base);

// Where relative paths come from, for one build_config call.
class PathBases {
 public:
  // `config_file`: the path of -c FILE as given ("" without one); `working_directory`: clusterd's,
  // absolute ("" if unknown).
  PathBases(const std::string& config_file, std::string working_directory);

  // `path` as the value `node` holds it, made absolute from the file's directory when the node
  // comes from the file, from the working directory when it comes from a flag.
  std::string resolve(const toml::node& node, const Reporter& report, std::string_view path) const;

 private:
  std::string file_directory_;
  std::string working_directory_;
};

}  // namespace clusterd::config_detail
