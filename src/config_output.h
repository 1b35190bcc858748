// Validates `output`: the mode alone as a string (`output = "prefix"`), or the [output] table
// (mode, file, timestamps, max_size, keep, recent_lines).
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include "toml_library.h"

#include "config.h"
#include "config_paths.h"
#include "config_reader.h"

namespace clusterd::config_detail {

// Reads `node` (root's "output") into `output`, which holds the defaults. Every key but `mode`
// needs prefix mode, which naming any of them implies; an explicit mode = "inherit" beside any of them is
// an error, as is max_size or keep without file.
void read_output(const toml::node& node, ValueReader& read, const PathBases& paths, OutputConfig& output);

}  // namespace clusterd::config_detail
