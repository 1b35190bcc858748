// When clusterd stops, the processes re-parented to it are stopped too: the stop signal, SIGKILL
// when the grace ends, and clusterd waits for them. Pure: the daemon says which children are not
// workers and sends what this returns.
#pragma once

#include <csignal>
#include <map>
#include <optional>
#include <vector>

#include "duration.h"

namespace clusterd {

// One signal for one orphan (its pid as an int: this module includes no system header).
struct OrphanSignal {
  int pid = 0;
  int signal = 0;
};

// clusterd is a child subreaper (PR_SET_CHILD_SUBREAPER): a process that left its worker's
// process group (setsid, a double fork) is re-parented to it once its parent exits, out of reach
// of the signals sent to the worker's group. Such an orphan holding a listener's fd keeps the
// port after clusterd exited, and the next start fails with "Address already in use". Without
// cgroups, these orphans are exactly the children of clusterd that are not workers.
//
// Contract: begin() when the stop starts (nothing happens before: a reload or a scale-down never
// touches an orphan); then, at every wake-up, signals_for(the children that are not workers)
// says what to send. Each orphan gets `stop_signal` once when it is first seen, and SIGKILL once
// the grace is over (at once after a quick stop). exit_wanted() once clusterd would exit: from
// then on it waits for its orphans until the grace plus `kill_wait`, and gives up after that (a
// process stuck in the kernel even after SIGKILL) so that it exits all the same.
class OrphanStop {
 public:
  // How long clusterd waits for its orphans to die of SIGKILL before it exits without them.
  static constexpr Duration kill_wait = std::chrono::seconds(5);

  // The stop began at `now`: orphans get `stop_signal` now and SIGKILL at now + grace. A later
  // call only brings the SIGKILL forward (a quick stop after a graceful one), never back.
  void begin(TimePoint now, Duration grace, int stop_signal);
  bool begun() const { return kill_at_.has_value(); }
  // clusterd is ready to exit (every worker gone); begins the stop with `grace` if that had not
  // happened yet (clusterd exits because no worker is left to run).
  void exit_wanted(TimePoint now, Duration grace, int stop_signal);
  bool exiting() const { return exit_by_.has_value(); }

  // The signals to send now to `orphans`, clusterd's children that are not workers. Forgets the
  // pids no longer among them (reaped).
  std::vector<OrphanSignal> signals_for(const std::vector<int>& orphans, TimePoint now);
  // After exit_wanted: clusterd waited long enough, exit with orphans left.
  bool gave_up(TimePoint now) const { return exit_by_ && now >= *exit_by_; }
  // The SIGKILL time while it is ahead, then (exiting) the time clusterd gives up; nullopt
  // before begin() or once there is nothing left to wait for.
  std::optional<TimePoint> next_deadline(TimePoint now, bool orphans_left) const;

 private:
  struct Sent {
    bool stop = false;
    bool kill = false;
  };

  std::optional<TimePoint> kill_at_;
  std::optional<TimePoint> exit_by_;
  int stop_signal_ = SIGTERM;
  std::map<int, Sent> sent_;  // by pid, while it is a child
};

}  // namespace clusterd
