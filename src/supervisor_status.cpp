// The Supervisor's answer to `status`: every slot and worker as they are now.
#include <algorithm>

#include "supervisor.h"

namespace clusterd {

StatusSnapshot Supervisor::status(TimePoint now) const {
  StatusSnapshot snapshot;
  snapshot.generation = generation_;
  if (reload_) {
    snapshot.reloading_to = reload_->generation;
  }
  snapshot.workers_wanted = wanted_;
  snapshot.workers_ready = ready_primaries();
  snapshot.stopping = stopping_;
  snapshot.counters = counters_;
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    const Slot& slot = slots_[index];
    SlotStatus entry;
    entry.slot = static_cast<int>(index);
    entry.state = slot.state;
    entry.restarts = slot.restarts;
    entry.last_exit = slot.last_exit;
    if (slot.state == SlotState::backoff && slot.restart_at) {
      entry.next_restart_in = std::max(Duration{0}, std::chrono::duration_cast<Duration>(*slot.restart_at - now));
    }
    snapshot.slots.push_back(std::move(entry));
  }
  // One pass over the workers, not one per slot: the daemon asks for this after every event
  // when a listener is per-slot.
  for (const Worker& worker : workers_) {
    if (worker.id.slot >= 0 && static_cast<std::size_t>(worker.id.slot) < snapshot.slots.size()) {
      WorkerStatus entry;
      entry.id = worker.id;
      entry.pid = worker.pid;
      entry.state = worker.state;
      entry.uptime = std::chrono::duration_cast<Duration>(now - worker.started_at);
      entry.notify_status = worker.notify_status;
      if (worker.stopping && worker.stopping->kill_at) {
        entry.kill_in = std::max(Duration{0}, std::chrono::duration_cast<Duration>(*worker.stopping->kill_at - now));
      }
      snapshot.slots[static_cast<std::size_t>(worker.id.slot)].workers.push_back(std::move(entry));
    }
  }
  return snapshot;
}

std::vector<SlotActivity> Supervisor::slot_activity(
    const std::function<bool(std::uint64_t generation)>& counted) const {
  std::vector<SlotActivity> activity(slots_.size());
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    activity[index].may_run = slots_[index].state != SlotState::failed && slots_[index].state != SlotState::done;
  }
  for (const Worker& worker : workers_) {
    if (worker.id.slot < 0 || static_cast<std::size_t>(worker.id.slot) >= activity.size() ||
        worker.state == WorkerState::stopping || !counted(worker.id.generation)) {
      continue;
    }
    SlotActivity& slot = activity[static_cast<std::size_t>(worker.id.slot)];
    slot.running = true;
    slot.accepting = slot.accepting || worker.state == WorkerState::ready;
  }
  return activity;
}

}  // namespace clusterd
