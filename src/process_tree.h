// What a worker's whole process tree costs now, read from /proc on request: a gunicorn or nginx
// master counts its children. Nothing is sampled unless someone asks.
#pragma once

#include <cstdint>
#include <optional>

namespace clusterd {

struct ProcessTreeCost {
  double cpu_seconds = 0;                  // user + system time of every live process of the tree
  std::uint64_t rss_bytes = 0;             // their VmRSS summed: a page they share counts in each
  std::optional<std::uint64_t> pss_bytes;  // their Pss summed (shared pages split); nullopt if unreadable
  int processes = 0;
};

// The tree is `pid` and its descendants now, found through /proc/PID/task/TID/children (a
// descendant that double-forked away is not in it), at most `max_processes` of them so that a
// fork bomb cannot hold up the event loop. nullopt when `pid` itself cannot be read (it is gone).
std::optional<ProcessTreeCost> read_process_tree_cost(int pid, int max_processes = 1024);

}  // namespace clusterd
