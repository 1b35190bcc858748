// Chooses what a new control connection costs: nothing, an idle connection shed, or its refusal.
#include "control_admission.h"


namespace clusterd {
namespace {

// The oldest idle connection among those `eligible` says yes to; nullopt when none is idle.
template <typename Eligible>
std::optional<std::uint64_t> oldest_idle(const std::vector<OpenConnection>& open, Eligible eligible) {
  const OpenConnection* oldest = nullptr;
  for (const OpenConnection& connection : open) {
    if (connection.idle && eligible(connection) && (oldest == nullptr || connection.idle_since < oldest->idle_since)) {
      oldest = &connection;
    }
  }
  return oldest != nullptr ? std::optional(oldest->id) : std::nullopt;
}

}  // namespace

AdmissionVerdict admit_connection(const std::vector<OpenConnection>& open, std::uint32_t uid,
                                  const ConnectionLimits& limits) {
  // Connections held per uid. Few uids can connect (root and clusterd's own), so a flat list.
  struct Holder {
    std::uint32_t uid;
    std::size_t held;
    std::size_t idle;
  };
  std::vector<Holder> holders;
  auto holder_of = [&](std::uint32_t wanted) -> Holder& {
    for (Holder& holder : holders) {
      if (holder.uid == wanted) {
        return holder;
      }
    }
    return holders.emplace_back(Holder{wanted, 0, 0});
  };
  for (const OpenConnection& connection : open) {
    Holder& holder = holder_of(connection.uid);
    ++holder.held;
    holder.idle += connection.idle ? 1 : 0;
  }
  if (holder_of(uid).held >= limits.per_uid) {
    const auto shed = oldest_idle(open, [uid](const OpenConnection& c) { return c.uid == uid; });
    return AdmissionVerdict{shed.has_value(), shed};
  }
  if (open.size() < limits.total) {
    return AdmissionVerdict{true, std::nullopt};
  }
  // The uid holding the most pays, so a flood from one uid never sheds another's connection
  // while it holds more than that one. Ties: the uid whose idle connection is oldest.
  std::size_t most = 0;
  for (const Holder& holder : holders) {
    if (holder.idle > 0 && holder.held > most) {
      most = holder.held;
    }
  }
  if (most == 0) {
    return AdmissionVerdict{false, std::nullopt};
  }
  const auto shed = oldest_idle(open, [&](const OpenConnection& c) { return holder_of(c.uid).held == most; });
  return AdmissionVerdict{true, shed};
}

}  // namespace clusterd
