// The Supervisor's replacements of running workers: rolling reload in batches, recycling one slot
// at a time, and scaling. A new worker always becomes ready before the old one is stopped.
#include <algorithm>

#include <fmt/format.h>

#include "supervisor.h"

namespace clusterd {

void Supervisor::start_reload(std::uint64_t generation, std::optional<int> workers, std::vector<RequestId> requests,
                              TimePoint now) {
  const int target = std::clamp(workers.value_or(wanted_), 1, 4096);
  reload_ = Reload{generation, target, std::move(requests), now};
  resize_slots(std::max<int>(static_cast<int>(slots_.size()), target));
  log(LogSeverity::info, fmt::format("reload started generation={} workers={} batch={}", generation, target,
                                     config_of(generation).reload.batch));
  actions_.push_back(NotifySystemd{"RELOADING=1"});
}

// The reload's progress is read off the workers each time (einhorn's model): a slot below the
// target is done when its primary runs the new generation and is ready (or its slot gave up),
// under way while a new worker of it is starting. The next batch starts once none is under way.
void Supervisor::advance_reload(TimePoint now) {
  const Reload& reload = *reload_;
  const auto target = static_cast<std::size_t>(reload.target);
  std::vector<const Worker*> primary(slots_.size(), nullptr);
  std::vector<bool> under_way(slots_.size(), false);
  for (const Worker& worker : workers_) {
    const auto slot = static_cast<std::size_t>(worker.id.slot);
    if (slot >= slots_.size()) {
      continue;
    }
    if (worker.role == Role::primary) {
      primary[slot] = &worker;
    } else if (worker.role == Role::replacement && worker.id.generation == reload.generation) {
      under_way[slot] = true;
    }
  }
  std::vector<int> to_do;
  for (std::size_t slot = 0; slot < target && slot < slots_.size(); ++slot) {
    const Worker* serving = primary[slot];
    if (under_way[slot]) {
      return;  // the batch under way first
    }
    if (serving != nullptr && serving->id.generation == reload.generation) {
      if (serving->state != WorkerState::ready) {
        return;  // a new worker (re)starting in its slot counts as under way
      }
      continue;
    }
    const bool new_slot = slots_[slot].generation == reload.generation;
    const bool given_up = slots_[slot].state == SlotState::failed || slots_[slot].state == SlotState::done;
    if (serving == nullptr && new_slot && given_up) {
      continue;
    }
    if (serving == nullptr && new_slot && static_cast<int>(slot) < wanted_) {
      return;  // restarting with the new generation already: replenish_slots spawns it
    }
    to_do.push_back(static_cast<int>(slot));
  }
  if (!to_do.empty()) {
    const auto batch = static_cast<std::size_t>(config_of(reload.generation).reload.batch);
    for (std::size_t index = 0; index < to_do.size() && index < batch; ++index) {
      spawn(to_do[index], reload.generation, Role::replacement, now);
    }
    return;
  }
  // Every slot has its new worker: the new count applies, and what is left of the old
  // generation (slots beyond the new count included) is asked to stop.
  wanted_ = reload.target;
  bool old_workers_left = false;
  for (Worker& worker : workers_) {
    if (worker.id.generation != reload.generation) {
      worker.role = Role::retiring;
      stop_worker(worker, StopReason::retire, now);
      old_workers_left = true;
    }
  }
  if (!old_workers_left) {
    finish_reload(now);
    start_next_queued_reload(now);
  }
}

void Supervisor::finish_reload(TimePoint now) {
  const Reload reload = std::move(*reload_);
  reload_.reset();
  ++counters_.reloads_finished;
  counters_.last_reload = std::chrono::duration_cast<Duration>(now - reload.started_at);
  generation_ = reload.generation;
  log(LogSeverity::info, fmt::format("reload finished generation={} workers={}", generation_, wanted_));
  actions_.push_back(ReloadFinished{reload.requests, true, generation_, {}});
  actions_.push_back(NotifySystemd{"READY=1"});
}

void Supervisor::abandon_reload(const std::string& reason, TimePoint now) {
  const Reload reload = std::move(*reload_);
  reload_.reset();
  ++counters_.reloads_abandoned;
  counters_.last_reload = std::chrono::duration_cast<Duration>(now - reload.started_at);
  // New workers not yet ready are stopped; slots of finished batches keep theirs. Any other slot
  // of the new generation (added by a scale meanwhile, or whose new worker is restarting) goes
  // back to the generation that serves, rather than restart the abandoned one for ever.
  for (Worker& worker : workers_) {
    if (worker.role == Role::replacement && worker.id.generation == reload.generation) {
      worker.role = Role::retiring;
      stop_worker(worker, StopReason::retire, now);
    }
  }
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    Slot& slot = slots_[index];
    Worker* primary = worker_in(static_cast<int>(index), Role::primary);
    if (slot.generation != reload.generation || (primary != nullptr && primary->state == WorkerState::ready)) {
      continue;
    }
    slot.generation = generation_;
    slot.backoff.set_config(config_of(generation_).restart);
    if (primary != nullptr) {
      primary->role = Role::retiring;
      stop_worker(*primary, StopReason::retire, now);
    }
  }
  log(LogSeverity::warn, fmt::format("reload abandoned: {}; the running workers keep serving generation={}", reason,
                                     generation_));
  actions_.push_back(ReloadFinished{reload.requests, false, reload.generation, "reload abandoned: " + reason});
  actions_.push_back(NotifySystemd{"READY=1"});
}

