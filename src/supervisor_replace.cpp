// The Supervisor's replacements of running workers: rolling reload in batches, recycling one slot
// at a time, and scaling. A new worker always becomes ready before the old one is stopped.
#include <algorithm>

#include <fmt/format.h>

#include "supervisor.h"

namespace clusterd {

void Supervisor::start_reload(std::shared_ptr<const Config> config, int workers, std::vector<RequestId> requests,
                              TimePoint) {
  Reload reload;
  reload.generation = next_generation_++;
  reload.target = workers;
  reload.requests = std::move(requests);
  for (int slot = 0; slot < workers; ++slot) {
    reload.queue.push_back(slot);
  }
  configs_[reload.generation] = std::move(config);
  const int batch = config_of(reload.generation).reload.batch;
  reload_ = std::move(reload);
  resize_slots(std::max<int>(static_cast<int>(slots_.size()), workers));
  log(LogSeverity::info, fmt::format("reload started generation={} workers={} batch={}", reload_->generation,
                                     workers, batch));
  actions_.push_back(NotifySystemd{"RELOADING=1"});
}

void Supervisor::advance_reload(TimePoint now) {
  Reload& reload = *reload_;
  // The batch under way is done when each of its slots is served by a ready new worker.
  for (int slot : reload.batch) {
    const Worker* primary = worker_in(slot, Role::primary);
    if (primary == nullptr || primary->id.generation != reload.generation || primary->state != WorkerState::ready) {
      return;
    }
  }
  reload.batch.clear();
  const int batch_size = config_of(reload.generation).reload.batch;
  while (!reload.queue.empty() && static_cast<int>(reload.batch.size()) < batch_size) {
    const int slot = reload.queue.front();
    reload.queue.pop_front();
    spawn(slot, reload.generation, Role::replacement, now);
    reload.batch.push_back(slot);
  }
  if (!reload.batch.empty()) {
    return;
  }
  // Every slot has its new worker: the new count applies, and what is left of the old
  // generation (slots beyond the new count included) is asked to stop.
  wanted_ = reload.target;
  for (Worker& worker : workers_) {
    if (worker.id.generation != reload.generation) {
      worker.role = Role::retiring;
      stop_worker(worker, now);
    }
  }
  const bool old_workers_left = std::any_of(workers_.begin(), workers_.end(), [&](const Worker& worker) {
    return worker.id.generation != reload.generation;
  });
  if (!old_workers_left) {
    finish_reload();
    start_next_queued_reload(now);
    if (reload_) {
      advance_reload(now);  // the queued reload's first batch starts now, not at the next event
    }
  }
}

void Supervisor::finish_reload() {
  const Reload reload = std::move(*reload_);
  reload_.reset();
  generation_ = reload.generation;
  log(LogSeverity::info, fmt::format("reload finished generation={} workers={}", generation_, wanted_));
  actions_.push_back(ReloadFinished{reload.requests, true, generation_, {}});
  actions_.push_back(NotifySystemd{"READY=1"});
}

void Supervisor::abandon_reload(const std::string& reason, TimePoint now) {
  const Reload reload = std::move(*reload_);
  reload_.reset();
  // New workers not yet ready are stopped; slots of finished batches keep theirs.
  for (Worker& worker : workers_) {
    if (worker.role == Role::replacement && worker.id.generation == reload.generation) {
      worker.role = Role::retiring;
      stop_worker(worker, now);
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
  start_reload(std::move(queued.config), queued.workers, std::move(queued.requests), now);
}

void Supervisor::promote(Worker& replacement, TimePoint now) {
  Slot& slot = slot_of(replacement.id);
  Worker* old = worker_in(replacement.id.slot, Role::primary);
  const int old_pid = old != nullptr ? old->pid : 0;
  if (old != nullptr) {
    old->role = Role::retiring;
    stop_worker(*old, now);
  }
  replacement.role = Role::primary;
  if (slot.generation != replacement.id.generation) {
    slot.generation = replacement.id.generation;
    slot.backoff.set_config(config_of(slot.generation).restart);
  }
  slot.state = SlotState::running;
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
  for (std::size_t index = 0; index < slots_.size() && static_cast<int>(index) < wanted_; ++index) {
    Slot& slot = slots_[index];
    if (!slot.recycle_reason) {
      continue;
    }
    if (slot.recycle_retry_at) {
      if (*slot.recycle_retry_at > now) {
        continue;
      }
      slot.recycle_retry_at.reset();
    }
    const Worker* primary = worker_in(static_cast<int>(index), Role::primary);
    if (recycling || primary == nullptr || primary->state != WorkerState::ready) {
      continue;  // one slot at a time; a slot without a serving worker restarts anyway
    }
    log(LogSeverity::info, fmt::format("worker recycling slot={} gen={} pid={} reason={}", index,
                                       primary->id.generation, primary->pid, *slot.recycle_reason));
    spawn(static_cast<int>(index), slot.generation, Role::replacement, now);
    return;
  }
}

void Supervisor::scale_down(TimePoint now) {
  if (reload_) {
    return;
  }
  for (Worker& worker : workers_) {
    if (worker.id.slot >= wanted_ && worker.role != Role::retiring) {
      worker.role = Role::retiring;
      stop_worker(worker, now);
    }
  }
  while (static_cast<int>(slots_.size()) > wanted_) {
    const int last = static_cast<int>(slots_.size()) - 1;
    const bool occupied = std::any_of(workers_.begin(), workers_.end(),
                                      [&](const Worker& worker) { return worker.id.slot == last; });
    if (occupied) {
      break;
    }
    slots_.pop_back();
  }
}

void Supervisor::sample_rss(TimePoint now) {
  const RecycleConfig& recycle = config_of(generation_).recycle;
  if (!recycle.max_rss) {
    next_rss_sample_.reset();
    return;
  }
  if (!next_rss_sample_) {
    next_rss_sample_ = now + recycle.check_interval;
    return;
  }
  if (*next_rss_sample_ > now) {
    return;
  }
  next_rss_sample_ = now + recycle.check_interval;
  SampleRss sample;
  for (const Worker& worker : workers_) {
    if (worker.role == Role::primary && worker.state == WorkerState::ready && !worker.stop_requested) {
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
  }
}

}  // namespace clusterd
