// Which directories and files another user could change, and that opening a directory follows
// no link such a user could have planted.
#include "trusted_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_support.h"

namespace clusterd {
namespace {

using testing_support::TempDir;
using ::testing::HasSubstr;

struct stat directory(uid_t owner, mode_t mode) {
  struct stat status {};
  status.st_mode = S_IFDIR | mode;
  status.st_uid = owner;
  return status;
}

struct stat regular_file(uid_t owner, mode_t mode) {
  struct stat status {};
  status.st_mode = S_IFREG | mode;
  status.st_uid = owner;
  return status;
}

constexpr uid_t root = 0;
constexpr uid_t nobody = 65534;
constexpr uid_t app = 1000;

TEST(TrustedPathTest, RootsOwnClosedDirectoryIsTrustedWhereverItIs) {
  for (auto role : {DirectoryRole::on_the_way, DirectoryRole::holds_the_file}) {
    EXPECT_EQ(untrusted_directory("/etc", directory(root, 0755), root, role), std::nullopt);
    EXPECT_EQ(untrusted_directory("/srv/app", directory(app, 0700), app, role), std::nullopt);
    EXPECT_EQ(untrusted_directory("/etc", directory(root, 0755), app, role), std::nullopt);
  }
}

TEST(TrustedPathTest, DirectoryOfAnotherUserIsRefusedWithTheChownThatFixesIt) {
  EXPECT_EQ(untrusted_directory("/run/app", directory(nobody, 0755), root, DirectoryRole::holds_the_file),
            "/run/app is owned by uid 65534, who could swap a file in it for a link to another; only root may "
            "own it (chown root /run/app)");
  // A non-root clusterd trusts its own directories, and root's, and nobody else's.
  EXPECT_EQ(untrusted_directory("/home/bob", directory(1001, 0755), app, DirectoryRole::on_the_way),
            "/home/bob is owned by uid 1001, who could swap a file in it for a link to another; only root or "
            "uid 1000 (clusterd's user) may own it (chown root /home/bob)");
}

TEST(TrustedPathTest, DirectoryOthersMayWriteIsRefusedWithTheChmodThatFixesIt) {
  EXPECT_EQ(untrusted_directory("/run/app", directory(root, 0777), root, DirectoryRole::holds_the_file),
            "/run/app (mode 0777) is writable by its group and by others, who could swap a file in it for a "
            "link to another (chmod go-w /run/app)");
  EXPECT_EQ(untrusted_directory("/srv", directory(root, 0775), root, DirectoryRole::on_the_way),
            "/srv (mode 0775) is writable by its group, who could swap a file in it for a link to another "
            "(chmod go-w /srv)");
  EXPECT_EQ(untrusted_directory("/srv", directory(root, 0757), root, DirectoryRole::on_the_way),
            "/srv (mode 0757) is writable by others, who could swap a file in it for a link to another "
            "(chmod go-w /srv)");
}

TEST(TrustedPathTest, StickyWorldWritableDirectoryMayBeOnTheWayButNotHoldTheFile) {
  EXPECT_EQ(untrusted_directory("/tmp", directory(root, 01777), root, DirectoryRole::on_the_way), std::nullopt);
  EXPECT_EQ(untrusted_directory("/tmp", directory(root, 01777), root, DirectoryRole::holds_the_file),
            "/tmp (mode 1777) may be written by its group and by others, who could create the file's name "
            "there first; use a directory that only root can write");
  // The sticky bit protects names from others, not from the directory's owner.
  EXPECT_NE(untrusted_directory("/tmp/x", directory(nobody, 01777), root, DirectoryRole::on_the_way),
            std::nullopt);
}

TEST(TrustedPathTest, ConfigurationFileMustBeRegularOwnedAndClosed) {
  EXPECT_EQ(untrusted_file("/etc/c.toml", regular_file(root, 0644), root), std::nullopt);
  EXPECT_EQ(untrusted_file("/etc/c.toml", regular_file(root, 0666), root),
            "/etc/c.toml (mode 0666) is writable by its group and by others, who could change it "
            "(chmod go-w /etc/c.toml)");
  EXPECT_EQ(untrusted_file("/etc/c.toml", regular_file(nobody, 0600), root),
            "/etc/c.toml is owned by uid 65534, who could change it; only root may own it "
            "(chown root /etc/c.toml)");
  EXPECT_EQ(untrusted_file("/etc/c.toml", directory(root, 0755), root), "/etc/c.toml is not a regular file");
}

TEST(TrustedPathTest, SplitsDirectoryAndName) {
  EXPECT_EQ(split_directory("/a/b/c"), std::make_pair(std::string("/a/b"), std::string("c")));
  EXPECT_EQ(split_directory("/c"), std::make_pair(std::string("/"), std::string("c")));
  EXPECT_EQ(split_directory("c"), std::make_pair(std::string("."), std::string("c")));
}

TEST(TrustedPathTest, OpensAClosedDirectoryUnderTmp) {
  TempDir dir;  // 0700, ours, under the sticky /tmp
  const auto opened = open_trusted_directory(dir.path() + "/", ::geteuid(), "log.file directory");
  ASSERT_TRUE(opened.has_value()) << opened.error();
  struct stat by_fd {};
  struct stat by_path {};
  ASSERT_EQ(::fstat(opened->get(), &by_fd), 0);
  ASSERT_EQ(::stat(dir.path().c_str(), &by_path), 0);
  EXPECT_EQ(by_fd.st_ino, by_path.st_ino);
}

TEST(TrustedPathTest, RefusesADirectoryOthersCanWriteAnywhereOnThePath) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("open").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(dir.file("open/inner").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.file("open").c_str(), 0777), 0);  // past the umask
  const auto below = open_trusted_directory(dir.file("open/inner"), ::geteuid(), "socket directory");
  ASSERT_FALSE(below.has_value());
  EXPECT_EQ(below.error(), "socket directory " + dir.file("open/inner") + ": " + dir.file("open") +
                               " (mode 0777) is writable by its group and by others, who could swap a file in "
                               "it for a link to another (chmod go-w " + dir.file("open") + ")");
  // /tmp itself holding the file: anyone could have made the name first.
  const auto tmp = open_trusted_directory("/tmp", ::geteuid(), "log.file directory");
  ASSERT_FALSE(tmp.has_value());
  EXPECT_THAT(tmp.error(), HasSubstr("who could create the file's name there first"));
}

