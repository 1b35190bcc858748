// Asks the host (HostChecks) about the validated values a start depends on (directory, program,
// user, group, log file) and reports each answer at the position of its key.
#include "config_host.h"

#include <optional>
#include <string>
#include <string_view>

namespace clusterd::config_detail {
namespace {

// The value of `name` in `section` ("" for the top level) of the merged table; nullptr if absent.
const toml::node* value_of(const toml::table& root, std::string_view section, std::string_view name) {
  const toml::table* table = &root;
  if (!section.empty()) {
    const toml::node* node = root.get(section);
    table = node != nullptr ? node->as_table() : nullptr;
  }
  return table != nullptr ? table->get(name) : nullptr;
}

// At the value when there is one (the file's line and column, or the flag it came from).
void report_at(Reporter& report, const toml::node* value, const std::string& origin, const std::string& key,
               const std::string& problem) {
  if (value != nullptr) {
    report.at(value->source(), key, problem);
  } else {
    report.at_origin(origin, key, problem);
  }
}

}  // namespace

void check_host(const toml::table& root, const Config& config, bool program_given, const HostChecks& host,
                Reporter& report) {
  const std::string file = config.file.value_or(std::string(program_origin));
  const toml::node* directory = value_of(root, "", "directory");
  // A `directory` that failed validation leaves config.directory empty, which would mean
  // clusterd's own working directory: the program is not looked for in the wrong place.
  bool directory_ok = directory == nullptr || !config.directory.empty();
  if (host.directory && !config.directory.empty()) {
    if (auto problem = host.directory(config.directory)) {
      report_at(report, directory, file, "directory", *problem);
      directory_ok = false;
    }
  }
  // A relative PROGRAM and relative PATH entries are found from `directory`, so a program check
  // against a directory that is not there would only repeat the directory's problem, wrongly.
  if (host.program && directory_ok && !config.command.empty()) {
    if (auto problem = host.program(config.command.front(), config.directory)) {
      if (program_given) {
        report.at_origin(std::string(program_origin), "command", *problem);
      } else {
        report_at(report, value_of(root, "", "command"), file, "command", *problem);
      }
    }
  }
  // Both are asked: an unknown user and an unknown group are two problems to fix.
  if (host.user && config.user) {
    if (auto problem = host.user(*config.user)) {
      report_at(report, value_of(root, "", "user"), file, "user", *problem);
    }
  }
  if (host.group && config.group) {
    if (auto problem = host.group(*config.group)) {
      report_at(report, value_of(root, "", "group"), file, "group", *problem);
    }
  }
  if (host.log_file && config.log.file) {
    if (auto problem = host.log_file(*config.log.file)) {
      report_at(report, value_of(root, "log", "file"), file, "log.file", *problem);
    }
  }
}

}  // namespace clusterd::config_detail
