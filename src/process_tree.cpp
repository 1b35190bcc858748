// Reads a process tree's CPU time and memory from /proc.
#include "process_tree.h"

#include <dirent.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "proc_status.h"
#include "text_file.h"

namespace clusterd {
namespace {

std::vector<int> children_of(int pid) {
  std::vector<int> children;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* directory = ::opendir(tasks.c_str());
  if (directory == nullptr) {
    return children;
  }
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    if (const auto text = read_text_file(tasks + "/" + entry->d_name + "/children")) {
      const auto found = parse_children(*text);
      children.insert(children.end(), found.begin(), found.end());
    }
  }
  ::closedir(directory);
  return children;
}

}  // namespace

std::optional<ProcessTreeCost> read_process_tree_cost(int pid, int max_processes) {
  static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  ProcessTreeCost cost;
  cost.pss_bytes = 0;
  std::vector<int> todo{pid};
  while (!todo.empty() && cost.processes < max_processes) {
    const int current = todo.back();
    todo.pop_back();
    const std::string root = "/proc/" + std::to_string(current);
    const auto stat = read_text_file(root + "/stat");
    const auto ticks = stat ? parse_cpu_ticks(*stat) : std::nullopt;
    if (!ticks) {
      if (current == pid) {
        return std::nullopt;
      }
      continue;  // a descendant that exited meanwhile
    }
    ++cost.processes;
    cost.cpu_seconds += static_cast<double>(*ticks) / static_cast<double>(ticks_per_second > 0 ? ticks_per_second : 100);
    const auto status = read_text_file(root + "/status");
    cost.rss_bytes += status ? parse_vm_rss(*status).value_or(0) : 0;
    const auto rollup = cost.pss_bytes ? read_text_file(root + "/smaps_rollup") : std::nullopt;
    const auto pss = rollup ? parse_pss(*rollup) : std::nullopt;
    cost.pss_bytes = pss && cost.pss_bytes ? std::optional(*cost.pss_bytes + *pss) : std::nullopt;
    const auto children = children_of(current);
    todo.insert(todo.end(), children.begin(), children.end());
  }
  return cost;
}

}  // namespace clusterd
