// A worker's argv, environment and fd order, computed in the parent.
#include "spawn_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

namespace clusterd {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;
using ::testing::StartsWith;

Config test_config() {
  Config config;
  config.command = {"./server", "--fd", "{fd:http}"};
  config.directory = "/srv/shop";
  return config;
}

const std::vector<ListenerFd> two_listeners = {{"http", 10}, {"admin", 11}};
const WorkerIdentity identity{.slot = 3, .workers = 8, .generation = 2};

// Every entry of `env` whose name is `name`.
std::vector<std::string> entries_named(const std::vector<std::string>& env, const std::string& name) {
  std::vector<std::string> found;
  std::copy_if(env.begin(), env.end(), std::back_inserter(found),
               [&](const std::string& entry) { return entry.starts_with(name + "="); });
  return found;
}

TEST(SpawnPlan, SystemdVariablesOfClusterdAreRemoved) {
  for (const char* name : {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
                           "WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "MAINPID", "MANAGERPID"}) {
    EXPECT_TRUE(is_removed_variable(name)) << name;
    EXPECT_TRUE(is_reserved_variable(name)) << name;
  }
  EXPECT_FALSE(is_removed_variable("PATH"));
  EXPECT_FALSE(is_removed_variable("LISTEN"));
  EXPECT_FALSE(is_removed_variable("JOURNAL_STREAM"));
}

TEST(SpawnPlan, ClusterdPrefixIsReservedButNotRemoved) {
  EXPECT_TRUE(is_reserved_variable("CLUSTERD_WORKER_ID"));
  EXPECT_TRUE(is_reserved_variable("CLUSTERD_ANYTHING"));
  EXPECT_FALSE(is_removed_variable("CLUSTERD_ANYTHING"));
  EXPECT_FALSE(is_reserved_variable("CLUSTERD"));
  EXPECT_FALSE(is_reserved_variable("APP_ENV"));
}

TEST(SpawnPlan, FdPlaceholderBecomesThreePlusTheListenersPosition) {
  EXPECT_EQ(expand_argument("{fd:http}", {"http", "admin"}, 0), "3");
  EXPECT_EQ(expand_argument("--admin-fd={fd:admin}", {"http", "admin"}, 0), "--admin-fd=4");
}

TEST(SpawnPlan, WorkerIdPlaceholderBecomesTheSlot) {
  EXPECT_EQ(expand_argument("--id={worker_id}/{worker_id}", {}, 7), "--id=7/7");
}

TEST(SpawnPlan, DoubleOpeningBraceIsALiteralBrace) {
  EXPECT_EQ(expand_argument("{{fd:http}", {"http"}, 0), "{fd:http}");
  EXPECT_EQ(expand_argument("{{{worker_id}", {}, 5), "{5");
}

TEST(SpawnPlan, LoneClosingBraceIsLiteral) {
  EXPECT_EQ(expand_argument("a}b}}", {}, 0), "a}b}}");
  EXPECT_EQ(expand_argument("plain", {}, 0), "plain");
}

TEST(SpawnPlan, UnknownPlaceholderIsAnErrorNamingIt) {
  EXPECT_EQ(expand_argument("--port={port}", {"http"}, 0), tl::make_unexpected(std::string("unknown placeholder \"{port}\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {")));
  EXPECT_EQ(expand_argument("{}", {}, 0), tl::make_unexpected(std::string("unknown placeholder \"{}\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {")));
}

TEST(SpawnPlan, FdPlaceholderOfAnUnknownListenerIsAnError) {
  EXPECT_EQ(expand_argument("{fd:nope}", {"http"}, 0),
            tl::make_unexpected(std::string("unknown placeholder \"{fd:nope}\": no listener is named \"nope\" "
                                            "(listeners: \"http\"); use one of those names, or set name = "
                                            "\"nope\" in its [[listen]]")));
  EXPECT_EQ(expand_argument("{fd:nope}", {}, 0),
            tl::make_unexpected(std::string("unknown placeholder \"{fd:nope}\": no listener is configured; add a "
                                            "[[listen]] with name = \"nope\" (or --listen nope=ADDRESS)")));
}

TEST(SpawnPlan, UnterminatedPlaceholderIsAnErrorShowingTheRest) {
  EXPECT_EQ(expand_argument("x{worker_id", {}, 0),
            tl::make_unexpected(std::string("unknown placeholder \"{worker_id\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {")));
}

TEST(SpawnPlan, JournalStreamIsPassedOnOnlyWhileStderrIsClusterdsOwn) {
  const std::vector<std::string> parent = {"PATH=/usr/bin", "JOURNAL_STREAM=8:1234"};
  Config config = test_config();
  EXPECT_THAT(make_spawn_plan(config, "/srv/shop/server", {}, identity, parent, std::nullopt).env,
              Contains("JOURNAL_STREAM=8:1234"));
  config.output.mode = OutputMode::prefix;
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", {}, identity, parent, std::nullopt);
  EXPECT_THAT(plan.env, Not(Contains(StartsWith("JOURNAL_STREAM="))));
  EXPECT_THAT(plan.env, Contains("PATH=/usr/bin"));
}

TEST(SpawnPlan, ParentEnvironmentIsKeptWithoutSystemdVariables) {
  const std::vector<std::string> parent = {"PATH=/usr/bin", "NOTIFY_SOCKET=/run/systemd/notify",
                                           "LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b",
                                           "LISTEN_PIDFDID=99", "WATCHDOG_USEC=1000", "WATCHDOG_PID=1",
                                           "SYSTEMD_EXEC_PID=1", "MAINPID=1", "MANAGERPID=1", "LANG=C.UTF-8"};
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity, parent, std::nullopt);
  EXPECT_THAT(plan.env, Contains("PATH=/usr/bin"));
  EXPECT_THAT(plan.env, Contains("LANG=C.UTF-8"));
  for (const char* name : {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
                           "WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "MAINPID", "MANAGERPID"}) {
    EXPECT_THAT(plan.env, Not(Contains(StartsWith(std::string(name) + "=")))) << name;
  }
}

TEST(SpawnPlan, ListenersGiveCountNamesAndFdsInOrder) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", two_listeners, identity, {}, std::nullopt);
  EXPECT_THAT(entries_named(plan.env, "LISTEN_FDS"), ElementsAre("LISTEN_FDS=2"));
  EXPECT_THAT(entries_named(plan.env, "LISTEN_FDNAMES"), ElementsAre("LISTEN_FDNAMES=http:admin"));
  EXPECT_THAT(plan.fds, ElementsAre(10, 11));
}

TEST(SpawnPlan, ListenPidIsAReservedSlotOfTwentySpaces) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", two_listeners, identity,
                                         {"LISTEN_PID=4242"}, std::nullopt);
  ASSERT_TRUE(plan.listen_pid_index.has_value());
  ASSERT_LT(*plan.listen_pid_index, plan.env.size());
  EXPECT_EQ(plan.env[*plan.listen_pid_index], "LISTEN_PID=" + std::string(pid_slot_width, ' '));
  EXPECT_EQ(entries_named(plan.env, "LISTEN_PID").size(), 1u);
}

