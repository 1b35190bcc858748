// Merges the command line (-w, --listen, --ready, --ready-timeout, --grace, --stop-signal, --name,
// --control, --log-level, --log-file, --set) into the config file's TOML table, each value
// remembering the flag it came from.
//
// Internal to the config module (config*.cpp); the public API is config.h.
//
// The overrides are merged before anything is validated, so one validator walks every value
// whatever its origin. Each flag's value becomes a node whose source path is the flag text, and
// that text is registered with the Reporter as a flag (config_report.h): that is how a
// diagnostic names `--set restart.delay=5` instead of a line of the file. PROGRAM ARG... is not
// merged here: it need not be UTF-8, so it never goes through TOML (config.cpp takes it as is).
#pragma once

#include "toml_library.h"

#include "config.h"
#include "config_report.h"

namespace clusterd::config_detail {

// --set first, then the dedicated flags, which win over a --set of the same key; --listen
// replaces every [[listen]] table of the file. Problems that only the flag's text shows (not
// KEY=VALUE, an unknown key, `--set listen.*`, not UTF-8) are reported here; the values
// themselves are validated with the file's.
void merge_overrides(toml::table& root, const ConfigOverrides& overrides, Reporter& report);

}  // namespace clusterd::config_detail
