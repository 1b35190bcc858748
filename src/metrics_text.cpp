// Writes the Prometheus text format by hand: a few dozen lines of a simple, stable format.
#include "metrics_text.h"

#include <cmath>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace clusterd {
namespace {

// A label value with \, " and newline escaped, as the format requires.
std::string label_value(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", value);
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ += std::string(name) + (labels.empty() ? "" : "{" + std::string(labels) + "}") + " " + number(value) + "\n";
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    out_ += std::string(name) + (labels.empty() ? "" : "{" + std::string(labels) + "}") + " " +
            std::to_string(value) + "\n";
  }
  std::string text() && { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string metrics_text(const InstanceStatus& status) {
  const StatusSnapshot& snapshot = status.snapshot;
  const Counters& counters = snapshot.counters;
  Writer out;
  out.family("clusterd_info", "gauge", "The instance: its name and clusterd's version.");
  out.sample("clusterd_info",
             fmt::format("name=\"{}\",version=\"{}\"", label_value(status.name), label_value(status.version)),
             std::uint64_t{1});
  out.family("clusterd_generation", "gauge", "The last finished generation (1 at start, one more per reload).");
  out.sample("clusterd_generation", "", snapshot.generation);
  out.family("clusterd_workers_wanted", "gauge", "The worker count asked for.");
  out.sample("clusterd_workers_wanted", "", static_cast<std::uint64_t>(snapshot.workers_wanted));
  out.family("clusterd_workers_ready", "gauge", "Slots whose serving worker is ready.");
  out.sample("clusterd_workers_ready", "", static_cast<std::uint64_t>(snapshot.workers_ready));
  out.family("clusterd_reloading", "gauge", "1 while a reload is under way.");
  out.sample("clusterd_reloading", "", std::uint64_t{snapshot.reloading_to ? 1U : 0U});
  out.family("clusterd_stopping", "gauge", "1 once a stop began.");
  out.sample("clusterd_stopping", "", std::uint64_t{snapshot.stopping ? 1U : 0U});
  out.family("clusterd_worker_restarts_total", "counter", "Workers started again after an exit.");
  out.sample("clusterd_worker_restarts_total", "", counters.restarts);
  out.family("clusterd_worker_exits_total", "counter",
             "Workers that ended without clusterd asking, by how: exit code, signal, or start failure.");
  out.sample("clusterd_worker_exits_total", "reason=\"exit_code\"", counters.exits_code);
  out.sample("clusterd_worker_exits_total", "reason=\"signal\"", counters.exits_signal);
  out.sample("clusterd_worker_exits_total", "reason=\"start_failure\"", counters.exits_start_failure);
  out.family("clusterd_reloads_total", "counter", "Rolling reloads, by result: finished or abandoned.");
  out.sample("clusterd_reloads_total", "result=\"finished\"", counters.reloads_finished);
  out.sample("clusterd_reloads_total", "result=\"abandoned\"", counters.reloads_abandoned);
  if (counters.last_reload) {
    out.family("clusterd_last_reload_duration_seconds", "gauge",
               "How long the last finished or abandoned reload took.");
    out.sample("clusterd_last_reload_duration_seconds", "",
               std::chrono::duration<double>(*counters.last_reload).count());
  }

  struct Entry {
    std::string labels;
    const WorkerStatus* worker;
    const WorkerCost* cost;
  };
  std::vector<Entry> entries;
  for (const SlotStatus& slot : snapshot.slots) {
    for (const WorkerStatus& worker : slot.workers) {
      if (worker.pid <= 0) {
        continue;
      }
      entries.push_back({fmt::format("slot=\"{}\",pid=\"{}\",generation=\"{}\"", slot.slot, worker.pid,
                                     worker.id.generation),
                         &worker, status.cost_of(worker)});
    }
  }
  const auto per_worker = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    out.family(name, type, help);
    for (const Entry& entry : entries) {
      value(entry);
    }
  };
  per_worker("clusterd_worker_state", "gauge", "Each worker process: 1 for its state (starting, ready, stopping).",
             [&](const Entry& entry) {
               for (const WorkerState state : {WorkerState::starting, WorkerState::ready, WorkerState::stopping}) {
                 out.sample("clusterd_worker_state",
                            entry.labels + fmt::format(",state=\"{}\"", state_name(state)),
                            std::uint64_t{entry.worker->state == state ? 1U : 0U});
               }
             });
  per_worker("clusterd_worker_start_time_seconds", "gauge", "When the worker was started, Unix time.",
             [&](const Entry& entry) {
               out.sample("clusterd_worker_start_time_seconds", entry.labels, status.started_at(*entry.worker));
             });
  per_worker("clusterd_worker_cpu_seconds_total", "counter",
             "User and system CPU time of the worker's process tree (its live processes).",
             [&](const Entry& entry) {
               if (entry.cost != nullptr) {
                 out.sample("clusterd_worker_cpu_seconds_total", entry.labels, entry.cost->tree.cpu_seconds);
               }
             });
  per_worker("clusterd_worker_resident_memory_bytes", "gauge",
             "VmRSS of the worker's process tree, summed (shared pages count once per process).",
             [&](const Entry& entry) {
               if (entry.cost != nullptr) {
                 out.sample("clusterd_worker_resident_memory_bytes", entry.labels, entry.cost->tree.rss_bytes);
               }
             });
  per_worker("clusterd_worker_proportional_memory_bytes", "gauge",
             "Pss of the worker's process tree, summed (shared pages split between their sharers).",
             [&](const Entry& entry) {
               if (entry.cost != nullptr && entry.cost->tree.pss_bytes) {
                 out.sample("clusterd_worker_proportional_memory_bytes", entry.labels, *entry.cost->tree.pss_bytes);
               }
             });
  per_worker("clusterd_worker_cgroup_cpu_seconds_total", "counter",
             "CPU time of everything the worker ran in its cgroup, processes that are gone included.",
             [&](const Entry& entry) {
               if (entry.cost != nullptr && entry.cost->cgroup) {
                 out.sample("clusterd_worker_cgroup_cpu_seconds_total", entry.labels, entry.cost->cgroup->cpu_seconds);
               }
             });
  per_worker("clusterd_worker_cgroup_memory_bytes", "gauge",
             "memory.current of the worker's cgroup (page cache included), where the memory controller is enabled.",
             [&](const Entry& entry) {
               if (entry.cost != nullptr && entry.cost->cgroup && entry.cost->cgroup->memory_bytes) {
                 out.sample("clusterd_worker_cgroup_memory_bytes", entry.labels, *entry.cost->cgroup->memory_bytes);
               }
             });
  per_worker("clusterd_worker_processes", "gauge", "Processes in the worker's tree: it and its descendants.",
             [&](const Entry& entry) {
               if (entry.cost != nullptr) {
                 out.sample("clusterd_worker_processes", entry.labels,
                            static_cast<std::uint64_t>(entry.cost->tree.processes));
               }
             });
  return std::move(out).text();
}

}  // namespace clusterd
