// Asks the host (HostChecks) about the validated values a start depends on (directory, program,
// user, group, log file), reports each answer at the position of its key, and warns about what
// is valid but unsafe as root.
#include "config_host.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// A warning at the value when there is one, else at the origin without a position.
void warn_at(Reporter& report, const toml::node* value, const std::string& origin, const std::string& key,
             const std::string& warning) {
  report.warn(value != nullptr ? report.diagnostic_at(value->source(), key, warning)
                               : Diagnostic{origin, 0, 0, key, warning});
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : " and ") + items[i];
  }
  return out;
}

// `group` changes only the gid: as root the workers are still uid 0, with every capability, which
// is not what someone who wrote `group = "www-data"` wants.
void warn_about_group_alone(const toml::table& root, const Config& config, const HostChecks& host,
                            const std::string& file, Reporter& report) {
  if (!config.group || config.user || !host.effective_uid || host.effective_uid() != 0) {
    return;
  }
  warn_at(report, value_of(root, "", "group"), file, "group",
          "workers run as root (uid 0, every capability): group without user changes only the gid; "
          "set user as well, for example user = \"nobody\"");
}

// A worker of another user that inherits clusterd's stdout or stderr gets a file descriptor
// open for writing on a file it could not open itself: it can ftruncate() clusterd's log away or
// write lines that look like clusterd's.
void warn_about_shared_output(const toml::table& root, const Config& config, const HostChecks& host,
                              const std::string& file, Reporter& report) {
  if (config.output.mode != OutputMode::inherit || !config.user || !host.effective_uid || !host.user_uid ||
      !host.regular_output_files) {
    return;
  }
  const auto uid = host.user_uid(*config.user);
  if (!uid || *uid == host.effective_uid()) {
    return;
  }
  const std::vector<std::string> files = host.regular_output_files();
  if (files.empty()) {
    return;
  }
  const toml::node* output = value_of(root, "", "output");
  warn_at(report, output != nullptr ? output : value_of(root, "", "user"), file, "output",
          "workers run as user \"" + *config.user + "\" and inherit clusterd's " + joined(files) +
              " open for writing (output = \"inherit\"), so they can truncate or overwrite it; set "
              "output = \"prefix\", or give clusterd a pipe or the journal as stdout and stderr rather "
              "than a file (log.file moves only clusterd's own log)");
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
  bool user_ok = true;
  if (host.user && config.user) {
    if (auto problem = host.user(*config.user)) {
      report_at(report, value_of(root, "", "user"), file, "user", *problem);
      user_ok = false;
    }
  }
  if (host.group && config.group) {
    if (auto problem = host.group(*config.group)) {
      report_at(report, value_of(root, "", "group"), file, "group", *problem);
    }
  }
  if (host.log_file && config.log.file) {
    if (auto problem = host.log_file(*config.log.file, "log.file")) {
      report_at(report, value_of(root, "log", "file"), file, "log.file", *problem);
    }
  }
  if (host.log_file && config.output.file) {
    if (auto problem = host.log_file(*config.output.file, "output.file")) {
      report_at(report, value_of(root, "output", "file"), file, "output.file", *problem);
    }
  }
  warn_about_group_alone(root, config, host, file, report);
  if (user_ok) {
    warn_about_shared_output(root, config, host, file, report);
  }
}

}  // namespace clusterd::config_detail
