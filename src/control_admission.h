// Which control connection makes room for a new one: a cap per peer uid and one for all, the
// oldest idle connection shed first. Pure: the server gives it what it knows of each connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "duration.h"

namespace clusterd {

struct ConnectionLimits {
  // No uid may hold more than this. Only two uids may connect (root and clusterd's own), and
  // twice this is `total`: a flood from one of them never takes the other's places.
  std::size_t per_uid = 256;
  // All uids together. Beyond it the uid holding the most gives up its oldest idle connection.
  std::size_t total = 512;
};

// What the server knows of an open connection. `idle`: waiting for a request line, with nothing
// pending, nothing to write and no `stop` answered, so closing it loses nobody's answer.
struct OpenConnection {
  std::uint64_t id = 0;
  std::uint32_t uid = 0;
  bool idle = false;
  TimePoint idle_since{};
};

// What to do with a new connection from a uid. Never more than one shed per new connection: after
// it the counts are within the limits again.
struct AdmissionVerdict {
  bool admit = false;
  std::optional<std::uint64_t> shed;  // close this connection first
};

// Admits a new connection from `uid` when that uid is under limits.per_uid and all are under
// limits.total. At its own cap, the uid's oldest idle connection is shed; at the total cap, the
// oldest idle connection of the uid holding the most connections that has an idle one. When no
// connection that could be shed is idle (all are busy: pending reloads, `stop` clients waiting
// for the exit), the new connection is refused: busy connections are never dropped for it.
AdmissionVerdict admit_connection(const std::vector<OpenConnection>& open, std::uint32_t uid,
                                  const ConnectionLimits& limits);

}  // namespace clusterd
