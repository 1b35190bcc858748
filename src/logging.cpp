// spdlog setup: sink choice, line pattern (journald prefixes or timestamps), log.file reopening.
#include "logging.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace clusterd {
namespace {

std::optional<std::string> log_file_path;

// "<3>" … "<7>": sd-daemon(3) priority prefixes that journald reads off each stderr line.
class JournalPriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& dest) override {
    int priority = 6;
    switch (message.level) {
      case spdlog::level::critical: priority = 2; break;
      case spdlog::level::err: priority = 3; break;
      case spdlog::level::warn: priority = 4; break;
      case spdlog::level::info: priority = 6; break;
      default: priority = 7; break;
    }
    const char text[] = {'<', static_cast<char>('0' + priority), '>'};
    dest.append(text, text + sizeof text);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriorityFlag>();
  }
};

// JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it only counts when stderr is
// still that stream (systemd.exec(5)), not when a wrapper redirected it.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) {
    return false;
  }
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
    return false;
  }
  struct stat info {};
  if (::fstat(STDERR_FILENO, &info) != 0) {
    return false;
  }
  return info.st_dev == device && info.st_ino == inode;
}

std::unique_ptr<spdlog::formatter> make_formatter(bool journal) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (journal) {
    formatter->add_flag<JournalPriorityFlag>('*').set_pattern("%*%v");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ clusterd[%P]: %v");
  }
  return formatter;
}

}  // namespace

spdlog::level::level_enum to_spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::trace: return spdlog::level::trace;
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

void setup_logging(LogLevel level, const std::optional<std::string>& file) {
  spdlog::sink_ptr sink;
  bool journal = false;
  if (file) {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_st>(*file, /*truncate=*/false);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    journal = stderr_is_journal();
  }
  sink->set_formatter(make_formatter(journal));
  auto logger = std::make_shared<spdlog::logger>("clusterd", sink);
  logger->set_level(to_spdlog_level(level));
  // Every line is flushed: a supervisor's log is read while it runs, and after a SIGKILL.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  log_file_path = file;
}

void reopen_log_file() {
  if (!log_file_path) {
    return;
  }
  auto logger = spdlog::default_logger();
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_st>(*log_file_path, false);
    sink->set_formatter(make_formatter(false));
    logger->sinks() = {sink};
    logger->info("log file reopened path={}", *log_file_path);
  } catch (const spdlog::spdlog_ex& error) {
    logger->error("cannot reopen log file path={} error=\"{}\"; still writing to the old file",
                  *log_file_path, error.what());
  }
}

}  // namespace clusterd
