// The instance's metrics in the Prometheus text exposition format (version 0.0.4), for
// `clusterd metrics`: what the status reply holds, as gauges and counters a scraper can graph.
#pragma once

#include <string>

#include "control_protocol.h"

namespace clusterd {

// Instance-wide: clusterd_info{name,version}, generation, workers wanted and ready, whether a
// reload or a stop is under way, restarts, exits by reason, reloads by result and the last
// reload's duration. Per worker process, labelled slot, pid and generation: its state, start
// time, and its process tree's CPU seconds, resident and proportional memory and process count.
std::string metrics_text(const InstanceStatus& status);

}  // namespace clusterd
