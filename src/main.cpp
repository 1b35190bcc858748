// Entry point: parses the command line, checks everything a start needs, wires the modules and
// maps failures to exit codes (0 clean stop, 1 runtime failure, 2 usage or configuration error).
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

#include "child_launch.h"
#include "cli.h"
#include "config.h"
#include "control_client.h"
#include "control_paths.h"
#include "control_socket.h"
#include "cpu_count.h"
#include "credentials.h"
#include "daemon.h"
#include "metrics_server.h"
#include "event_loop.h"
#include "host_checks.h"
#include "logging.h"
#include "process.h"
#include "socket_activation.h"
#include "sockets.h"
#include "start_preflight.h"
#include "top_client.h"
#include "upgrade_exec.h"

namespace clusterd {
namespace {

constexpr int exit_runtime_failure = 1;
constexpr int exit_usage = 2;

// A worker's stdin is /dev/null and its stdout/stderr are ours: if we were started with 0-2
// closed, our own sockets would land there and leak into workers as stdio (interface §3).
void open_missing_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int opened = ::open("/dev/null", O_RDWR);
      if (opened >= 0 && opened != fd) {
        ::dup2(opened, fd);
        ::close(opened);
      }
    }
  }
}

void print_diagnostics(const Diagnostics& diagnostics) {
  for (const Diagnostic& diagnostic : diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
  }
}

std::string where_command_came_from(const Config& config, const CliOptions& options) {
  if (!options.overrides.program.empty() || !config.file) {
    return "command line";
  }
  return *config.file;
}

// What a start needs beyond the validated config: the program's absolute path and the ids the
// workers run as. load_config has asked the host already (directory, program, user, group,
// log.file), so what can still fail here is the privilege to switch to `user`/`group`, or a file
// that changed in between. Nothing is bound or started.
struct StartChecks {
  Diagnostics diagnostics;
  std::string executable;
  WorkerUser user;
};

StartChecks check_start(const Config& config, const CliOptions& options) {
  StartChecks checks;
  auto executable = find_program(config.command.front(), config.directory);
  if (executable) {
    checks.executable = *executable;
  } else {
    checks.diagnostics.push_back(
        {where_command_came_from(config, options), 0, 0, "command", executable.error()});
  }
  auto user = resolve_worker_user(config.user, config.group);
  if (user) {
    checks.user = *user;
  } else {
    checks.diagnostics.push_back({config.file.value_or("command line"), 0, 0,
                                  config.user ? "user" : "group", user.error()});
  }
  return checks;
}

int worker_count_of(const Config& config) {
  if (config.workers) {
    return *config.workers;
  }
  const CpuCount cpus = detect_usable_cpus();
  spdlog::info("workers=auto resolved workers={} affinity_cpus={} quota_cpus={} source={}", cpus.usable,
               cpus.affinity, cpus.quota ? std::to_string(*cpus.quota) : "none", cpus.source);
  return cpus.usable;
}

// The config file (if any) with the command line's overrides, validated and checked against
// the host: what a start needs, and what each reload re-reads (SIGHUP).
tl::expected<PreparedConfig, Diagnostics> prepare_config(const CliOptions& options) {
  const HostChecks host = system_host_checks();
  auto config = load_config(options.config_file, options.overrides, &host);
  if (!config) {
    return tl::make_unexpected(config.error());
  }
  StartChecks checks = check_start(*config, options);
  if (!checks.diagnostics.empty()) {
    return tl::make_unexpected(checks.diagnostics);
  }
  return PreparedConfig{std::move(*config), std::move(checks.executable), std::move(checks.user)};
}

