// `user`/`group` → uid, gid, supplementary groups and the user's HOME/USER/LOGNAME.
#include "credentials.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "fd.h"
#include "test_support.h"

namespace clusterd {
namespace {

using ::testing::Contains;

struct Entry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// The machine's own idea of a user, so the tests hold wherever `nobody` has other ids.
std::optional<Entry> passwd_entry(const char* name) {
  const passwd* pw = ::getpwnam(name);
  if (pw == nullptr) {
    return std::nullopt;
  }
  return Entry{pw->pw_name, pw->pw_uid, pw->pw_gid, pw->pw_dir};
}

std::vector<gid_t> own_groups() {
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  return groups;
}

TEST(Credentials, NeitherKeyMeansNoChangeAndNoUserEnvironment) {
  const auto resolved = resolve_worker_user(std::nullopt, std::nullopt);
  ASSERT_TRUE(resolved);
  EXPECT_FALSE(resolved->credentials.has_value());
  EXPECT_FALSE(resolved->user_env.has_value());
}

TEST(Credentials, UnknownUserIsNamed) {
  EXPECT_EQ(resolve_worker_user(std::string("clusterd-no-such-user"), std::nullopt),
            tl::make_unexpected(std::string("unknown user \"clusterd-no-such-user\"")));
}

TEST(Credentials, UnknownGroupIsNamed) {
  EXPECT_EQ(resolve_worker_user(std::nullopt, std::string("clusterd-no-such-group")),
            tl::make_unexpected(std::string("unknown group \"clusterd-no-such-group\"")));
}

TEST(Credentials, NumericUidWithoutAPasswdEntryIsUnknown) {
  ASSERT_EQ(::getpwuid(54321), nullptr) << "uid 54321 exists here";
  EXPECT_EQ(resolve_worker_user(std::string("54321"), std::nullopt),
            tl::make_unexpected(std::string("unknown user \"54321\"")));
}

TEST(Credentials, UserGivesItsIdsGroupsAndHome) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  const auto nobody = passwd_entry("nobody");
  ASSERT_TRUE(nobody);
  const auto resolved = resolve_worker_user(std::string("nobody"), std::nullopt);
  ASSERT_TRUE(resolved) << resolved.error();
  ASSERT_TRUE(resolved->credentials.has_value());
  EXPECT_EQ(resolved->credentials->uid, nobody->uid);
  EXPECT_EQ(resolved->credentials->gid, nobody->gid);
  EXPECT_THAT(resolved->credentials->groups, Contains(nobody->gid));
  ASSERT_TRUE(resolved->user_env.has_value());
  EXPECT_EQ(resolved->user_env->name, "nobody");
  EXPECT_EQ(resolved->user_env->home, nobody->home);
}

TEST(Credentials, NumericUidIsTheSameUserAsItsName) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  const auto nobody = passwd_entry("nobody");
  ASSERT_TRUE(nobody);
  const auto by_name = resolve_worker_user(std::string("nobody"), std::nullopt);
  const auto by_id = resolve_worker_user(std::to_string(nobody->uid), std::nullopt);
  ASSERT_TRUE(by_name && by_id);
  EXPECT_EQ(by_id->credentials, by_name->credentials);
  ASSERT_TRUE(by_id->user_env.has_value());
  EXPECT_EQ(by_id->user_env->name, "nobody");
}

TEST(Credentials, GroupOverridesTheUsersPrimaryGroup) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  const group* daemon_group = ::getgrnam("daemon");
  ASSERT_NE(daemon_group, nullptr);
  const gid_t daemon_gid = daemon_group->gr_gid;
  const auto resolved = resolve_worker_user(std::string("nobody"), std::string("daemon"));
  ASSERT_TRUE(resolved) << resolved.error();
  ASSERT_TRUE(resolved->credentials.has_value());
  EXPECT_EQ(resolved->credentials->gid, daemon_gid);
  EXPECT_THAT(resolved->credentials->groups, Contains(daemon_gid));
}

