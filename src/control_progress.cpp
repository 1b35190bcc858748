// Makes the progress line of `reload` and `stop` from a status reply.
#include "control_progress.h"

#include <algorithm>
#include <cstdint>
#include <set>

#include <fmt/format.h>

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;

// The field when it is there with that type; anything else is "missing" (control_render.h).
const Json* field(const Json& object, std::string_view key) {
  if (!object.is_object()) {
    return nullptr;
  }
  const auto found = object.find(key);
  return found == object.end() ? nullptr : &*found;
}

std::optional<std::int64_t> integer_of(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  if (value == nullptr || !value->is_number_integer()) {
    return std::nullopt;
  }
  return value->get<std::int64_t>();
}

std::optional<double> number_of(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  if (value == nullptr || !value->is_number()) {
    return std::nullopt;
  }
  return value->get<double>();
}

bool string_is(const Json& object, std::string_view key, std::string_view text) {
  const Json* value = field(object, key);
  return value != nullptr && value->is_string() && value->get_ref<const std::string&>() == text;
}

std::string counted(std::int64_t count, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", count, count == 1 ? one : many);
}

// Workers being stopped: how many, and the nearest SIGKILL among them.
struct Stopping {
  std::int64_t count = 0;
  std::optional<double> kill_in;

  void add(const Json& worker) {
    ++count;
    if (const auto seconds = number_of(worker, "kill_in_s")) {
      kill_in = std::min(kill_in.value_or(*seconds), *seconds);
    }
  }

  std::string kill_text() const {
    return kill_in ? fmt::format(", SIGKILL in {:.1f}s", std::max(0.0, *kill_in)) : std::string();
  }
};

std::optional<std::string> reload_line(const Json& status, const Json& workers) {
  const auto generation = integer_of(status, "reloading_to");
  if (!generation) {
    return std::nullopt;
  }
  const auto total = integer_of(status, "workers_wanted");
  std::set<std::int64_t> replaced;
  Stopping old;
  for (const Json& worker : workers) {
    const auto slot = integer_of(worker, "slot");
    const bool is_new = integer_of(worker, "generation") == generation;
    if (is_new && slot && *slot >= 0 && (!total || *slot < *total) && string_is(worker, "state", "ready")) {
      replaced.insert(*slot);
    }
    if (!is_new && integer_of(worker, "pid") && string_is(worker, "state", "stopping")) {
      old.add(worker);
    }
  }
  std::string line = fmt::format("reloading to generation {}: ", *generation);
  const auto done = static_cast<std::int64_t>(replaced.size());
  line += total ? fmt::format("{}/{} slots replaced", done, *total) : counted(done, "slot replaced", "slots replaced");
  if (old.count > 0) {
    line += ", " + counted(old.count, "old worker stopping", "old workers stopping") + old.kill_text();
  }
  return line;
}

std::string stop_line(const Json& workers) {
  Stopping left;
  for (const Json& worker : workers) {
    if (integer_of(worker, "pid")) {  // not a slot without a process
      left.add(worker);
    }
  }
  return "stopping: " + counted(left.count, "worker left", "workers left") + left.kill_text();
}

}  // namespace

std::optional<std::string> progress_line(ProgressOf what, const Json& status) {
  const Json* workers = field(status, "workers");
  if (workers == nullptr || !workers->is_array()) {
    return std::nullopt;
  }
  if (what == ProgressOf::reload) {
    return reload_line(status, *workers);
  }
  return stop_line(*workers);
}

}  // namespace clusterd
