// The system's answers to build_config's host questions: directories, programs, users, groups and
// the log file, checked against a private temp directory; nothing may be created by asking.
#include "host_checks.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace clusterd {
namespace {

using ::testing::HasSubstr;

class HostChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cd-host-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write_file("prog", 0755);
    write_file("data", 0644);
    std::filesystem::create_directory(dir_ + "/sub");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write_file(const std::string& name, mode_t mode) {
    std::ofstream(dir_ + "/" + name) << "#!/bin/sh\n";
    ::chmod((dir_ + "/" + name).c_str(), mode);
  }

  std::string dir_;
  HostChecks checks_ = system_host_checks();
};

TEST_F(HostChecksTest, DirectoryMustExistAndBeADirectory) {
  EXPECT_EQ(checks_.directory(dir_), std::nullopt);
  EXPECT_EQ(checks_.directory(dir_ + "/nowhere"),
            "expected an existing directory, found \"" + dir_ + "/nowhere\"");
  EXPECT_EQ(checks_.directory(dir_ + "/data"),
            "expected an existing directory, found \"" + dir_ + "/data\" (not a directory)");
  EXPECT_EQ(checks_.directory(dir_ + "/data/x"),
            "expected an existing directory, found \"" + dir_ + "/data/x\" (Not a directory)");
}

TEST_F(HostChecksTest, ProgramIsFoundFromTheDirectory) {
  EXPECT_EQ(checks_.program("./prog", dir_), std::nullopt);
  EXPECT_EQ(checks_.program(dir_ + "/prog", "/"), std::nullopt);
  EXPECT_EQ(checks_.program("./prog", dir_ + "/sub"), "cannot execute \"./prog\": No such file or directory");
}

// Sets PATH for one test and puts the old value back: the answer depends on every PATH entry (an
// unreadable one turns "not found" into "Permission denied", as for execvp).
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& value) {
    if (const char* old = std::getenv("PATH")) {
      old_ = old;
    }
    ::setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() {
    if (old_) {
      ::setenv("PATH", old_->c_str(), 1);
    } else {
      ::unsetenv("PATH");
    }
  }

 private:
  std::optional<std::string> old_;
};

TEST_F(HostChecksTest, ProgramNotInPathSaysPathWasSearched) {
  const ScopedPath path("/nonexistent:" + dir_);
  EXPECT_EQ(checks_.program("clusterd-no-such-program", dir_),
            "cannot execute \"clusterd-no-such-program\": No such file or directory (searched PATH)");
  EXPECT_EQ(checks_.program("prog", "/"), std::nullopt);
}

TEST_F(HostChecksTest, ProgramThatIsADirectorySaysSo) {
  EXPECT_EQ(checks_.program("./sub", dir_), "cannot execute \"./sub\": is a directory");
  EXPECT_EQ(checks_.program(dir_ + "/sub", ""), "cannot execute \"" + dir_ + "/sub\": is a directory");
}

TEST_F(HostChecksTest, ProgramWithoutExecutePermission) {
  EXPECT_EQ(checks_.program("./data", dir_), "cannot execute \"./data\": Permission denied");
}

TEST_F(HostChecksTest, FindProgramGivesTheAbsolutePath) {
  EXPECT_EQ(find_program("./prog", dir_), dir_ + "/prog");
  EXPECT_EQ(find_program("./nope", dir_),
            tl::make_unexpected(std::string("cannot execute \"./nope\": No such file or directory")));
}

TEST_F(HostChecksTest, UsersAndGroupsMustBeKnown) {
  EXPECT_EQ(checks_.user("root"), std::nullopt);
  EXPECT_EQ(checks_.user("0"), std::nullopt);
  EXPECT_EQ(checks_.user("clusterd-no-such-user"), "unknown user \"clusterd-no-such-user\"");
  EXPECT_EQ(checks_.group("root"), std::nullopt);
  EXPECT_EQ(checks_.group("54321"), std::nullopt);  // a numeric gid needs no entry
  EXPECT_EQ(checks_.group("clusterd-no-such-group"), "unknown group \"clusterd-no-such-group\"");
}

TEST_F(HostChecksTest, LogFileThatExistsOrCanBeCreatedIsFineAndNothingIsCreated) {
  EXPECT_EQ(checks_.log_file(dir_ + "/data", "log.file"), std::nullopt);
  EXPECT_EQ(checks_.log_file(dir_ + "/new.log", "log.file"), std::nullopt);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/new.log"));
}

TEST_F(HostChecksTest, LogFileInAMissingDirectoryCreatesNoDirectory) {
  EXPECT_EQ(checks_.log_file(dir_ + "/logs/c.log", "log.file"),
            "cannot open \"" + dir_ +
                "/logs/c.log\" for appending: No such file or directory (clusterd creates no directories)");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/logs"));
}

TEST_F(HostChecksTest, LogFileUnderAFileOrThatIsADirectory) {
  EXPECT_EQ(checks_.log_file(dir_ + "/data/c.log", "log.file"),
            "cannot open \"" + dir_ + "/data/c.log\" for appending: Not a directory");
  EXPECT_EQ(checks_.log_file(dir_ + "/sub", "log.file"),
            "cannot open \"" + dir_ + "/sub\" for appending: Is a directory");
}

// log_file(path) as answered by a process without root's privileges: uid and gid 65534 (nobody)
// when the test runs as root, which may write anything; the test's own uid otherwise.
std::string log_file_answer_unprivileged(const HostChecks& checks, const std::string& path) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    return "pipe failed";
  }
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      ::_exit(3);
    }
    const std::string answer = checks.log_file(path, "log.file").value_or("no problem");
    const bool written = ::write(pipe_fds[1], answer.data(), answer.size()) == static_cast<ssize_t>(answer.size());
    ::_exit(written ? 0 : 4);
  }
  ::close(pipe_fds[1]);
  std::string answer;
  char buffer[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) {
    answer.append(buffer, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? answer : "child failed: " + std::to_string(status);
}

TEST_F(HostChecksTest, LogFileThatCannotBeWritten) {
  ::chmod(dir_.c_str(), 0755);  // nobody may reach the files, not write them
  ::chmod((dir_ + "/data").c_str(), 0444);
  ::chmod((dir_ + "/sub").c_str(), 0555);
  EXPECT_EQ(log_file_answer_unprivileged(checks_, dir_ + "/data"),
            "cannot open \"" + dir_ + "/data\" for appending: Permission denied");
  EXPECT_EQ(log_file_answer_unprivileged(checks_, dir_ + "/sub/c.log"),
            "cannot open \"" + dir_ + "/sub/c.log\" for appending: Permission denied");
}

}  // namespace
}  // namespace clusterd