TEST(Credentials, GroupAloneChangesOnlyTheGid) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  const group* nogroup = ::getgrnam("nogroup");
  if (nogroup == nullptr) {
    GTEST_SKIP() << "no group named nogroup";
  }
  const gid_t gid = nogroup->gr_gid;
  const auto resolved = resolve_worker_user(std::nullopt, std::string("nogroup"));
  ASSERT_TRUE(resolved) << resolved.error();
  ASSERT_TRUE(resolved->credentials.has_value());
  EXPECT_EQ(resolved->credentials->uid, ::getuid());
  EXPECT_EQ(resolved->credentials->gid, gid);
  EXPECT_EQ(resolved->credentials->groups, own_groups());
  EXPECT_FALSE(resolved->user_env.has_value());
}

TEST(Credentials, NumericGidNeedsNoGroupEntry) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  ASSERT_EQ(::getgrgid(54321), nullptr) << "gid 54321 exists here";
  const auto resolved = resolve_worker_user(std::nullopt, std::string("54321"));
  ASSERT_TRUE(resolved) << resolved.error();
  ASSERT_TRUE(resolved->credentials.has_value());
  EXPECT_EQ(resolved->credentials->gid, 54321u);
}

TEST(Credentials, ClusterdsOwnGroupNeedsNoChange) {
  const auto resolved = resolve_worker_user(std::nullopt, std::to_string(::getgid()));
  ASSERT_TRUE(resolved) << resolved.error();
  EXPECT_FALSE(resolved->credentials.has_value());
}

// Runs `body` in a child that has become `nobody`, and returns what it wrote.
template <typename Body>
std::string as_nobody(Body body) {
  const auto nobody = passwd_entry("nobody");
  if (!nobody) {
    ADD_FAILURE() << "no user nobody";
    return {};
  }
  int ends[2] = {-1, -1};
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2";
    return {};
  }
  Fd read_end(ends[0]);
  Fd write_end(ends[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const gid_t groups[] = {nobody->gid};
    if (::setgroups(1, groups) != 0 || ::setgid(nobody->gid) != 0 || ::setuid(nobody->uid) != 0) {
      ::_exit(2);
    }
    const std::string text = body();
    const ssize_t written = ::write(write_end.get(), text.data(), text.size());
    ::_exit(written == static_cast<ssize_t>(text.size()) ? 0 : 3);
  }
  write_end.reset();
  return testing_support::read_child_report(read_end, pid);
}

TEST(Credentials, ChangingIdsWithoutPrivilegeIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to become nobody";
  }
  const std::string text = as_nobody([] {
    const auto resolved = resolve_worker_user(std::string("root"), std::nullopt);
    return resolved ? std::string("resolved") : resolved.error();
  });
  EXPECT_EQ(text, "changing to user \"root\" needs root (or CAP_SETUID/CAP_SETGID)");
}

TEST(Credentials, ChangingOnlyTheGroupWithoutPrivilegeIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to become nobody";
  }
  const std::string text = as_nobody([] {
    const auto resolved = resolve_worker_user(std::nullopt, std::string("root"));
    return resolved ? std::string("resolved") : resolved.error();
  });
  EXPECT_EQ(text, "changing to group \"root\" needs root (or CAP_SETUID/CAP_SETGID)");
}

TEST(Credentials, NamingItsOwnUserNeedsNoPrivilege) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to become nobody";
  }
  const std::string text = as_nobody([] {
    const auto resolved = resolve_worker_user(std::string("nobody"), std::nullopt);
    if (!resolved) {
      return resolved.error();
    }
    return std::string(resolved->credentials ? "change" : "no change") + " " +
           (resolved->user_env ? resolved->user_env->name : "no env");
  });
  EXPECT_EQ(text, "no change nobody");
}

}  // namespace
}  // namespace clusterd
