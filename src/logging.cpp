// spdlog setup: sink choice, line pattern (journald prefixes or timestamps), log.file reopening.
#include "logging.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <spdlog/details/null_mutex.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "fd.h"
#include "log_file.h"

namespace clusterd {
namespace {

std::optional<std::string> log_file_path;

// Appends each formatted line to a file that open_log_file opened. spdlog's own file sink opens
// by path, following any symbolic link at the name and creating missing directories; this one
// writes to the fd that was judged, so what was checked is what is written.
class LogFileSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit LogFileSink(Fd file) : file_(std::move(file)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t line;
    formatter_->format(message, line);
    // O_APPEND puts each write at the end. A failed write (a full disk) loses that line only:
    // a supervisor must not stop over its own log, and it has nowhere better to say so.
    const char* data = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t written = retry_on_eintr([&] { return ::write(file_.get(), data, left); });
      if (written <= 0) {
        return;
      }
      data += written;
      left -= static_cast<std::size_t>(written);
    }
  }
  void flush_() override {}  // every line is written through at once; nothing is buffered

 private:
  Fd file_;
};

// The sink for log.file, opened safely (log_file.h) as clusterd's effective uid; throws
// spdlog::spdlog_ex with the reason when it may not be opened.
spdlog::sink_ptr open_file_sink(const std::string& path) {
  auto file = open_log_file(path, ::geteuid());
  if (!file) {
    throw spdlog::spdlog_ex(file.error());
  }
  return std::make_shared<LogFileSink>(std::move(*file));
}

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

// The level as log.level and --log-level spell it ("warn", where spdlog's %l writes "warning"), so
// a line's level is the word an operator sets and greps for.
class LevelNameFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view name = "info";
    switch (message.level) {
      case spdlog::level::trace: name = "trace"; break;
      case spdlog::level::debug: name = "debug"; break;
      case spdlog::level::warn: name = "warn"; break;
      case spdlog::level::err: name = "error"; break;
      case spdlog::level::critical: name = "critical"; break;
      default: break;
    }
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<LevelNameFlag>(); }
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
    formatter->add_flag<LevelNameFlag>('&').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%&%$ clusterd[%P]: %v");
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
    sink = open_file_sink(*file);
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
  // A reopen that is refused (the name is now a link, the directory became writable by others)
  // keeps the old file: clusterd goes on logging and serving, and says why on every SIGUSR1.
  auto file = open_log_file(*log_file_path, ::geteuid());
  if (!file) {
    logger->error("cannot reopen log file path={} error=\"{}\"; still writing to the old file",
                  *log_file_path, file.error());
    return;
  }
  auto sink = std::make_shared<LogFileSink>(std::move(*file));
  sink->set_formatter(make_formatter(false));
  logger->sinks() = {sink};
  logger->info("log file reopened path={}", *log_file_path);
}

}  // namespace clusterd
