// clusterd's own log: one synchronous spdlog logger on stderr or appended to log.file, with
// journald priority prefixes when stderr is the journal (interface §6).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "config.h"

namespace clusterd {

// Sets up the default spdlog logger. Synchronous on purpose: an async logger's thread would
// make fork() unsafe (protocols §3.1). `file` is opened by open_log_file (log_file.h): no
// symbolic link is followed and its directory must be trusted. Throws spdlog::spdlog_ex, with
// the reason, when `file` may not be opened.
void setup_logging(LogLevel level, const std::optional<std::string>& file);

// SIGUSR1: reopen log.file after logrotate moved it, as setup_logging opens it; does nothing
// when logging to stderr. When the reopen is refused, logs why (error) and keeps writing to the
// file it had: the log never stops, nor does clusterd.
void reopen_log_file();

spdlog::level::level_enum to_spdlog_level(LogLevel level);

}  // namespace clusterd
