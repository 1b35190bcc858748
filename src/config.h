// The validated configuration: TOML file + command-line overrides → an immutable Config, or every
// Diagnostic found (file, line, column, key, what was expected, what was found).
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "address.h"
#include "duration.h"

namespace clusterd {

enum class RestartPolicyKind { always, on_failure, never };

struct RestartConfig {
  RestartPolicyKind policy = RestartPolicyKind::always;
  Duration delay = std::chrono::milliseconds(100);
  Duration max_delay = std::chrono::seconds(30);
  double multiplier = 2.0;
  Duration reset_after = std::chrono::seconds(30);
  std::optional<int> burst;  // unset: a slot never fails for good
  Duration interval = std::chrono::seconds(60);
};

struct StopConfig {
  int signal = SIGTERM;
  Duration grace = std::chrono::seconds(30);
  // The stop ladder: a worker still running `dump_before` ahead of its SIGKILL gets this signal,
  // which makes most runtimes leave a stack dump or a core (ABRT; QUIT for Go and the JVM).
  std::optional<int> dump_signal;
  std::optional<Duration> dump_before;  // unset: 5s, or half of `grace` when that is shorter

  Duration dump_lead() const {
    return dump_before.value_or(std::min<Duration>(std::chrono::seconds(5), grace / 2));
  }
};

// Whether each worker gets a cgroup v2 of its own (worker_cgroups.h): `automatic` where clusterd
// may create them and says once why not elsewhere; `on` refuses to start without them; `off`
// leaves the workers in clusterd's cgroup.
enum class CgroupMode { automatic, on, off };

struct CgroupConfig {
  CgroupMode mode = CgroupMode::automatic;
};

// How the workers share a listener (interface §7, protocols §4.1): one socket clusterd opens and
// every worker inherits (model A), or one SO_REUSEPORT socket per slot, bound and kept by clusterd
// and handed to that slot's workers (model B; TCP only).
enum class ReusePort { shared, per_slot };

struct ListenerConfig {
  std::string name;  // "fd3", "fd4", … when not given
  Address address;
  int backlog = 4096;
  unsigned mode = 0660;    // unix sockets only
  bool ipv6_only = false;  // true for [V6]:PORT unless set; false for :PORT (dual stack)
  // Unset: per-slot for a TCP address when clusterd can steer connections to the slots whose
  // worker accepts (reuseport_in_effect, reuseport_steering.h), else shared.
  std::optional<ReusePort> reuseport;
};

// When a new worker counts as ready. automatic: it sent READY=1, or it waits for connections on
// one of its listening sockets (seen in /proc), or, given none, it stayed up `min_uptime`. exec:
// its exec succeeded. notify: it sent READY=1 to its NOTIFY_SOCKET. uptime: it stayed up
// `min_uptime`.
enum class ReadyMode { automatic, exec, notify, uptime };

struct ReadyConfig {
  ReadyMode mode = ReadyMode::automatic;
  // uptime: the mode's duration. automatic: ready.min_uptime, for a worker given no listening
  // socket, or one whose waits cannot be seen.
  Duration min_uptime = std::chrono::seconds(1);
  Duration timeout = std::chrono::seconds(60);
  std::optional<Duration> watchdog;  // ReadyMode::notify only; unset: off
};

struct ReloadConfig {
  int batch = 1;  // slots replaced at the same time
};

struct RecycleConfig {
  std::optional<Duration> max_lifetime;  // unset: off
  std::optional<std::uint64_t> max_rss;  // bytes; unset: off
  Duration check_interval = std::chrono::seconds(10);
};

enum class LogLevel { trace, debug, info, warn, error };

// Where workers' stdout and stderr go (interface §3): clusterd's own (no copy), or through a pipe
// per stream that clusterd reads and writes out as whole lines "[SLOT PID] text".
enum class OutputMode { inherit, prefix };

// `output`: a string (the mode alone) or the [output] table. Everything but `mode` works only in
// prefix mode, where workers' lines pass through clusterd.
struct OutputConfig {
  OutputMode mode = OutputMode::inherit;
  // Where workers' lines go instead of clusterd's stdout and stderr; reopened on SIGUSR1.
  std::optional<std::string> file;
  bool timestamps = false;  // each line starts with the local time it was read
  // Rotate `file` once it holds this many bytes, keeping `keep` earlier files (FILE.1 newest).
  std::optional<std::uint64_t> max_size;
  int keep = 5;
  // Lines kept in memory per slot for `clusterd logs` (0: none).
  int recent_lines = 1000;
  bool operator==(const OutputConfig&) const = default;
};

// The longest control.socket: sun_path holds 108 bytes with the terminating NUL (unix(7)).
inline constexpr std::size_t max_control_path = 107;

// The control socket (interface §4.4).
struct ControlConfig {
  bool enabled = true;                // false: control.socket = "none"
  std::optional<std::string> socket;  // an absolute path; unset: the default path, chosen at start
  bool operator==(const ControlConfig&) const = default;
};

// The HTTP endpoint that serves the metrics text at GET /metrics (docs/configuration.md).
struct MetricsConfig {
  std::optional<Address> listen;  // a TCP address; unset: no endpoint
  bool operator==(const MetricsConfig&) const = default;
};

struct LogConfig {
  LogLevel level = LogLevel::info;
  std::optional<std::string> file;  // unset: stderr
};

struct Config {
  std::string name;
  std::optional<int> workers;  // unset: "auto", resolved from the CPUs at start
  std::vector<std::string> command;
  std::string directory;  // empty: clusterd's working directory
  std::optional<std::string> user;
  std::optional<std::string> group;
  std::vector<ListenerConfig> listeners;
  std::map<std::string, std::string> env;
  // Which of clusterd's own variables the workers get: nullopt passes every one (inherit_env =
  // true, the default); a list passes only those names (empty: inherit_env = false). [env], the
  // user's HOME/USER/LOGNAME and what clusterd sets for a worker (CLUSTERD_*, LISTEN_*,
  // NOTIFY_SOCKET, WATCHDOG_*) come on top either way.
  std::optional<std::vector<std::string>> inherit_env;
  OutputConfig output;
  RestartConfig restart;
  StopConfig stop;
  ReadyConfig ready;
  ReloadConfig reload;
  RecycleConfig recycle;
  CgroupConfig cgroup;
  ControlConfig control;
  MetricsConfig metrics;
  LogConfig log;
  std::optional<std::string> file;  // the config file it was read from, as given
  // What is valid but most likely not what the operator meant, one diagnostic line each
  // (`clusterd.toml:4:9: group: …`): logged at start and at each reload, printed by `check`.
  std::vector<std::string> warnings;
};

// One problem with the operator's input. `file` is the config file, or the flag for problems
// found in the command line ("--set restart.delay=5", "--workers"); line and column are 0 then.
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;      // "restart.delay", "listen[1].address"; empty for syntax errors
  std::string message;  // what was expected and what was found

