// Paces the reading of one worker's notify socket and the log reports of the datagrams dropped
// there, from the times at which datagrams were read alone (no clock, no I/O).
#pragma once

#include <chrono>
#include <optional>

#include "duration.h"

namespace clusterd {

// A flood of datagrams must not hold clusterd's loop, however cheaply each one is dropped: the
// kernel refills a unix datagram queue as fast as it is read, so reading faster only lets the
// sender send faster. So a socket is read for at most `datagrams_per_window` datagrams per
// `window`; past that, reading stops until the window ends, and the senders block (or get EAGAIN)
// on the full queue meanwhile. A worker sends a handful of datagrams a minute (READY=1, STATUS=,
// WATCHDOG=1), far below the limit; its own datagram queued behind a flood waits at most the rest
// of a window once the socket is read again.
//
// Drops are reported at most once per `report_interval`: the first at once, then the count since
// the last report with the next drop after the interval. Nothing here needs a timer: a drop that
// is not reported yet waits for the next drop, or for the socket to close (unreported()).
class NotifyPacing {
 public:
  static constexpr int datagrams_per_window = 64;
  static constexpr Duration window = std::chrono::milliseconds(100);
  static constexpr Duration report_interval = std::chrono::seconds(10);

  // One datagram was read at `now`; `dropped`: it was not accepted.
  void read_one(TimePoint now, bool dropped);

  // Once the window's budget is spent: when reading may start again (the window's end). nullopt
  // while datagrams may still be read at `now`.
  std::optional<TimePoint> resume_at(TimePoint now) const;

  // The drops to log now, and from then on not again: every drop not reported yet, if one is and
  // the last report is report_interval old or there was none; otherwise 0.
  int take_report(TimePoint now);

  // Drops not reported yet: logged when the socket closes.
  int unreported() const { return unreported_; }

 private:
  std::optional<TimePoint> window_start_;
  int read_in_window_ = 0;
  std::optional<TimePoint> last_report_;
  int unreported_ = 0;
};

}  // namespace clusterd