// Sockets systemd passed to us (socket activation) are adopted; otherwise every configured
// listener is bound. Either way before any worker starts. Throws ListenError.
void open_or_adopt_listeners(const Config& config, DaemonSetup& setup) {
  std::vector<InheritedSocket> inherited = take_inherited_sockets();
  std::vector<InheritedSocket> stored = take_stored_sockets(inherited);
  setup.socket_unit = !inherited.empty();
  if (inherited.empty()) {
    // After systemd restarted a clusterd that was killed: the sockets it kept are taken back, so
    // the connections that waited in their backlog are served; the rest is bound.
    for (const ListenerConfig& listener : config.listeners) {
      if (auto reused = reuse_stored_socket(stored, listener)) {
        spdlog::info("listening on the socket kept in systemd's fd store name={}", listener.name);
        ListenerConfig shared = listener;
        shared.reuseport = ReusePort::shared;
        setup.listeners.push_back(std::move(*reused));
        setup.listener_configs.push_back(std::move(shared));
      } else {
        setup.listeners.push_back(std::move(open_listeners({listener}).front()));
        setup.listener_configs.push_back(listener);
      }
    }
    for (const InheritedSocket& unused : stored) {
      setup.unused_stored.push_back(unused.name);
    }
    return;
  }
  for (const InheritedSocket& unused : stored) {
    setup.unused_stored.push_back(unused.name);  // a socket unit's sockets serve instead
  }
  setup.listeners = adopt_listeners(std::move(inherited), config.listeners);
  if (!config.listeners.empty()) {
    setup.listener_configs = config.listeners;
    for (ListenerConfig& adopted : setup.listener_configs) {
      // systemd passed one socket: an unset reuseport shares it (an explicit "per-slot" was refused).
      adopted.reuseport = ReusePort::shared;
    }
    return;
  }
  // No [[listen]]: every inherited socket is passed on as it is, under its own name.
  for (const Listener& listener : setup.listeners) {
    ListenerConfig adopted;
    adopted.name = listener.name();
    adopted.address = parse_address(listener.bound_address()).value_or(Address{});
    adopted.reuseport = ReusePort::shared;
    setup.listener_configs.push_back(std::move(adopted));
  }
}

int run_supervisor(const CliOptions& options, PreparedConfig prepared) {
  const Config& config = prepared.config;
  try {
    setup_logging(config.log.level, config.log.file);
  } catch (const spdlog::spdlog_ex& error) {
    std::cerr << "clusterd: log.file: cannot open \"" << config.log.file.value_or("") << "\": "
              << error.what() << '\n';
    return exit_usage;
  }
  raise_nofile_limit();
  // While the fd table is small: the low fds every spawn stages its child's fds on.
  prepare_launches();
  for (const std::string& warning : config.warnings) {
    spdlog::warn("{}", warning);
  }
  // Orphans of workers are reparented to us and reaped, and a dead worker's helpers can be
  // found and killed (protocols §3.7).
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  // Once on stderr for whoever started us; the log file (if any) gets it too.
  const auto refuse_start = [&config](const std::string& message) {
    if (config.log.file) {
      spdlog::error("{}", message);
    }
    std::cerr << "clusterd: " << message << '\n';
    return exit_usage;
  };

  DaemonSetup setup;
  // Before the listeners: if another instance owns this socket, say so rather than fail to bind
  // its addresses.
  auto control_path = control_socket_path(config.control, config.name, true);
  if (!control_path) {
    return refuse_start(control_path.error());
  }
  if (*control_path) {
    auto control = ControlSocket::open(**control_path);
    if (!control) {
      return refuse_start(control.error());
    }
    setup.control = std::move(*control);
  }
  try {
    open_or_adopt_listeners(config, setup);
  } catch (const ListenError& error) {
    return refuse_start(error.what());
  }
  if (config.metrics.listen) {
    try {
      setup.metrics = MetricsServer::open(*config.metrics.listen);
    } catch (const ListenError& error) {
      return refuse_start(std::string("metrics.listen: ") + error.what());
    }
  }
  if (config.output.file) {
    auto file = open_output_file(*config.output.file, ::geteuid());
    if (!file) {
      return refuse_start("output.file: " + file.error());
    }
    setup.output_file = std::move(*file);
  }
  if (config.cgroup.mode != CgroupMode::off) {
    auto cgroups = WorkerCgroups::set_up(config.cgroup.mode == CgroupMode::on);
    if (cgroups) {
      spdlog::info("a cgroup per worker parent={}", cgroups->parent());
      setup.cgroups.emplace(std::move(*cgroups));
    } else if (config.cgroup.mode == CgroupMode::on) {
      return refuse_start("cgroup.mode = \"on\": " + cgroups.error());
    } else {
      spdlog::info("the workers stay in clusterd's cgroup: {}", cgroups.error());
    }
  }
  for (const Listener& listener : setup.listeners) {
    spdlog::info("listening name={} address={} backlog={}", listener.name(), listener.bound_address(),
                 listener.backlog());
  }
  if (setup.control) {
    spdlog::info("control socket path={}", setup.control->path());
  }
  setup.worker_count = worker_count_of(config);
  spdlog::info("started name={} pid={} workers={} command={}", config.name, ::getpid(), setup.worker_count,
               config.command.front());
  setup.reload_loader = [&options] { return prepare_config(options); };
  setup.resolve_worker_count = worker_count_of;
  setup.prepared = std::move(prepared);
  Daemon daemon(std::move(setup));
  return daemon.run();
}

