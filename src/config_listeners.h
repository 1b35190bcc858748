// Validates the [[listen]] tables (or the --listen flags merged in their place) into
// ListenerConfigs: name, address, backlog, mode, ipv6_only and reuseport of each.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include <string>
#include <vector>

#include "toml_library.h"

#include "config.h"
#include "config_paths.h"
#include "config_reader.h"

namespace clusterd::config_detail {

struct ListenerTables {
  std::vector<ListenerConfig> listeners;  // the valid ones, in order
  // Names of the listeners that had a problem: a `{fd:NAME}` naming one of them is not reported
  // a second time.
  std::vector<std::string> broken_names;
};

// `node` is the value of `listen`. A listener without `name` is named by its position: fd3, fd4, …
// (the fd it gets); names are unique. Problems are reported as `listen[I].KEY`, I counting from 0.
// A relative `unix:` path is made absolute by `paths` (from the file's directory, or from the
// working directory for --listen).
ListenerTables read_listeners(const toml::node& node, ValueReader& read, const PathBases& paths);

}  // namespace clusterd::config_detail
