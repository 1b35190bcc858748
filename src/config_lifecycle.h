// Validates the sections about a worker's life once it runs: [ready] (when it counts as ready, its
// watchdog), [reload] (how many slots a rolling reload replaces at once) and [recycle] (when a
// worker is replaced for its age or its memory).
//
// Internal to the config module (config*.cpp); the public API is config.h.
//
// Each function reads the keys the table has into the matching part of Config, which holds the
// defaults already, and reports every problem through the ValueReader; a key with a bad value
// keeps its default, so the other keys can still be checked against something sensible.
#pragma once

#include "toml_library.h"

#include "config.h"
#include "config_reader.h"

namespace clusterd::config_detail {

// mode ("exec" | "notify" | a duration > 0, shorter than timeout), timeout (> 0), watchdog (> 0,
// only with mode = "notify").
void read_ready(const toml::table& table, ValueReader& read, ReadyConfig& ready);

// batch: an integer 1-4096.
void read_reload(const toml::table& table, ValueReader& read, ReloadConfig& reload);

// max_lifetime (> 0), max_rss (a size with a unit, > 0), check_interval (> 0).
void read_recycle(const toml::table& table, ValueReader& read, RecycleConfig& recycle);

}  // namespace clusterd::config_detail
