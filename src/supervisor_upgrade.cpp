// The Supervisor's part of `clusterd upgrade`: whether the pool can be handed to a new binary,
// what is handed, and the pool taken over by the new binary.
#include <algorithm>

#include <fmt/format.h>

#include "supervisor.h"

namespace clusterd {

std::optional<std::string> Supervisor::upgrade_blocker() const {
  if (stopping_ || exiting_) {
    return "clusterd is stopping";
  }
  if (reloading()) {
    return "a reload is under way; upgrade once it has finished";
  }
  if (!started_) {
    return "clusterd is starting";
  }
  if (static_cast<int>(slots_.size()) != wanted_ || spawn_more_at_) {
    return "the pool is being scaled; upgrade once it is done";
  }
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot].generation != generation_) {
      return fmt::format("slot {} runs generation {}, not {} (a reload was abandoned half way); upgrade after a "
                         "reload or `clusterd restart all`",
                         slot, slots_[slot].generation, generation_);
    }
  }
  std::vector<int> workers_in_slot(slots_.size(), 0);
  for (const Worker& worker : workers_) {
    if (worker.id.generation != generation_) {
      return fmt::format("worker {} runs generation {}, not {} (a reload was abandoned half way); upgrade after a "
                         "reload or `clusterd restart all`",
                         worker_fields(worker.id, worker.pid), worker.id.generation, generation_);
    }
    if (worker.role != Role::primary || worker.stopping) {
      return fmt::format("worker {} is being replaced or stopped; upgrade once it is done",
                         worker_fields(worker.id, worker.pid));
    }
    if (worker.state != WorkerState::ready) {
      return fmt::format("worker {} is not ready yet; upgrade once every worker is ready",
                         worker_fields(worker.id, worker.pid));
    }
    ++workers_in_slot.at(static_cast<std::size_t>(worker.id.slot));
  }
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    if ((slots_[slot].state == SlotState::running) != (workers_in_slot[slot] == 1) || workers_in_slot[slot] > 1) {
      return fmt::format("slot {} is starting its worker; upgrade once it runs", slot);
    }
  }
  return std::nullopt;
}

HandedOverPool Supervisor::hand_over(TimePoint now) const {
  HandedOverPool pool{generation_, next_instance_, counters_, {}, {}};
  for (const Slot& slot : slots_) {
    std::optional<Duration> restart_in;
    if (slot.restart_at) {
      restart_in = std::max(Duration{0}, std::chrono::duration_cast<Duration>(*slot.restart_at - now));
    }
    pool.slots.push_back({slot.state, slot.restarts, slot.backoff.failures(), slot.last_exit, restart_in});
  }
  for (const Worker& worker : workers_) {
    pool.workers.push_back({worker.id, worker.pid, std::chrono::duration_cast<Duration>(now - worker.started_at),
                            slots_.at(static_cast<std::size_t>(worker.id.slot)).restarts, worker.notify_status});
  }
  std::sort(pool.workers.begin(), pool.workers.end(),
            [](const HandedOverWorker& a, const HandedOverWorker& b) { return a.id.slot < b.id.slot; });
  return pool;
}

std::vector<Action> Supervisor::adopt(const HandedOverPool& pool, TimePoint now) {
  actions_.clear();
  auto config = configs_.begin()->second;
  configs_.clear();
  configs_.emplace(pool.generation, config);
  generation_ = pool.generation;
  next_instance_ = pool.next_instance;
  counters_ = pool.counters;
  started_ = true;
  ready_reported_ = true;  // the service manager heard READY=1 from this process already
  wanted_ = static_cast<int>(pool.slots.size());
  resize_slots(wanted_);
  for (std::size_t index = 0; index < pool.slots.size(); ++index) {
    const HandedOverSlot& handed = pool.slots[index];
    Slot& slot = slots_[index];
    slot.state = handed.state;
    slot.restarts = handed.restarts;
    slot.backoff.restore(handed.failures);
    slot.last_exit = handed.last_exit;
    if (handed.state == SlotState::backoff) {
      slot.restart_at = now + handed.restart_in.value_or(Duration{0});
    }
  }
  for (const HandedOverWorker& handed : pool.workers) {
    Slot& slot = slots_.at(static_cast<std::size_t>(handed.id.slot));
    slot.state = SlotState::running;
    Worker worker;
    worker.id = handed.id;
    worker.pid = handed.pid;
    worker.started_at = now - handed.uptime;
    worker.execed_at = worker.started_at;
    worker.notify_status = handed.notify_status;
    workers_.push_back(worker);
    mark_ready(workers_.back(), now, "upgrade");
  }
  activity_changed_ = true;
  reconcile(now);  // a running slot whose worker could not be taken over starts a new one
  next_deadline_ = nearest_deadline();
  return std::move(actions_);
}

}  // namespace clusterd
