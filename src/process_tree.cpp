// Reads a process tree's CPU time and memory from /proc.
#include "process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "fd.h"
#include "proc_status.h"
#include "text_file.h"

namespace clusterd {
namespace {

// A path of at most 63 bytes, formatted without allocating: one is opened per file read.
template <typename... Args>
std::array<char, 64> name(fmt::format_string<Args...> format, Args&&... args) {
  std::array<char, 64> text{};
  fmt::format_to_n(text.data(), text.size() - 1, format, std::forward<Args>(args)...);
  return text;
}

// /proc/PID as a directory fd: every file read through it is about the same process, even if the
// pid is taken by another one meanwhile (the reads then fail with ESRCH), and each open skips the
// lookup of /proc/PID.
Fd open_process(int pid) {
  const auto path = name("/proc/{}", pid);
  return Fd(retry_on_eintr([&] { return ::open(path.data(), O_PATH | O_DIRECTORY | O_CLOEXEC); }));
}

}  // namespace

ProcessTreeReader::ProcessTreeReader(bool pss)
    : pss_(pss),
      ticks_per_second_(static_cast<double>(std::max(1L, ::sysconf(_SC_CLK_TCK)))),
      page_size_(static_cast<std::uint64_t>(std::max(1L, ::sysconf(_SC_PAGESIZE)))) {}

std::optional<ProcessTreeCost> ProcessTreeReader::read(int pid, int max_processes) {
  ProcessTreeCost cost;
  if (pss_) {
    cost.pss_bytes = 0;
  }
  todo_.assign({{pid, 0}});
  while (!todo_.empty() && cost.processes < max_processes) {
    const Pending current = todo_.back();
    todo_.pop_back();
    const Fd process = open_process(current.pid);
    const auto stat = process && read_file_at(process.get(), "stat", text_) ? parse_proc_stat(text_) : std::nullopt;
    // A descendant that exited since its parent listed it, or whose pid was taken by another
    // process meanwhile, is not counted: its parent is not the one that listed it.
    if (!stat || (current.parent != 0 && stat->parent != current.parent)) {
      if (current.pid == pid) {
        return std::nullopt;
      }
      continue;
    }
    ++cost.processes;
    cost.cpu_seconds += static_cast<double>(stat->cpu_ticks) / ticks_per_second_;
    cost.rss_bytes += stat->rss_pages * page_size_;
    if (cost.pss_bytes) {
      const auto pss = read_file_at(process.get(), "smaps_rollup", text_) ? parse_pss(text_) : std::nullopt;
      cost.pss_bytes = pss ? std::optional(*cost.pss_bytes + *pss) : std::nullopt;
    }
    // A leader thread that exited while others run shows 'Z' and 1 thread: its children moved to
    // a live thread, so only the task directory finds them.
    add_children(process.get(), current.pid, stat->threads == 1 && stat->state != 'Z');
  }
  return cost;
}

void ProcessTreeReader::add_children(int process, int pid, bool one_live_thread) {
  const auto add = [this, pid] {
    for (const int child : parse_children(text_)) {
      todo_.push_back({child, pid});
    }
  };
  // Each thread lists the children it forked, and the children of a thread that exits move to a
  // live thread of its process: with one live thread, the leader's list is the whole list, read
  // without listing the task directory.
  if (one_live_thread) {
    if (read_file_at(process, name("task/{}/children", pid).data(), text_)) {
      add();
    }
    return;
  }
  Fd tasks_fd(retry_on_eintr([&] { return ::openat(process, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  const std::unique_ptr<DIR, int (*)(DIR*)> tasks(tasks_fd ? ::fdopendir(tasks_fd.get()) : nullptr, ::closedir);
  if (!tasks) {
    return;
  }
  tasks_fd.release();  // closedir closes it
  while (const dirent* entry = ::readdir(tasks.get())) {
    if (entry->d_name[0] != '.' && read_file_at(::dirfd(tasks.get()), name("{}/children", entry->d_name).data(), text_)) {
      add();
    }
  }
}

}  // namespace clusterd
