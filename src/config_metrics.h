// Validates the [metrics] section: `listen`, the TCP address clusterd serves GET /metrics at.
//
// Internal to the config module (config*.cpp); the public API is config.h.
#pragma once

#include "toml_library.h"

#include "config.h"
#include "config_reader.h"

namespace clusterd::config_detail {

// listen: HOST:PORT or [V6]:PORT with the host written out; a unix: path and a bare PORT or
// :PORT are refused, saying how to write it. Listening on every address is a warning: the
// metrics name the instance and every worker's pid.
void read_metrics(const toml::table& table, ValueReader& read, MetricsConfig& metrics);

}  // namespace clusterd::config_detail
