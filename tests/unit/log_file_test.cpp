// log.file is opened without following a link and only in a trusted directory: the judgement of an
// existing file (pure), then open_log_file and check_log_file against a private temp directory.
#include "log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace clusterd {
namespace {

using ::testing::HasSubstr;

struct stat file_status(mode_t type, uid_t owner, nlink_t links) {
  struct stat status {};
  status.st_mode = type | 0644;
  status.st_uid = owner;
  status.st_nlink = links;
  return status;
}

TEST(UntrustedLogFile, AFileOfRootOrClusterdsUserWithOneLinkIsTrusted) {
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFREG, 0, 1), 0), std::nullopt);
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFREG, 1000, 1), 1000), std::nullopt);
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFREG, 0, 1), 1000), std::nullopt);
}

TEST(UntrustedLogFile, ASymbolicLinkIsNeverFollowed) {
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFLNK, 0, 1), 0),
            "/l/c.log is a symbolic link; clusterd does not follow one there, since whoever made it would "
            "choose the file clusterd appends to (remove it, and name the file itself in log.file)");
}

TEST(UntrustedLogFile, ASecondHardLinkIsRefused) {
  // What another user's `ln /etc/shadow /var/log/shop/c.log` leaves, where protected_hardlinks is off.
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFREG, 0, 2), 0),
            "/l/c.log has 2 hard links: another name may be a link that another user made to a file clusterd "
            "must not append to (remove /l/c.log and let clusterd create it)");
}

TEST(UntrustedLogFile, AnotherUsersFileIsRefused) {
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFREG, 65534, 1), 0),
            "/l/c.log is owned by uid 65534; clusterd appends only to a log file owned by root (chown root "
            "/l/c.log, or remove it and let clusterd create it)");
  EXPECT_THAT(*untrusted_log_file("/l/c.log", file_status(S_IFREG, 65534, 1), 1000),
              HasSubstr("owned by root or uid 1000 (clusterd's user)"));
}

TEST(UntrustedLogFile, NotARegularFileIsRefused) {
  EXPECT_EQ(untrusted_log_file("/l/c.log", file_status(S_IFIFO, 0, 1), 0), "/l/c.log is not a regular file");
}

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cd-logfile-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    victim_ = dir_ + "/victim";
    std::ofstream(victim_) << "precious\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string victim_text() const {
    std::ifstream in(victim_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string dir_;
  std::string victim_;
  const uid_t euid_ = ::geteuid();
};

TEST_F(LogFileTest, OpensAMissingFileByCreatingItForAppending) {
  const std::string path = dir_ + "/c.log";
  EXPECT_EQ(check_log_file(path, euid_), std::nullopt);
  EXPECT_FALSE(std::filesystem::exists(path));  // the check creates nothing
  auto file = open_log_file(path, euid_);
  ASSERT_TRUE(file) << file.error();
  ASSERT_EQ(::write(file->get(), "a\n", 2), 2);
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_TRUE(S_ISREG(status.st_mode));
  EXPECT_EQ(status.st_mode & 0022, 0U);  // no one else may write it, whatever the umask
  EXPECT_EQ(check_log_file(path, euid_), std::nullopt);
  // Appends: a second open writes after what is there.
  auto again = open_log_file(path, euid_);
  ASSERT_TRUE(again) << again.error();
  ASSERT_EQ(::write(again->get(), "b\n", 2), 2);
  EXPECT_EQ(std::filesystem::file_size(path), 4U);
}

TEST_F(LogFileTest, ASymbolicLinkAtTheNameIsNotFollowed) {
  const std::string path = dir_ + "/c.log";
  ASSERT_EQ(::symlink(victim_.c_str(), path.c_str()), 0);
  const std::string why = "cannot open \"" + path + "\" for appending: " + path +
                          " is a symbolic link; clusterd does not follow one there, since whoever made it "
                          "would choose the file clusterd appends to (remove it, and name the file itself in "
                          "log.file)";
  EXPECT_EQ(check_log_file(path, euid_), why);
  auto file = open_log_file(path, euid_);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error(), why);
  EXPECT_EQ(victim_text(), "precious\n");
}

TEST_F(LogFileTest, ADanglingSymbolicLinkCreatesNothingWhereItPoints) {
  const std::string path = dir_ + "/c.log";
  const std::string nowhere = dir_ + "/created-by-link";
  ASSERT_EQ(::symlink(nowhere.c_str(), path.c_str()), 0);
  EXPECT_THAT(*check_log_file(path, euid_), HasSubstr("is a symbolic link"));
  EXPECT_FALSE(open_log_file(path, euid_));
  EXPECT_FALSE(std::filesystem::exists(nowhere));
}

TEST_F(LogFileTest, AHardLinkToAnotherFileIsRefused) {
  // The kernel's protected_hardlinks stops another user from making this link to a file they
  // cannot write; where it is off, the link count is what shows it.
  const std::string path = dir_ + "/c.log";
  ASSERT_EQ(::link(victim_.c_str(), path.c_str()), 0);
  const std::string why = "cannot open \"" + path + "\" for appending: " + path +
                          " has 2 hard links: another name may be a link that another user made to a file "
                          "clusterd must not append to (remove " + path + " and let clusterd create it)";
  EXPECT_EQ(check_log_file(path, euid_), why);
  auto file = open_log_file(path, euid_);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error(), why);
  EXPECT_EQ(victim_text(), "precious\n");
}

TEST_F(LogFileTest, ADirectoryOthersMayWriteIsRefused) {
  const std::string path = dir_ + "/c.log";
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  const std::string why = "cannot open \"" + path + "\" for appending: log.file directory " + dir_ + ": " +
                          dir_ + " (mode 0777) is writable by its group and by others, who could swap a file in "
                          "it for a link to another (chmod go-w " + dir_ + ")";
  EXPECT_EQ(check_log_file(path, euid_), why);
  auto file = open_log_file(path, euid_);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error(), why);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(LogFileTest, PlainErrorsKeepTheirErrnoWording) {
  EXPECT_EQ(check_log_file(dir_ + "/logs/c.log", euid_),
            "cannot open \"" + dir_ + "/logs/c.log\" for appending: No such file or directory (clusterd creates "
            "no directories)");
  EXPECT_EQ(check_log_file(victim_ + "/c.log", euid_),
            "cannot open \"" + victim_ + "/c.log\" for appending: Not a directory");
  EXPECT_EQ(check_log_file(dir_, euid_), "cannot open \"" + dir_ + "\" for appending: Is a directory");
}

TEST_F(LogFileTest, AFifoIsRefusedWithoutBlocking) {
  const std::string path = dir_ + "/c.log";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_THAT(*check_log_file(path, euid_), HasSubstr(path + " is not a regular file"));
  // With no reader, open(O_WRONLY | O_NONBLOCK) fails at once (ENXIO) instead of waiting.
  EXPECT_FALSE(open_log_file(path, euid_));
}

}  // namespace
}  // namespace clusterd
