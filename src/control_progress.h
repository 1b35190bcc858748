// The one line a client on a terminal shows while a reload or a stop runs, made from a `status`
// reply: how many slots were replaced, or how many workers are left and when SIGKILL comes.
//
// Pure: takes the parsed reply, returns text. Drawing it (in place, with '\r') is the client's
// job (control_client.cpp). A field the reply lacks, or of an unexpected type (an older or newer
// daemon), counts as missing rather than failing.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace clusterd {

enum class ProgressOf { reload, stop };

// Without '\r' or '\n'; nullopt when the reply has nothing to show (not a status reply, or no
// reload under way any more):
//
//   reloading to generation 4: 2/4 slots replaced
//   reloading to generation 4: 4/4 slots replaced, 2 old workers stopping, SIGKILL in 1.5s
//   stopping: 3 workers left, SIGKILL in 7.2s
//
// A slot counts as replaced once a worker of the new generation is ready in it; the total is
// `workers_wanted`. The SIGKILL time is the nearest `kill_in_s` of the workers stopping; without
// any (SIGKILL already sent, or a daemon that does not say) the line ends after the count.
std::optional<std::string> progress_line(ProgressOf what, const nlohmann::ordered_json& status);

}  // namespace clusterd