// The binary `clusterd upgrade` executed in clusterd's process: the configuration, sockets and
// workers of the state taken over, nothing bound or started. A state this binary cannot take goes
// back to the binary that handed it (give_upgrade_back), which then runs on as before.
int run_upgraded(const CliOptions& options, TakenUpgrade taken) {
  const UpgradeFallback& fallback = taken.fallback;
  const auto give_back = [&fallback](const std::string& why) {
    std::cerr << "clusterd: cannot take over the running clusterd's state: " << why << '\n';
    std::cerr << "clusterd: " << give_upgrade_back(fallback, why) << '\n';
    return exit_runtime_failure;
  };
  if (!taken.state) {
    return give_back(taken.state.error());
  }
  UpgradeState& state = *taken.state;
  if (state.slots.empty()) {
    return give_back("a state without slots");
  }
  // Without the host's checks: the program and the workers' user were resolved when this
  // generation started (the state carries them), and what changed on disk since is a reload's.
  auto config = build_config(ConfigText{state.config_file.value_or("(the running configuration)"), state.config},
                             ConfigOverrides{}, nullptr);
  if (!config) {
    return give_back("its configuration: " + config.error().front().to_string());
  }
  if (!state.config_file) {
    config->file.reset();
  }
  DaemonSetup setup;
  for (HandedListener& handed_listener : state.listeners) {
    if (handed_listener.sockets.empty()) {
      return give_back("listener " + handed_listener.name + " has no socket");
    }
  }
  keep_from_workers(state);
  try {
    setup_logging(config->log.level, config->log.file);
  } catch (const spdlog::spdlog_ex&) {
    setup_logging(config->log.level, std::nullopt);  // the file was writable a moment ago: say why on stderr
    spdlog::error("log.file: cannot open \"{}\" after the upgrade", config->log.file.value_or(""));
  }
  std::optional<Daemon> daemon;
  try {
    raise_nofile_limit();
    prepare_launches();
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (state.control_fd && state.control_path) {
      setup.control = ControlSocket::adopt(Fd(*state.control_fd), *state.control_path);
    }
    for (HandedListener& handed_listener : state.listeners) {
      ListenerConfig listener_config;
      const auto configured = std::find_if(config->listeners.begin(), config->listeners.end(),
                                           [&](const ListenerConfig& c) { return c.name == handed_listener.name; });
      if (configured != config->listeners.end()) {
        listener_config = *configured;
      } else {
        listener_config.name = handed_listener.name;
        listener_config.address = parse_address(handed_listener.bound_address).value_or(Address{});
      }
      listener_config.reuseport = handed_listener.per_slot ? ReusePort::per_slot : ReusePort::shared;
      std::map<int, Listener> sockets;
      for (const HandedSocket& socket : handed_listener.sockets) {
        sockets.emplace(socket.slot, Listener(handed_listener.name, handed_listener.bound_address, Fd(socket.fd),
                                              handed_listener.backlog, socket.slot == 0 ? handed_listener.unix_path : "",
                                              static_cast<mode_t>(handed_listener.unix_mode)));
      }
      auto first = sockets.extract(sockets.begin());
      setup.listeners.push_back(std::move(first.mapped()));
      setup.listener_configs.push_back(std::move(listener_config));
      setup.more_slot_sockets.push_back(std::move(sockets));
      setup.steering.push_back(handed_listener.steering);
    }
    if (state.metrics_fd) {
      setup.metrics.emplace("metrics", state.metrics_address, Fd(*state.metrics_fd), 0, "");
    }
    if (config->output.file) {
      auto file = open_output_file(*config->output.file, ::geteuid());
      if (file) {
        setup.output_file = std::move(*file);
      } else {
        spdlog::error("output.file: {}; the workers' output goes to clusterd's stdout and stderr", file.error());
      }
    }
    if (state.cgroup_parent && state.cgroup_parent_fd) {
      setup.cgroups.emplace(
          WorkerCgroups::adopt(*state.cgroup_parent, state.cgroup_parent_created, Fd(*state.cgroup_parent_fd)));
    }
    setup.socket_unit = state.socket_unit;
    setup.worker_count = static_cast<int>(state.slots.size());
    setup.reload_loader = [&options] { return prepare_config(options); };
    setup.resolve_worker_count = worker_count_of;
    setup.prepared = PreparedConfig{std::move(*config), state.executable, state.user};
    setup.upgraded = std::move(state);
    setup.upgrade_refused = fallback.refused;
    daemon.emplace(std::move(setup));
  } catch (const std::exception& error) {
    // A defect, not a state this binary refuses: the binary before it is the pool's best chance.
    spdlog::default_logger()->flush();
    return give_back(std::string("taking over failed: ") + error.what());
  }
  close_fallback(fallback);
  return daemon->run();
}