TEST(SpawnPlan, NoListenerMeansNoListenVariablesAtAll) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity,
                                         {"LISTEN_FDS=3", "LISTEN_PID=1", "LISTEN_FDNAMES=x"}, std::nullopt);
  EXPECT_THAT(plan.env, Not(Contains(StartsWith("LISTEN_"))));
  EXPECT_FALSE(plan.listen_pid_index.has_value());
  EXPECT_TRUE(plan.fds.empty());
}

TEST(SpawnPlan, EnvSectionOverridesTheParentEnvironment) {
  Config config = test_config();
  config.env = {{"APP_ENV", "production"}, {"EXTRA", "1"}};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", {}, identity,
                                         {"APP_ENV=development", "PATH=/bin"}, std::nullopt);
  EXPECT_THAT(entries_named(plan.env, "APP_ENV"), ElementsAre("APP_ENV=production"));
  EXPECT_THAT(entries_named(plan.env, "EXTRA"), ElementsAre("EXTRA=1"));
  EXPECT_THAT(plan.env, Contains("PATH=/bin"));
}

TEST(SpawnPlan, EnvValuesTakeTheCommandsPlaceholders) {
  Config config = test_config();
  config.env = {{"NGINX", "{fd:admin};"}, {"FPM_SOCKETS", "127.0.0.1:9000={fd:http}"},
                {"CACHE", "/var/cache/app-{worker_id}"}, {"JSON", "{{\"a\": 1}"}};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", two_listeners, identity, {}, std::nullopt);
  EXPECT_THAT(entries_named(plan.env, "NGINX"), ElementsAre("NGINX=4;"));
  EXPECT_THAT(entries_named(plan.env, "FPM_SOCKETS"), ElementsAre("FPM_SOCKETS=127.0.0.1:9000=3"));
  EXPECT_THAT(entries_named(plan.env, "CACHE"), ElementsAre("CACHE=/var/cache/app-3"));
  EXPECT_THAT(entries_named(plan.env, "JSON"), ElementsAre("JSON={\"a\": 1}"));
}