  // `clusterd.toml:12:11: workers: expected an integer 1-4096 or "auto", found -2`, or
  // `--set restart.delay=5: expected a duration with a unit such as "5s", found 5`.
  std::string to_string() const;
};
using Diagnostics = std::vector<Diagnostic>;

// What the command line says about the configuration. Every field overrides the file's key.
struct ConfigOverrides {
  std::optional<std::string> workers;        // -w, --workers
  std::vector<std::string> listen;           // -l, --listen (replace every [[listen]])
  std::optional<std::string> ready;          // --ready (ready.mode)
  std::optional<std::string> ready_timeout;  // --ready-timeout (ready.timeout)
  std::optional<std::string> grace;          // --grace
  std::optional<std::string> stop_signal;    // --stop-signal
  std::optional<std::string> name;           // --name
  std::optional<std::string> control;        // --control (control.socket): a path or "none"
  std::optional<std::string> log_level;      // --log-level
  std::optional<std::string> log_file;       // --log-file
  std::optional<std::string> output;         // --output
  std::vector<std::string> sets;             // --set KEY=VALUE, in order
  std::vector<std::string> program;          // PROGRAM ARG...: replaces `command`
};

struct ConfigText {
  std::string path;  // as the operator gave it; used in diagnostics
  std::string text;
};

// What only the running system can tell about a value: build_config asks and reports each
// answer at the key's position, among every other problem. Each returns nullopt when the value
// is fine, else what is wrong (`expected an existing directory, found "/x"`). An empty function
// skips its check. host_checks.h has the real ones; tests pass fakes, so config stays pure.
struct HostChecks {
  // `directory` (when set): an existing directory.
  std::function<std::optional<std::string>(const std::string& directory)> directory;
  // PROGRAM or command[0] can be executed, found as a start finds it from `directory` ("": clusterd's
  // working directory). Asked only when `directory` is unset or passed its check.
  std::function<std::optional<std::string>(const std::string& program, const std::string& directory)> program;
  // `user` / `group` (when set): a known user, a known group.
  std::function<std::optional<std::string>(const std::string& user)> user;
  std::function<std::optional<std::string>(const std::string& group)> group;
  // `log.file` and `output.file` (when set): can be opened for appending without creating any
  // directory.
  std::function<std::optional<std::string>(const std::string& path, std::string_view key)> log_file;

  // The absolute directory relative paths are taken from: those on the command line and a
  // relative -c FILE itself. Without it (or when it returns ""), relative paths stay relative.
  std::function<std::string()> working_directory;
  // clusterd's effective uid, and the uid `user` names (nullopt: not known). For the warnings
  // about `group` without `user` as root, and about output = "inherit" to another user.
  std::function<unsigned()> effective_uid;
  std::function<std::optional<unsigned>(const std::string& user)> user_uid;
  // clusterd's stdout and stderr that are regular files, as "stderr (/var/log/x.log)": with
  // output = "inherit" a worker gets them open for writing.
  std::function<std::vector<std::string>()> regular_output_files;
};

// Parses and validates the file's text (if any) with the overrides applied on top, then asks
// `host` (nullptr: nothing) about what a start depends on. Relative paths in the file
// (`directory`, `log.file`, `unix:` listeners) are taken from the file's directory, those of the
// flags from host->working_directory, so that the Config holds absolute paths. Reports every
// problem, not just the first: the file's in position order, then the flags'
// (docs/configuration.md, "Diagnostics"). Pure unless `host` touches the system.
tl::expected<Config, Diagnostics> build_config(const std::optional<ConfigText>& file,
                                               const ConfigOverrides& overrides,
                                               const HostChecks* host = nullptr);

// Reads `path` (if given) and calls build_config; an unreadable file is a Diagnostic.
tl::expected<Config, Diagnostics> load_config(const std::optional<std::string>& path,
                                              const ConfigOverrides& overrides,
                                              const HostChecks* host = nullptr);

// The effective configuration as TOML that `-c` accepts (what `clusterd check` prints).
std::string to_toml(const Config& config);

// "TERM" / "SIGTERM" / "15" → SIGTERM; nullopt for anything else.
std::optional<int> parse_signal(std::string_view text);
// SIGTERM → "TERM"; an unknown number → its decimal form.
std::string signal_name(int signal);

}  // namespace clusterd