void Supervisor::start_next_queued_reload(TimePoint now) {
  if (!queued_reload_ || stopping_) {
    return;
  }
  QueuedReload queued = std::move(*queued_reload_);
  queued_reload_.reset();
  start_reload(queued.generation, queued.workers, std::move(queued.requests), now);
  advance_reload(now);  // its first batch starts now, not at the next event
}

void Supervisor::promote(Worker& replacement, TimePoint now) {
  Slot& slot = slot_of(replacement.id);
  Worker* old = worker_in(replacement.id.slot, Role::primary);
  const int old_pid = old != nullptr ? old->pid : 0;
  if (old != nullptr) {
    old->role = Role::retiring;
    stop_worker(*old, StopReason::retire, now);
  }
  replacement.role = Role::primary;
  if (slot.generation != replacement.id.generation) {
    slot.generation = replacement.id.generation;
    slot.backoff.set_config(config_of(slot.generation).restart);
  }
  slot.state = SlotState::running;
  activity_changed_ = true;
  slot.restart_at.reset();
  const bool by_reload = reload_ && replacement.id.generation == reload_->generation;
  if (!by_reload && slot.recycle_reason) {
    log(LogSeverity::info, fmt::format("worker recycled slot={} reason={} old_pid={} pid={}", replacement.id.slot,
                                       *slot.recycle_reason, old_pid, replacement.pid));
  }
  slot.recycle_reason.reset();
  slot.recycle_retry_at.reset();
}

void Supervisor::replacement_failed(const Worker& worker, const std::string& reason, TimePoint now) {
  if (reload_ && worker.id.generation == reload_->generation) {
    abandon_reload(reason, now);
    start_next_queued_reload(now);
    return;
  }
  // A recycle: the old worker keeps running; try again later.
  if (static_cast<std::size_t>(worker.id.slot) < slots_.size()) {
    Slot& slot = slot_of(worker.id);
    const Duration retry = config_of(slot.generation).restart.max_delay;
    slot.recycle_retry_at = now + retry;
    log(LogSeverity::warn, fmt::format("worker recycle failed: {}; the running worker keeps serving, retry_in={}",
                                       reason, format_duration(retry)));
  }
}

void Supervisor::recycle_one(TimePoint now) {
  if (reload_) {
    return;  // the reload replaces every worker anyway
  }
  const bool recycling = std::any_of(workers_.begin(), workers_.end(),
                                     [](const Worker& worker) { return worker.role == Role::replacement; });
  if (recycling) {
    return;  // one slot at a time
  }
  for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
    const Slot& slot = slots_[index];
    if (!slot.recycle_reason || slot.recycle_retry_at) {
      continue;  // nothing to do, or waiting after a failed recycle (a deadline)
    }
    const Worker* primary = worker_in(static_cast<int>(index), Role::primary);
    if (primary == nullptr || primary->state != WorkerState::ready) {
      continue;  // a slot without a serving worker restarts anyway
    }
    log(LogSeverity::info, fmt::format("worker recycling {} reason={}", worker_fields(primary->id, primary->pid),
                                       *slot.recycle_reason));
    spawn(static_cast<int>(index), slot.generation, Role::replacement, now);
    return;
  }
}

// Slots beyond the count wanted are stopped at once, during a reload too (a scale then sets both
// counts); a reload's own smaller count applies when it finishes, as it retires the old workers.
void Supervisor::scale_down(TimePoint now) {
  const int keep = reload_ ? std::max(wanted_, reload_->target) : wanted_;
  for (Worker& worker : workers_) {
    if (worker.id.slot >= keep && worker.role != Role::retiring) {
      worker.role = Role::retiring;
      stop_worker(worker, StopReason::retire, now);
    }
  }
  while (static_cast<int>(slots_.size()) > keep) {
    const int last = static_cast<int>(slots_.size()) - 1;
    const bool occupied = std::any_of(workers_.begin(), workers_.end(),
                                      [&](const Worker& worker) { return worker.id.slot == last; });
    if (occupied) {
      break;
    }
    slots_.pop_back();
    activity_changed_ = true;
  }
}

// The first RSS sample is due one check_interval from now; none while recycle.max_rss is unset.
void Supervisor::arm_rss_sample(TimePoint now) {
  const RecycleConfig& recycle = config_of(generation_).recycle;
  if (!recycle.max_rss) {
    next_rss_sample_.reset();
  } else if (!next_rss_sample_) {
    next_rss_sample_ = now + std::max(recycle.check_interval, Duration{1});
  }
}

void Supervisor::take_rss_sample(TimePoint now) {
  next_rss_sample_ = now + std::max(config_of(generation_).recycle.check_interval, Duration{1});
  SampleRss sample;
  for (const Worker& worker : workers_) {
    if (worker.role == Role::primary && worker.state == WorkerState::ready && !worker.stopping) {
      sample.ids.push_back(worker.id);
    }
  }
  if (!sample.ids.empty()) {
    actions_.push_back(std::move(sample));
  }
}

void Supervisor::resize_slots(int count) {
  const std::uint64_t generation = reload_ ? reload_->generation : generation_;
  while (static_cast<int>(slots_.size()) < count) {
    slots_.emplace_back(config_of(generation).restart, generation);
    activity_changed_ = true;
  }
}

}  // namespace clusterd
