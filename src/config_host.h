// Asks the host (HostChecks) about the validated values a start depends on (directory, program,
// user, group, log file) and reports each answer at the position of its key; warns about what
// is valid but unsafe as root (`group` without `user`, clusterd's output files inherited by
// workers of another user).
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include "toml_library.h"

#include "config.h"
#include "config_report.h"

namespace clusterd::config_detail {

// `root`: the merged table `config` was validated from; only values that passed validation are
// asked about. `program_given`: the command came from PROGRAM on the command line, so a problem
// with it is reported there ("command line: command: …"), not at the file's `command`.
// Warnings go to report.warn().
void check_host(const toml::table& root, const Config& config, bool program_given, const HostChecks& host,
                Reporter& report);

}  // namespace clusterd::config_detail