TEST(SpawnPlan, WorkerIdentityIsSetAndReplacesAnInheritedOne) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity,
                                         {"CLUSTERD_WORKER_ID=0", "CLUSTERD_OTHER=kept"}, std::nullopt);
  EXPECT_THAT(entries_named(plan.env, "CLUSTERD_WORKER_ID"), ElementsAre("CLUSTERD_WORKER_ID=3"));
  EXPECT_THAT(entries_named(plan.env, "CLUSTERD_WORKERS"), ElementsAre("CLUSTERD_WORKERS=8"));
  EXPECT_THAT(entries_named(plan.env, "CLUSTERD_GENERATION"), ElementsAre("CLUSTERD_GENERATION=2"));
  EXPECT_THAT(plan.env, Contains("CLUSTERD_OTHER=kept"));
}

TEST(SpawnPlan, UserGivesHomeUserAndLognameOverTheParents) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity,
                                         {"HOME=/root", "USER=root", "LOGNAME=root"},
                                         UserEnv{"www-data", "/var/www"});
  EXPECT_THAT(entries_named(plan.env, "HOME"), ElementsAre("HOME=/var/www"));
  EXPECT_THAT(entries_named(plan.env, "USER"), ElementsAre("USER=www-data"));
  EXPECT_THAT(entries_named(plan.env, "LOGNAME"), ElementsAre("LOGNAME=www-data"));
}

TEST(SpawnPlan, EnvSectionWinsOverTheUsersHome) {
  Config config = test_config();
  config.env = {{"HOME", "/srv/home"}};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", {}, identity, {"HOME=/root"},
                                         UserEnv{"www-data", "/var/www"});
  EXPECT_THAT(entries_named(plan.env, "HOME"), ElementsAre("HOME=/srv/home"));
  EXPECT_THAT(entries_named(plan.env, "USER"), ElementsAre("USER=www-data"));
}

TEST(SpawnPlan, WithoutUserTheParentsHomeStays) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity,
                                         {"HOME=/root", "USER=root"}, std::nullopt);
  EXPECT_THAT(entries_named(plan.env, "HOME"), ElementsAre("HOME=/root"));
  EXPECT_THAT(entries_named(plan.env, "USER"), ElementsAre("USER=root"));
  EXPECT_TRUE(entries_named(plan.env, "LOGNAME").empty());
}

TEST(SpawnPlan, ArgvExpandsPlaceholdersAfterTheProgramName) {
  Config config = test_config();
  config.command = {"./server-{worker_id}", "--fd", "{fd:admin}", "--id={worker_id}", "{{literal}"};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server-{worker_id}", two_listeners, identity, {}, std::nullopt);
  EXPECT_THAT(plan.argv, ElementsAre("./server-{worker_id}", "--fd", "4", "--id=3", "{literal}"));
}