int run_main(const std::vector<std::string>& args) {
  // Asked by a clusterd about to execute this binary in its place (`clusterd upgrade`), before
  // anything else: which of its states this binary takes over.
  if (args.size() == 1 && args.front() == "--upgrade-formats") {
    std::cout << upgrade_formats_line() << '\n';
    return 0;
  }
  auto parsed = parse_cli(args);
  if (auto* done = std::get_if<CliExit>(&parsed)) {
    (done->code == 0 ? std::cout : std::cerr) << done->text;
    if (!done->text.empty() && done->text.back() != '\n') {
      (done->code == 0 ? std::cout : std::cerr) << '\n';
    }
    return done->code;
  }
  const CliOptions& options = std::get<CliOptions>(parsed);
  if (options.command == Command::run) {
    if (auto taken = take_upgrade()) {
      return run_upgraded(options, std::move(*taken));
    }
  }
  if (options.command != Command::run && options.command != Command::check) {
    // A client is an ordinary command: Ctrl-C must end a `reload` or `stop` that waits.
    const sigset_t handled = handled_signals();
    pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
    if (options.command == Command::top) {
      return run_top(options, std::cerr);
    }
    return run_client(options, std::cout, std::cerr);
  }

  auto prepared = prepare_config(options);
  if (!prepared) {
    print_diagnostics(prepared.error());
    return exit_usage;
  }
  if (options.command == Command::check) {
    // The control socket's directory as a start would judge it, creating nothing. A live
    // instance at the path is no error here: checking a file before reloading it is what
    // `check` is for.
    auto control = control_socket_path(prepared->config.control, prepared->config.name, false);
    if (!control) {
      std::cerr << "clusterd: " << control.error() << '\n';
      return exit_usage;
    }
    const Preflight preflight =
        preflight_start(prepared->config, prepared->executable,
                        {where_command_came_from(prepared->config, options),
                         prepared->config.file.value_or("command line"), options.overrides.listen},
                        *control);
    if (!preflight.errors.empty()) {
      print_diagnostics(preflight.errors);
      return exit_usage;
    }
    for (const std::string& note : preflight.notes) {
      std::cerr << "clusterd: note: " << note << '\n';
    }
    for (const std::string& warning : prepared->config.warnings) {
      std::cerr << "clusterd: warning: " << warning << '\n';
    }
    std::cout << to_toml(prepared->config);
    return 0;
  }
  return run_supervisor(options, std::move(*prepared));
}

}  // namespace
}  // namespace clusterd

int main(int argc, char** argv) {
  // Before anything can start a thread: no thread may ever have the handled signals unblocked,
  // and nothing inherited (an ignored SIGCHLD, nohup's ignored SIGHUP, a blocked signal) may
  // change how clusterd sees them (protocols §3.6).
  clusterd::take_over_signals();
  clusterd::open_missing_standard_fds();
  try {
    return clusterd::run_main(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::system_error& error) {
    std::cerr << "clusterd: fatal: " << error.what() << '\n';
    return clusterd::exit_runtime_failure;
  }
}