TEST(TrustedPathTest, FollowsALinkItsOwnerMadeAndChecksWhereItLeads) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("real").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("real", dir.file("link").c_str()), 0);
  const auto through_link = open_trusted_directory(dir.file("link"), ::geteuid(), "directory");
  ASSERT_TRUE(through_link.has_value()) << through_link.error();
  struct stat by_fd {};
  struct stat real {};
  ASSERT_EQ(::fstat(through_link->get(), &by_fd), 0);
  ASSERT_EQ(::stat(dir.file("real").c_str(), &real), 0);
  EXPECT_EQ(by_fd.st_ino, real.st_ino);

  // A link to a directory others can write is judged by its target.
  ASSERT_EQ(::mkdir(dir.file("open").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.file("open").c_str(), 0777), 0);
  ASSERT_EQ(::symlink(dir.file("open").c_str(), dir.file("to-open").c_str()), 0);
  const auto to_open = open_trusted_directory(dir.file("to-open"), ::geteuid(), "directory");
  ASSERT_FALSE(to_open.has_value());
  EXPECT_THAT(to_open.error(), HasSubstr(dir.file("open") + " (mode 0777) is writable"));
}

TEST(TrustedPathTest, DotDotLeavesTheDirectoryALinkLedTo) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("a").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir.file("a/b").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("a/b", dir.file("l").c_str()), 0);
  const auto parent = open_trusted_directory(dir.file("l/.."), ::geteuid(), "directory");  // a, as the kernel sees it
  ASSERT_TRUE(parent.has_value()) << parent.error();
  struct stat by_fd {};
  struct stat a {};
  ASSERT_EQ(::fstat(parent->get(), &by_fd), 0);
  ASSERT_EQ(::stat(dir.file("a").c_str(), &a), 0);
  EXPECT_EQ(by_fd.st_ino, a.st_ino);
}

TEST(TrustedPathTest, NamesWhatIsMissing) {
  TempDir dir;
  const auto missing = open_trusted_directory(dir.file("none"), ::geteuid(), "log.file directory");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), "log.file directory " + dir.file("none") + ": cannot open " + dir.file("none") +
                                 ": No such file or directory");
}

}  // namespace
}  // namespace clusterd
