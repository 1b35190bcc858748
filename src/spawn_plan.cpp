// Computes, in the parent, a worker's argv (placeholders expanded), its environment (with the
// reserved LISTEN_PID= slot) and the order of the fds it inherits.
#include "spawn_plan.h"

#include <algorithm>
#include <array>
#include <utility>

namespace clusterd {

namespace {

// What systemd set for clusterd itself (interface §3, protocols §1.1–1.2). LISTEN_PIDFDID in
// particular must go: a stale value makes new libsystemd in the worker ignore its fds.
constexpr std::array<std::string_view, 10> removed_variables = {
    "NOTIFY_SOCKET", "LISTEN_PID",    "LISTEN_FDS",       "LISTEN_FDNAMES", "LISTEN_PIDFDID",
    "WATCHDOG_USEC", "WATCHDOG_PID",  "SYSTEMD_EXEC_PID", "MAINPID",        "MANAGERPID",
};

constexpr std::string_view clusterd_prefix = "CLUSTERD_";
constexpr std::string_view listen_pid_prefix = "LISTEN_PID=";
constexpr std::string_view watchdog_pid_prefix = "WATCHDOG_PID=";

// "KEY=VALUE" → "KEY"; an entry without '=' is all name (execve accepts such strings).
std::string_view variable_name(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

std::string assignment(std::string_view name, std::string_view value) {
  std::string entry;
  entry.reserve(name.size() + 1 + value.size());
  entry.append(name).append("=").append(value);
  return entry;
}

std::vector<std::string> names_of(const std::vector<ListenerFd>& listeners) {
  std::vector<std::string> names;
  names.reserve(listeners.size());
  for (const auto& listener : listeners) {
    names.push_back(listener.name);
  }
  return names;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string joined;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      joined += ':';
    }
    joined += names[i];
  }
  return joined;
}

}  // namespace

bool is_removed_variable(std::string_view name) {
  return std::find(removed_variables.begin(), removed_variables.end(), name) !=
         removed_variables.end();
}

bool is_reserved_variable(std::string_view name) {
  return is_removed_variable(name) || name.starts_with(clusterd_prefix);
}

namespace {

// `{fd:NAME}` naming no listener: the names there are, and how to add the one meant.
std::string unknown_listener(std::string_view placeholder, std::string_view name,
                             const std::vector<std::string>& listener_names) {
  std::string message = "unknown placeholder \"" + std::string(placeholder) + "\": ";
  if (listener_names.empty()) {
    return message + "no listener is configured; add a [[listen]] with name = \"" + std::string(name) +
           "\" (or --listen " + std::string(name) + "=ADDRESS)";
  }
  message += "no listener is named \"" + std::string(name) + "\" (listeners:";
  for (const std::string& known : listener_names) {
    message += " \"" + known + "\"";
  }
  return message + "); use one of those names, or set name = \"" + std::string(name) + "\" in its [[listen]]";
}

}  // namespace

tl::expected<std::string, std::string> expand_argument(std::string_view argument,
                                                       const std::vector<std::string>& listener_names,
                                                       int slot) {
  std::string expanded;
  expanded.reserve(argument.size());
  std::size_t i = 0;
  while (i < argument.size()) {
    const char c = argument[i];
    if (c != '{') {
      // A lone '}' is literal: only '{' opens a placeholder, so "}" needs no escape.
      expanded += c;
      ++i;
      continue;
    }
    if (argument.substr(i).starts_with("{{")) {
      expanded += '{';
      i += 2;
      continue;
    }
    const std::size_t close = argument.find('}', i);
    // An unterminated '{' is reported with the rest of the argument, so the operator sees
    // exactly what was not understood.
    const std::string_view placeholder =
        close == std::string_view::npos ? argument.substr(i) : argument.substr(i, close - i + 1);
    const std::string_view inner =
        close == std::string_view::npos ? std::string_view{} : placeholder.substr(1, placeholder.size() - 2);
    if (inner == "worker_id") {
      expanded += std::to_string(slot);
    } else if (inner.starts_with("fd:")) {
      const std::string_view name = inner.substr(3);
      const auto found = std::find(listener_names.begin(), listener_names.end(), name);
      if (found == listener_names.end()) {
        return tl::make_unexpected(unknown_listener(placeholder, name, listener_names));
      }
      // Listeners are laid out at 3, 4, … in order (protocols §1.1, SD_LISTEN_FDS_START).
      expanded += std::to_string(3 + (found - listener_names.begin()));
    } else {
      return tl::make_unexpected("unknown placeholder \"" + std::string(placeholder) +
                                 "\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {");
    }
    i += placeholder.size();
  }
  return expanded;
}

