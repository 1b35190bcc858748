// The config file is read only when no user but root and clusterd's own could have changed it:
// load_config's diagnostics for a file, a directory or a link that another user could change, in
// private temp directories (owned by the test's user, which is clusterd's euid here).
#include "config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace clusterd {
namespace {

constexpr std::string_view valid_config = "command = [\"/bin/true\"]\nworkers = 1\n";

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cd-cfgfile-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, mode_t mode, std::string_view text = valid_config) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  // The one diagnostic of loading `path`, as printed; "" when it loads.
  static std::string load_error(const std::string& path) {
    const auto config = load_config(path, {});
    if (config) {
      return "";
    }
    EXPECT_EQ(config.error().size(), 1U);
    return config.error().front().to_string();
  }

  std::string dir_;
};

TEST_F(ConfigFileTest, AFileOnlyItsOwnerMayWriteIsRead) {
  const std::string path = write("c.toml", 0644);
  const auto config = load_config(path, {});
  ASSERT_TRUE(config) << config.error().front().to_string();
  EXPECT_EQ(config->workers, 1);
  EXPECT_EQ(config->file, path);
}

TEST_F(ConfigFileTest, AFileOthersMayWriteIsRefusedWithTheChmodThatMendsIt) {
  const std::string path = write("c.toml", 0666);
  EXPECT_EQ(load_error(path), path + ": config file refused: " + path +
                                  " (mode 0666) is writable by its group and by others, who could change it "
                                  "(chmod go-w " + path + ")");
}

TEST_F(ConfigFileTest, AFileItsGroupMayWriteIsRefused) {
  const std::string path = write("c.toml", 0620);
  EXPECT_EQ(load_error(path), path + ": config file refused: " + path +
                                  " (mode 0620) is writable by its group, who could change it (chmod go-w " +
                                  path + ")");
}

TEST_F(ConfigFileTest, ADirectoryOthersMayWriteIsRefusedEvenForAGoodFile) {
  const std::string path = write("c.toml", 0644);
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  EXPECT_EQ(load_error(path), path + ": config file refused: config file directory " + dir_ + ": " + dir_ +
                                  " (mode 0777) is writable by its group and by others, who could swap a file "
                                  "in it for a link to another (chmod go-w " + dir_ + ")");
}

TEST_F(ConfigFileTest, AStickyWorldWritableDirectoryMayNotHoldIt) {
  const std::string path = write("c.toml", 0644);
  ASSERT_EQ(::chmod(dir_.c_str(), 01777), 0);
  EXPECT_THAT(load_error(path), ::testing::StartsWith(path + ": config file refused: config file directory " +
                                                      dir_ + ": " + dir_ + " (mode 1777) may be written by"));
}

TEST_F(ConfigFileTest, ASymbolicLinkIsFollowedAndWhereItLeadsIsJudged) {
  const std::string target = write("real.toml", 0644);
  const std::string link = dir_ + "/c.toml";
  ASSERT_EQ(::symlink("real.toml", link.c_str()), 0);
  EXPECT_EQ(load_error(link), "");
  ASSERT_EQ(::chmod(target.c_str(), 0646), 0);
  EXPECT_EQ(load_error(link), link + ": config file refused: " + target +
                                  " (mode 0646) is writable by others, who could change it (chmod go-w " +
                                  target + ")");
}

TEST_F(ConfigFileTest, ALinkIntoADirectoryOthersMayWriteIsRefused) {
  ASSERT_EQ(::mkdir((dir_ + "/open").c_str(), 0755), 0);
  const std::string target = write("open/real.toml", 0644);
  ASSERT_EQ(::chmod((dir_ + "/open").c_str(), 0757), 0);
  const std::string link = dir_ + "/c.toml";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_THAT(load_error(link),
              ::testing::StartsWith(link + ": config file refused: config file directory " + dir_ +
                                    "/open: " + dir_ + "/open (mode 0757) is writable by others"));
}

TEST_F(ConfigFileTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  const std::string path = dir_ + "/c.toml";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(load_error(path), path + ": config file refused: " + path + " is not a regular file");
}

TEST_F(ConfigFileTest, AMissingFileKeepsItsPlainMessage) {
  EXPECT_EQ(load_error(dir_ + "/none.toml"), dir_ + "/none.toml: cannot read config file: No such file or directory");
  EXPECT_EQ(load_error(dir_), dir_ + ": cannot read config file: Is a directory");
}

}  // namespace
}  // namespace clusterd
