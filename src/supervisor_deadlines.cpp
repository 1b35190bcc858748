// The Supervisor's one list of deadlines. next_deadline() is its minimum and a Tick acts on each
// entry that is due, so a deadline is only ever counted when acting on it is possible, and acting
// on it always removes it: the timer cannot fire for nothing, again and again.
#include <algorithm>

#include <fmt/format.h>

#include "supervisor.h"

namespace clusterd {

// Every guard of every deadline is here, once.
std::vector<Supervisor::Deadline> Supervisor::deadlines() const {
  std::vector<Deadline> list;
  if (exiting_) {
    return list;
  }
  if (!stopping_) {
    const std::vector<bool> served = slots_served();
    for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
      const Slot& slot = slots_[index];
      const int number = static_cast<int>(index);
      // A slot whose new worker of a reload is starting waits for that worker, not its backoff.
      if (slot.state == SlotState::backoff && slot.restart_at && !served[index]) {
        list.push_back({*slot.restart_at, Due::restart, number, 0});
      }
      if (slot.recycle_reason && slot.recycle_retry_at) {
        list.push_back({*slot.recycle_retry_at, Due::recycle_retry, number, 0});
      }
    }
    if (next_rss_sample_) {
      list.push_back({*next_rss_sample_, Due::rss_sample, 0, 0});
    }
    if (spawn_more_at_) {
      list.push_back({*spawn_more_at_, Due::spawn_more, 0, 0});
    }
  }
  for (const Worker& worker : workers_) {
    const std::uint64_t instance = worker.id.instance;
    if (worker.stopping) {
      if (worker.stopping->dump_at) {
        list.push_back({*worker.stopping->dump_at, Due::dump, worker.id.slot, instance});
      }
      if (worker.stopping->kill_at) {
        list.push_back({*worker.stopping->kill_at, Due::kill, worker.id.slot, instance});
      }
      continue;
    }
    if (worker.state == WorkerState::starting) {
      if (worker.probe_at) {
        list.push_back({*worker.probe_at, Due::probe, worker.id.slot, instance});
      }
      if (worker.ready_after) {
        list.push_back({*worker.ready_after, Due::ready_after, worker.id.slot, instance});
      }
      if (worker.ready_deadline) {
        list.push_back({*worker.ready_deadline, Due::ready_timeout, worker.id.slot, instance});
      }
      continue;
    }
    if (worker.watchdog_deadline) {
      list.push_back({*worker.watchdog_deadline, Due::watchdog, worker.id.slot, instance});
    }
    if (!stopping_ && worker.role == Role::primary && worker.recycle_at) {
      list.push_back({*worker.recycle_at, Due::lifetime, worker.id.slot, instance});
    }
  }
  return list;
}

std::optional<TimePoint> Supervisor::nearest_deadline() const {
  const std::vector<Deadline> list = deadlines();
  const auto nearest = std::min_element(list.begin(), list.end(),
                                        [](const Deadline& a, const Deadline& b) { return a.at < b.at; });
  return nearest == list.end() ? std::nullopt : std::optional<TimePoint>(nearest->at);
}

// One due entry at a time, the list taken anew after each: acting on one (a promotion that
// retires another worker, say) can change or remove the others. Each act removes its entry, so
// this ends; the bound only guards against a future act that forgets to.
void Supervisor::act_on_due(TimePoint now) {
  const std::size_t bound = 16 + 8 * (workers_.size() + slots_.size());
  for (std::size_t round = 0; round < bound; ++round) {
    const std::vector<Deadline> list = deadlines();
    const auto due = std::find_if(list.begin(), list.end(), [&](const Deadline& entry) { return entry.at <= now; });
    if (due == list.end()) {
      return;
    }
    act_on(*due, now);
  }
  log(LogSeverity::error, "internal error: deadlines still due after acting on each; please report this");
}

void Supervisor::act_on(const Deadline& deadline, TimePoint now) {
  if (deadline.what == Due::restart) {
    Slot& slot = slots_.at(static_cast<std::size_t>(deadline.slot));
    slot.state = SlotState::running;  // replenish_slots spawns it
    activity_changed_ = true;
    slot.restart_at.reset();
    ++slot.restarts;
    ++counters_.restarts;
    return;
  }
  if (deadline.what == Due::recycle_retry) {
    slots_.at(static_cast<std::size_t>(deadline.slot)).recycle_retry_at.reset();  // recycle_one tries again
    return;
  }
  if (deadline.what == Due::spawn_more) {
    spawn_more_at_.reset();  // replenish_slots goes on with the next budget
    return;
  }
  if (deadline.what == Due::rss_sample) {
    take_rss_sample(now);
    return;
  }
  Worker& worker = *find_instance(deadline.instance);
  switch (deadline.what) {
    case Due::dump: {
      const StopConfig& stop = config_of(worker.id.generation).stop;
      worker.stopping->dump_at.reset();
      log(LogSeverity::warn,
          fmt::format("worker did not stop; asking for a stack dump {} signal={} kill_in={}",
                      worker_fields(worker.id, worker.pid), signal_name(*stop.dump_signal),
                      format_duration(stop.dump_lead())));
      actions_.push_back(SendSignal{worker.id, *stop.dump_signal});
      return;
    }
    case Due::kill:
      log(LogSeverity::warn, fmt::format("worker did not stop within grace; killing {} grace={}",
                                         worker_fields(worker.id, worker.pid),
                                         format_duration(config_of(worker.id.generation).stop.grace)));
      kill_worker(worker, worker.stopping->reason);
      return;
    case Due::probe:
      probe(worker, now);
      return;
    case Due::ready_after:
      mark_ready(worker, now, config_of(worker.id.generation).ready.mode == ReadyMode::uptime ? "uptime" : "min_uptime");
      return;
    case Due::ready_timeout:
      not_ready_in_time(worker, now);
      return;
    case Due::watchdog:
      worker.watchdog_deadline.reset();
      log(LogSeverity::error, "worker watchdog expired " + worker_fields(worker.id, worker.pid));
      kill_worker(worker, StopReason::watchdog);
      return;
    case Due::lifetime: {
      worker.recycle_at.reset();
      Slot& slot = slot_of(worker.id);
      if (!slot.recycle_reason) {
        slot.recycle_reason = "max_lifetime";
      }
      return;
    }
    case Due::restart:
    case Due::recycle_retry:
    case Due::rss_sample:
    case Due::spawn_more:
      return;  // handled above
  }
}

}  // namespace clusterd