SpawnPlan make_spawn_plan(const Config& config, const std::string& executable,
                          const std::vector<ListenerFd>& listeners, const WorkerIdentity& identity,
                          const std::vector<std::string>& parent_env,
                          const std::optional<UserEnv>& user_env,
                          const std::optional<NotifySettings>& notify) {
  SpawnPlan plan;
  plan.executable = executable;
  plan.directory = config.directory;

  const std::vector<std::string> names = names_of(listeners);
  plan.argv.reserve(config.command.size());
  for (std::size_t i = 0; i < config.command.size(); ++i) {
    const std::string& argument = config.command[i];
    // argv[0] stays as written: it is the name the executable was resolved from. A bad
    // placeholder elsewhere was already reported by config validation; keeping the argument
    // as written beats dropping it and shifting every later argument.
    if (i == 0) {
      plan.argv.push_back(argument);
      continue;
    }
    auto expanded = expand_argument(argument, names, identity.slot);
    plan.argv.push_back(expanded ? std::move(*expanded) : argument);
  }

  // What clusterd itself sets for this worker, in the order it is appended below.
  std::vector<std::pair<std::string, std::string>> own;
  for (const auto& [name, value] : config.env) {
    // Validation rejects reserved names in [env]; should one slip through, clusterd's own
    // values must still be the only ones the worker sees.
    if (!is_reserved_variable(name)) {
      auto expanded = expand_argument(value, names, identity.slot);
      own.emplace_back(name, expanded ? std::move(*expanded) : value);
    }
  }
  if (user_env) {
    // The worker runs as that user, so its HOME/USER/LOGNAME replace clusterd's, unless the
    // operator chose them in [env] (interface §2.6).
    const std::array<std::pair<const char*, const std::string*>, 3> user_variables = {{
        {"HOME", &user_env->home},
        {"USER", &user_env->name},
        {"LOGNAME", &user_env->name},
    }};
    for (const auto& [name, value] : user_variables) {
      if (config.env.find(name) == config.env.end()) {
        own.emplace_back(name, *value);
      }
    }
  }
  own.emplace_back("CLUSTERD_WORKER_ID", std::to_string(identity.slot));
  own.emplace_back("CLUSTERD_WORKERS", std::to_string(identity.workers));
  own.emplace_back("CLUSTERD_GENERATION", std::to_string(identity.generation));

  const auto set_by_us = [&own](std::string_view name) {
    return std::any_of(own.begin(), own.end(), [name](const auto& pair) { return pair.first == name; });
  };

  plan.env.reserve(parent_env.size() + own.size() + 3);
  // With output = "prefix" the worker's stderr is a pipe to clusterd, not the journal's stream,
  // so a JOURNAL_STREAM passed on would make it log in journald's format to the wrong place.
  const auto removed_for_output = [&config](std::string_view name) {
    return config.output.mode == OutputMode::prefix && name == "JOURNAL_STREAM";
  };
  // inherit_env as a list: only the variables the operator named pass, so a secret in clusterd's
  // environment (a token systemd's EnvironmentFile= gave it) reaches no worker by accident.
  const auto inherited = [&config](std::string_view name) {
    return !config.inherit_env ||
           std::find(config.inherit_env->begin(), config.inherit_env->end(), name) != config.inherit_env->end();
  };
  for (const auto& entry : parent_env) {
    const std::string_view name = variable_name(entry);
    if (inherited(name) && !is_removed_variable(name) && !removed_for_output(name) && !set_by_us(name)) {
      plan.env.push_back(entry);
    }
  }
  for (const auto& [name, value] : own) {
    plan.env.push_back(assignment(name, value));
  }

  // libsystemd rejects LISTEN_FDS=0, so a worker without listeners gets none of the
  // variables (protocols §1.1, interface §2.7).
  if (!listeners.empty()) {
    plan.env.push_back(assignment("LISTEN_FDS", std::to_string(listeners.size())));
    plan.env.push_back(assignment("LISTEN_FDNAMES", join_names(names)));
    // The pid exists only after fork, so the child writes it into this slot (protocols §1.2).
    plan.listen_pid_index = plan.env.size();
    plan.env.push_back(std::string(listen_pid_prefix) + std::string(pid_slot_width, ' '));
    plan.fds.reserve(listeners.size());
    for (const auto& listener : listeners) {
      plan.fds.push_back(listener.fd);
    }
  }
  if (notify) {
    plan.env.push_back(assignment("NOTIFY_SOCKET", notify->socket_path));
    if (notify->watchdog_usec) {
      plan.env.push_back(assignment("WATCHDOG_USEC", std::to_string(*notify->watchdog_usec)));
      // Like LISTEN_PID: only the child knows its pid (protocols §2.3 step 3).
      plan.watchdog_pid_index = plan.env.size();
      plan.env.push_back(std::string(watchdog_pid_prefix) + std::string(pid_slot_width, ' '));
    }
  }
  return plan;
}

}  // namespace clusterd