TEST(SpawnPlan, ArgumentWithABadPlaceholderIsKeptAsWritten) {
  Config config = test_config();
  config.command = {"./server", "--port={port}", "{fd:missing}", "{fd:http}"};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", two_listeners, identity, {}, std::nullopt);
  EXPECT_THAT(plan.argv, ElementsAre("./server", "--port={port}", "{fd:missing}", "3"));
}

TEST(SpawnPlan, ExecutableAndDirectoryComeFromTheCaller) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity, {}, std::nullopt);
  EXPECT_EQ(plan.executable, "/srv/shop/server");
  EXPECT_EQ(plan.directory, "/srv/shop");
  EXPECT_EQ(plan.stdout_fd, -1);
  EXPECT_EQ(plan.stderr_fd, -1);
}

TEST(SpawnPlan, InheritEnvListPassesOnlyTheListedVariables) {
  Config config = test_config();
  config.inherit_env = std::vector<std::string>{"PATH", "LANG", "TZ"};
  config.env = {{"APP_ENV", "production"}};
  const SpawnPlan plan =
      make_spawn_plan(config, "/srv/shop/server", two_listeners, identity,
                      {"PATH=/usr/bin", "LANG=C.UTF-8", "DB_PASSWORD=secret", "AWS_SECRET_ACCESS_KEY=x",
                       "LISTEN_FDS=9", "CLUSTERD_OTHER=dropped"},
                      UserEnv{"www-data", "/var/www"}, NotifySettings{"/run/n.sock", 1000});
  std::vector<std::string> names;
  for (const auto& entry : plan.env) {
    names.push_back(entry.substr(0, entry.find('=')));
  }
  // TZ is listed but clusterd has none: nothing is made up. Everything clusterd sets is there.
  EXPECT_THAT(names, ElementsAre("PATH", "LANG", "APP_ENV", "HOME", "USER", "LOGNAME", "CLUSTERD_WORKER_ID",
                                 "CLUSTERD_WORKERS", "CLUSTERD_GENERATION", "LISTEN_FDS", "LISTEN_FDNAMES",
                                 "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"));
  EXPECT_THAT(entries_named(plan.env, "LISTEN_FDS"), ElementsAre("LISTEN_FDS=2"));
}

TEST(SpawnPlan, InheritEnvFalsePassesNothingOfClusterds) {
  Config config = test_config();
  config.inherit_env = std::vector<std::string>{};
  config.env = {{"PATH", "/opt/bin"}};
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", {}, identity,
                                         {"PATH=/usr/bin", "HOME=/root", "SECRET=1"}, std::nullopt);
  EXPECT_THAT(plan.env, ElementsAre("PATH=/opt/bin", "CLUSTERD_WORKER_ID=3", "CLUSTERD_WORKERS=8",
                                    "CLUSTERD_GENERATION=2"));
}

TEST(SpawnPlan, InheritEnvListStillDropsJournalStreamWithPrefixOutput) {
  Config config = test_config();
  config.inherit_env = std::vector<std::string>{"JOURNAL_STREAM", "PATH"};
  config.output.mode = OutputMode::prefix;
  const SpawnPlan plan = make_spawn_plan(config, "/srv/shop/server", {}, identity,
                                         {"JOURNAL_STREAM=8:1", "PATH=/bin"}, std::nullopt);
  EXPECT_THAT(plan.env, Contains("PATH=/bin"));
  EXPECT_TRUE(entries_named(plan.env, "JOURNAL_STREAM").empty());
}

TEST(SpawnPlan, InheritEnvDefaultPassesSecretsToo) {
  const SpawnPlan plan = make_spawn_plan(test_config(), "/srv/shop/server", {}, identity, {"DB_PASSWORD=secret"},
                                         std::nullopt);
  EXPECT_THAT(plan.env, Contains("DB_PASSWORD=secret"));
}

}  // namespace
}  // namespace clusterd
