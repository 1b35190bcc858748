// Small fixtures the OS-facing unit tests share: a private temp dir, environment overrides, a child's report.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "fd.h"

namespace clusterd::testing_support {

// A fresh directory under /tmp, removed with its contents on destruction. Short, private path:
// sun_path holds 107 bytes (style §8).
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/cd-ut-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Sets (or, with nullopt, unsets) environment variables for one test and restores them.
class EnvGuard {
 public:
  EnvGuard(std::initializer_list<std::pair<const char*, std::optional<std::string>>> values) {
    for (const auto& [name, value] : values) {
      const char* old = std::getenv(name);
      saved_[name] = old == nullptr ? std::nullopt : std::optional<std::string>(old);
      if (value) {
        ::setenv(name, value->c_str(), 1);
      } else {
        ::unsetenv(name);
      }
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// Reads what forked child `pid` writes to `read_end` until it closes its end, then reaps it and
// expects exit status 0. A child silent for 10 s is a failure and is SIGKILLed, so a broken test
// fails instead of hanging in waitpid.
inline std::string read_child_report(const Fd& read_end, pid_t pid) {
  std::string report;
  char buffer[1024];
  for (;;) {
    pollfd entry{read_end.get(), POLLIN, 0};
    if (::poll(&entry, 1, 10'000) <= 0) {
      ADD_FAILURE() << "the child reported nothing in time";
      ::kill(pid, SIGKILL);
      break;
    }
    const ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
    if (got <= 0) {
      break;
    }
    report.append(buffer, static_cast<std::size_t>(got));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return report;
}

}  // namespace clusterd::testing_support
