// What a worker's whole process tree costs now, read from /proc on request: a gunicorn or nginx
// master counts its children. Nothing is sampled unless someone asks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clusterd {

struct ProcessTreeCost {
  double cpu_seconds = 0;                  // user + system time of every live process of the tree
  std::uint64_t rss_bytes = 0;             // their resident memory summed: a page they share counts in each
  std::optional<std::uint64_t> pss_bytes;  // their Pss summed (shared pages split); nullopt if unread or unreadable
  int processes = 0;
};

// Reads process trees from /proc for one request: one buffer serves every file it reads, and it
// holds no fd between calls. The tree is `pid` and its descendants now, found through
// /proc/PID/task/TID/children (a descendant that double-forked away is not in it), at most
// `max_processes` of them so that a fork bomb cannot hold up the event loop.
class ProcessTreeReader {
 public:
  // `pss`: also read each process's Pss (/proc/PID/smaps_rollup), which takes longer than
  // everything else together: the kernel walks the process's page tables for it.
  explicit ProcessTreeReader(bool pss);

  // nullopt when `pid` itself cannot be read (it is gone).
  std::optional<ProcessTreeCost> read(int pid, int max_processes = 1024);

 private:
  struct Pending {
    int pid = 0;
    int parent = 0;  // the pid that listed it as a child; 0 for the tree's root
  };
  // Queues the children of the process open as `process` (/proc/PID).
  void add_children(int process, int pid, bool one_live_thread);

  bool pss_;
  double ticks_per_second_;
  std::uint64_t page_size_;
  std::string text_;
  std::vector<Pending> todo_;
};

}  // namespace clusterd
