// Config: TOML text and overrides in, a Config or the full text of every diagnostic out.
#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Every diagnostic of building `text` (as c.toml) with `overrides`, as to_string prints it.
std::vector<std::string> errors(std::string_view text, const ConfigOverrides& overrides = {},
                                const HostChecks* host = nullptr) {
  const auto result = build_config(ConfigText{"c.toml", std::string(text)}, overrides, host);
  std::vector<std::string> out;
  if (!result) {
    for (const auto& diagnostic : result.error()) {
      out.push_back(diagnostic.to_string());
    }
  }
  return out;
}

std::vector<std::string> errors_of_flags(const ConfigOverrides& overrides) {
  return errors("command = [\"./srv\"]\n", overrides);
}

Config build(std::string_view text, const ConfigOverrides& overrides = {}) {
  auto result = build_config(ConfigText{"c.toml", std::string(text)}, overrides);
  EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().front().to_string());
  return result ? *result : Config{};
}

constexpr std::string_view command_line = "command = [\"./srv\"]\n";

std::string with_command(std::string_view rest) { return std::string(command_line) + std::string(rest); }

// ----- syntax and unknown keys

TEST(ConfigErrors, SyntaxErrorNamesFileLineAndColumn) {
  EXPECT_THAT(errors("command = [\"./srv\"]\nworkers = \n"),
              ElementsAre("c.toml:2:11: a key without a value: write one after '=', such as \"text\", 4, true or [\"a\", \"b\"]"));
}

TEST(ConfigErrors, UnclosedTableHeaderIsASyntaxError) {
  EXPECT_THAT(errors("[restart\n"),
              ElementsAre("c.toml:1:9: unterminated section header: write it as [name] (or [[listen]]) on one line"));
}

// toml++ 3.3.0 reaches __builtin_unreachable on a non-ASCII character where whitespace may stand
// (undefined behaviour: UBSan stops the sanitizer build here without toml_library.h's hooks).
TEST(ConfigErrors, NonAsciiAfterABareKeyIsASyntaxErrorNotUndefinedBehaviour) {
  EXPECT_THAT(errors("x\xc2\xa1"), ElementsAre("c.toml:1:2: syntax error in key-value pair: expected '=', saw '\xc2\xa1'"));
  ConfigOverrides overrides;
  overrides.workers = "x\xc2\xa1";
  const auto flagged = errors_of_flags(overrides);
  ASSERT_EQ(flagged.size(), 1U);
  EXPECT_THAT(flagged[0], ::testing::StartsWith("--workers: "));
}

// `[)` breaks a precondition toml++ asserts (an abort with asserts on, an assumption the compiler
// may exploit with NDEBUG): here a check that fails as an error in the file.
TEST(ConfigErrors, ABracketThenAParenthesisIsAnErrorNotAnAbort) {
  const auto found = errors("[)");
  ASSERT_EQ(found.size(), 1U);
  EXPECT_THAT(found[0], ::testing::StartsWith("c.toml: not valid TOML: the TOML reader failed its check `"));
  EXPECT_THAT(found[0], ::testing::HasSubstr("is_bare_key_character"));
}

TEST(ConfigErrors, UnknownKeySuggestsTheCloseOne) {
  EXPECT_THAT(errors(with_command("worker = 4\n")),
              ElementsAre("c.toml:2:1: worker: unknown key \"worker\"; did you mean \"workers\"?"));
}

TEST(ConfigErrors, TypoInSectionNameSuggestsTheSection) {
  EXPECT_THAT(errors(with_command("[restrat]\ndelay = \"1s\"\n")),
              ElementsAre("c.toml:2:2: restrat: unknown key \"restrat\"; did you mean \"restart\"?"));
}

TEST(ConfigErrors, UnknownKeyInsideASectionSuggestsWithTheSection) {
  EXPECT_THAT(
      errors(with_command("[restart]\ndealy = \"1s\"\n")),
      ElementsAre("c.toml:3:1: restart.dealy: unknown key \"dealy\"; did you mean \"restart.delay\"?"));
}

TEST(ConfigErrors, KeyUnderTheWrongSectionSuggestsItsSection) {
  EXPECT_THAT(errors(with_command("[restart]\ngrace = \"1s\"\n")),
              ElementsAre("c.toml:3:1: restart.grace: unknown key \"grace\"; did you mean \"stop.grace\"?"));
}

// [metrics] has no "address": its address is "listen". A listener's "address" is another key.
TEST(ConfigErrors, AnotherNameForASectionsKeySuggestsThatSectionsKey) {
  EXPECT_THAT(errors(with_command("[metrics]\naddress = \"127.0.0.1:9100\"\n")),
              ElementsAre("c.toml:3:1: metrics.address: unknown key \"address\"; did you mean \"metrics.listen\"?"));
  EXPECT_THAT(errors(with_command("[control]\npath = \"/run/x.sock\"\n")),
              ElementsAre("c.toml:3:1: control.path: unknown key \"path\"; did you mean \"control.socket\"?"));
}

TEST(ConfigErrors, TopLevelKeyAfterASectionHeaderSaysSo) {
  EXPECT_THAT(errors(with_command("[log]\nworkers = 4\n")),
              ElementsAre("c.toml:3:1: log.workers: unknown key \"workers\"; did you mean \"workers\" at the "
                          "top level, before any [section]?"));
}

TEST(ConfigErrors, UnknownKeyWithNothingCloseHasNoSuggestion) {
  EXPECT_THAT(errors(with_command("frobnicate = 1\n")),
              ElementsAre("c.toml:2:1: frobnicate: unknown key \"frobnicate\""));
}

TEST(ConfigErrors, MisspelledReuseportSuggestsTheKey) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nreuseprot = \"per-slot\"\n")),
              ElementsAre("c.toml:4:1: listen[0].reuseprot: unknown key \"reuseprot\"; did you mean "
                          "\"listen[0].reuseport\"?"));
}

// ----- top-level keys

TEST(ConfigErrors, WorkersOutOfRange) {
  EXPECT_THAT(errors(with_command("workers = 0\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found 0"));
  EXPECT_THAT(errors(with_command("workers = -2\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found -2"));
  EXPECT_THAT(errors(with_command("workers = 4097\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found 4097"));
  EXPECT_THAT(errors(with_command("workers = 9223372036854775807\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found "
                          "9223372036854775807"));
}

TEST(ConfigErrors, WorkersOfTheWrongTypeNamesTheType) {
  EXPECT_THAT(errors(with_command("workers = \"four\"\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found \"four\""));
  EXPECT_THAT(errors(with_command("workers = 2.5\n")),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found float 2.5"));
  EXPECT_THAT(
      errors(with_command("workers = true\n")),
      ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found boolean true"));
}

TEST(ConfigErrors, CommandMustBeANonEmptyArrayOfStrings) {
  EXPECT_THAT(errors("command = \"./srv --port 1\"\n"),
              ElementsAre("c.toml:1:11: command: expected a non-empty array of strings, found string "
                          "\"./srv --port 1\""));
  EXPECT_THAT(
      errors("command = []\n"),
      ElementsAre("c.toml:1:11: command: expected a non-empty array of strings, found an empty array"));
  EXPECT_THAT(errors("command = [\"./srv\", 8000]\n"),
              ElementsAre("c.toml:1:21: command[1]: expected a string, found integer 8000"));
  EXPECT_THAT(errors("command = [\"\"]\n"),
              ElementsAre("c.toml:1:12: command[0]: expected a program name or path, found \"\""));
}

TEST(ConfigErrors, CommandIsRequiredWithoutProgram) {
  EXPECT_THAT(errors("workers = 2\n"),
              ElementsAre("c.toml: command: expected an array of strings (or PROGRAM on the command line), "
                          "found nothing"));
  const auto result = build_config(std::nullopt, {});
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().front().to_string(),
              "command line: command: expected PROGRAM, or -c FILE with a command, found neither");
}

TEST(ConfigErrors, UnknownPlaceholderInCommand) {
  EXPECT_THAT(errors("command = [\"./srv\", \"--port={port}\"]\n"),
              ElementsAre("c.toml:1:21: command[1]: unknown placeholder \"{port}\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {"));
  EXPECT_THAT(
      errors("command = [\"./srv\", \"--fd={fd:web}\"]\n[[listen]]\nname = \"http\"\naddress = \":80\"\n"),
      ElementsAre("c.toml:1:21: command[1]: unknown placeholder \"{fd:web}\": no listener is named \"web\" "
                  "(listeners: \"http\"); use one of those names, or set name = \"web\" in its [[listen]]"));
}

TEST(ConfigErrors, NameOutsideTheCharset) {
  EXPECT_THAT(errors(with_command("name = \"my shop\"\n")),
              ElementsAre("c.toml:2:8: name: expected 1-64 characters of A-Za-z0-9._-, found \"my shop\""));
  EXPECT_THAT(errors(with_command("name = \"\"\n")),
              ElementsAre("c.toml:2:8: name: expected 1-64 characters of A-Za-z0-9._-, found \"\""));
  EXPECT_THAT(errors(with_command("name = \"" + std::string(65, 'a') + "\"\n")),
              ElementsAre("c.toml:2:8: name: expected 1-64 characters of A-Za-z0-9._-, found \"" +
                          std::string(65, 'a') + "\""));
}

TEST(ConfigErrors, DirectoryUserAndGroupTypes) {
  EXPECT_THAT(errors(with_command("directory = 5\nuser = true\ngroup = -1\n")),
              ElementsAre("c.toml:2:13: directory: expected a directory path, found integer 5",
                          "c.toml:3:8: user: expected a user name or uid, found boolean true",
                          "c.toml:4:9: group: expected a group name or gid, found -1"));
}

// ----- [[listen]]

TEST(ConfigErrors, ListenerWithoutAddress) {
  EXPECT_THAT(errors(with_command("[[listen]]\nname = \"http\"\n")),
              ElementsAre("c.toml:2:1: listen[0].address: expected an address such as \":8000\" or "
                          "\"unix:/run/app.sock\", found nothing"));
}

TEST(ConfigErrors, BadAddressesSayWhatWasExpected) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"127.0.0.1:99999\"\n")),
              ElementsAre("c.toml:3:11: listen[0].address: expected a port 0-65535, found \"99999\""));
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = 8000\n")),
              ElementsAre("c.toml:3:11: listen[0].address: expected an address such as \":8000\" or "
                          "\"unix:/run/app.sock\", found integer 8000"));
}

TEST(ConfigMetrics, ListenTakesATcpAddress) {
  const Config config = build(with_command("[metrics]\nlisten = \"localhost:9100\"\n"));
  ASSERT_TRUE(config.metrics.listen);
  EXPECT_EQ(format_address(*config.metrics.listen), "127.0.0.1:9100");
  EXPECT_FALSE(build(command_line).metrics.listen);
  EXPECT_THAT(build(with_command("[metrics]\nlisten = \"127.0.0.1:9100\"\n")).warnings, IsEmpty());
}

TEST(ConfigMetrics, ListenSetByAFlag) {
  ConfigOverrides overrides;
  overrides.sets = {"metrics.listen=[::1]:0"};
  const Config config = build(command_line, overrides);
  ASSERT_TRUE(config.metrics.listen);
  EXPECT_EQ(format_address(*config.metrics.listen), "[::1]:0");
}

TEST(ConfigMetrics, RefusesAUnixPathAndABarePortSayingHowToWriteIt) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\"unix:/run/m.sock\"",
       "expected a TCP address such as \"127.0.0.1:9100\", found \"unix:/run/m.sock\"; the metrics are served "
       "over HTTP on TCP only"},
      {"\":9100\"",
       "expected HOST:PORT with the host written out, such as \"127.0.0.1:9100\" (or \"0.0.0.0:9100\" for every "
       "address), found \":9100\""},
      {"9100", "expected a TCP address such as \"127.0.0.1:9100\", found integer 9100"},
      {"\"127.0.0.1:99999\"", "expected a port 0-65535, found \"99999\""},
  };
  for (const auto& [value, error] : cases) {
    EXPECT_THAT(errors(with_command("[metrics]\nlisten = " + value + "\n")),
                ElementsAre("c.toml:3:10: metrics.listen: " + error));
  }
}

TEST(ConfigMetrics, EveryAddressIsAWarning) {
  for (const std::string address : {"0.0.0.0:9100", "[::]:9100"}) {
    const Config config = build(with_command("[metrics]\nlisten = \"" + address + "\"\n"));
    EXPECT_TRUE(config.metrics.listen);
    EXPECT_THAT(config.warnings,
                ElementsAre("c.toml:3:10: metrics.listen: listens on every address: whoever can reach port 9100 can "
                            "read the metrics (the instance's name and version, each worker's pid, slot, memory and "
                            "CPU); listen on 127.0.0.1 or a private address, or keep the port behind a firewall"));
  }
}

TEST(ConfigErrors, UnixPathLongerThanSunPath) {
  const std::string path = "/" + std::string(120, 'x');
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"unix:" + path + "\"\n")),
              ElementsAre("c.toml:3:11: listen[0].address: unix socket path is 121 bytes, the limit is 107"));
}

TEST(ConfigErrors, DuplicateListenerNames) {
  EXPECT_THAT(
      errors(with_command("[[listen]]\nname = \"http\"\naddress = \":80\"\n"
                          "[[listen]]\nname = \"http\"\naddress = \":81\"\n")),
      ElementsAre("c.toml:6:8: listen[1].name: expected a name unique among listeners, found \"http\" "
                  "(listen[0] has it too)"));
}

TEST(ConfigErrors, ExplicitNameCollidingWithALaterDefaultName) {
  EXPECT_THAT(errors(with_command("[[listen]]\nname = \"fd4\"\naddress = \":80\"\n"
                                  "[[listen]]\naddress = \":81\"\n")),
              ElementsAre("c.toml:3:8: listen[0].name: expected a name unique among listeners, found \"fd4\" "
                          "(listen[1] has it too)"));
}

TEST(ConfigErrors, ListenerNameOutsideTheCharset) {
  EXPECT_THAT(errors(with_command("[[listen]]\nname = \"h:ttp\"\naddress = \":80\"\n")),
              ElementsAre("c.toml:3:8: listen[0].name: expected 1-64 characters of A-Za-z0-9._-, found "
                          "\"h:ttp\""));
}

TEST(ConfigErrors, RepeatedInvalidListenerNameIsReportedOncePerListener) {
  EXPECT_THAT(
      errors(with_command("[[listen]]\nname = \"a b\"\naddress = \":80\"\n"
                          "[[listen]]\nname = \"a b\"\naddress = \":81\"\n")),
      ElementsAre("c.toml:3:8: listen[0].name: expected 1-64 characters of A-Za-z0-9._-, found \"a b\"",
                  "c.toml:6:8: listen[1].name: expected 1-64 characters of A-Za-z0-9._-, found \"a b\""));
}

TEST(ConfigErrors, ModeOnATcpListenerConflicts) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"127.0.0.1:80\"\nmode = \"0600\"\n")),
              ElementsAre("c.toml:4:8: listen[0].mode: mode applies only to unix: addresses, not "
                          "\"127.0.0.1:80\""));
}

TEST(ConfigErrors, ModeMustBeAnOctalString) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"unix:/run/a.sock\"\nmode = \"rw-rw----\"\n")),
              ElementsAre("c.toml:4:8: listen[0].mode: expected an octal mode such as \"0660\", found "
                          "\"rw-rw----\""));
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"unix:/run/a.sock\"\nmode = 660\n")),
              ElementsAre("c.toml:4:8: listen[0].mode: expected an octal mode such as \"0660\", found "
                          "integer 660"));
}

TEST(ConfigErrors, Ipv6OnlyOnAnIpv4ListenerConflicts) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"0.0.0.0:80\"\nipv6_only = true\n")),
              ElementsAre("c.toml:4:13: listen[0].ipv6_only: ipv6_only applies only to IPv6 addresses, not "
                          "\"0.0.0.0:80\""));
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"[::]:80\"\nipv6_only = \"yes\"\n")),
              ElementsAre("c.toml:4:13: listen[0].ipv6_only: expected true or false, found string \"yes\""));
}

TEST(ConfigErrors, ReuseportIsSharedOrPerSlot) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nreuseport = \"x\"\n")),
              ElementsAre("c.toml:4:13: listen[0].reuseport: expected \"shared\" or \"per-slot\", found \"x\""));
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nreuseport = \"per_slot\"\n")),
              ElementsAre("c.toml:4:13: listen[0].reuseport: expected \"shared\" or \"per-slot\", found "
                          "\"per_slot\""));
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nreuseport = true\n")),
              ElementsAre("c.toml:4:13: listen[0].reuseport: expected \"shared\" or \"per-slot\", found "
                          "boolean true"));
}

TEST(ConfigErrors, ReuseportPerSlotOnAUnixListenerConflicts) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \"unix:/run/a.sock\"\nreuseport = \"per-slot\"\n")),
              ElementsAre("c.toml:4:13: listen[0].reuseport: \"per-slot\" applies only to TCP addresses, not "
                          "\"unix:/run/a.sock\""));
}

TEST(ConfigErrors, ABrokenReuseportIsReportedWithTheListenersOtherProblems) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nbacklog = 0\nreuseport = \"all\"\n"
                                  "[[listen]]\nname = \"b\"\naddress = \"unix:/a\"\nreuseport = \"per-slot\"\n")),
              ElementsAre("c.toml:4:11: listen[0].backlog: expected an integer of at least 1, found 0",
                          "c.toml:5:13: listen[0].reuseport: expected \"shared\" or \"per-slot\", found \"all\"",
                          "c.toml:9:13: listen[1].reuseport: \"per-slot\" applies only to TCP addresses, not "
                          "\"unix:/a\""));
}

TEST(ConfigErrors, BacklogBelowOne) {
  EXPECT_THAT(errors(with_command("[[listen]]\naddress = \":80\"\nbacklog = 0\n")),
              ElementsAre("c.toml:4:11: listen[0].backlog: expected an integer of at least 1, found 0"));
}

TEST(ConfigErrors, ListenAsATableInsteadOfAnArrayOfTables) {
  EXPECT_THAT(errors(with_command("[listen]\naddress = \":80\"\n")),
              ElementsAre("c.toml:2:1: listen: expected an array of tables ([[listen]]), found a table"));
}

TEST(ConfigErrors, MisspelledListenerKey) {
  EXPECT_THAT(errors(with_command("[[listen]]\nadress = \":80\"\n")),
              ElementsAre("c.toml:2:1: listen[0].address: expected an address such as \":8000\" or "
                          "\"unix:/run/app.sock\", found nothing",
                          "c.toml:3:1: listen[0].adress: unknown key \"adress\"; did you mean "
                          "\"listen[0].address\"?"));
}

// ----- [env]

TEST(ConfigErrors, EnvMayNotSetWhatClusterdSets) {
  EXPECT_THAT(
      errors(with_command("[env]\nLISTEN_FDS = \"3\"\nCLUSTERD_WORKER_ID = \"0\"\n")),
      ElementsAre("c.toml:3:1: env.LISTEN_FDS: expected a variable that clusterd does not set or "
                  "remove, found \"LISTEN_FDS\"",
                  "c.toml:4:1: env.CLUSTERD_WORKER_ID: expected a variable that clusterd does not set or "
                  "remove, found \"CLUSTERD_WORKER_ID\""));
}

TEST(ConfigErrors, EnvNamesAndValues) {
  EXPECT_THAT(errors(with_command("[env]\n\"1FOO\" = \"x\"\nPORT = 8000\n")),
              ElementsAre("c.toml:3:1: env.1FOO: expected a variable name of A-Za-z0-9_ not starting with a "
                          "digit, found \"1FOO\"",
                          "c.toml:4:8: env.PORT: expected a string, found integer 8000"));
}

TEST(ConfigErrors, EnvValueWithAnUnknownPlaceholderNamesTheKey) {
  EXPECT_THAT(errors(with_command("[env]\nAPP_CONFIG = '{\"debug\": true}'\nNGINX = \"{fd:web};\"\n")),
              ElementsAre("c.toml:3:14: env.APP_CONFIG: unknown placeholder \"{\"debug\": true}\": the "
                          "placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {",
                          "c.toml:4:9: env.NGINX: unknown placeholder \"{fd:web}\": no listener is configured; "
                          "add a [[listen]] with name = \"web\" (or --listen web=ADDRESS)"));
}

// ----- [restart], [stop], [log]

TEST(ConfigErrors, BareNumberIsNotADuration) {
  EXPECT_THAT(errors(with_command("[restart]\ndelay = 5\n")),
              ElementsAre("c.toml:3:9: restart.delay: expected a duration with a unit such as \"5s\", found "
                          "integer 5"));
  EXPECT_THAT(errors(with_command("[restart]\ndelay = \"5\"\n")),
              ElementsAre("c.toml:3:9: restart.delay: expected a duration with a unit such as \"5s\", found "
                          "\"5\""));
}

TEST(ConfigErrors, BadDurations) {
  EXPECT_THAT(
      errors(with_command("[stop]\ngrace = \"-1s\"\n[restart]\ninterval = \"5 minutes\"\n")),
      ElementsAre("c.toml:3:9: stop.grace: expected a duration with a unit such as \"5s\", found \"-1s\"",
                  "c.toml:5:12: restart.interval: expected a duration with a unit such as \"5s\", found "
                  "\"5 minutes\""));
}

TEST(ConfigErrors, ZeroDurationsWhereAPositiveOneIsNeeded) {
  EXPECT_THAT(
      errors(with_command("[restart]\ndelay = \"0s\"\nreset_after = \"0ms\"\ninterval = \"0s\"\n")),
      ElementsAre("c.toml:3:9: restart.delay: expected a duration greater than 0, found \"0s\"",
                  "c.toml:4:15: restart.reset_after: expected a duration greater than 0, found \"0ms\"",
                  "c.toml:5:12: restart.interval: expected a duration greater than 0, found \"0s\""));
}

TEST(ConfigErrors, MaxDelayBelowDelay) {
  EXPECT_THAT(errors(with_command("[restart]\ndelay = \"2s\"\nmax_delay = \"1s\"\n")),
              ElementsAre("c.toml:4:13: restart.max_delay: expected a duration of at least restart.delay "
                          "(\"2s\"), found \"1s\""));
}

TEST(ConfigErrors, MultiplierBelowOne) {
  EXPECT_THAT(errors(with_command("[restart]\nmultiplier = 0.5\n")),
              ElementsAre("c.toml:3:14: restart.multiplier: expected a number of at least 1.0, found 0.5"));
  EXPECT_THAT(errors(with_command("[restart]\nmultiplier = \"2\"\n")),
              ElementsAre("c.toml:3:14: restart.multiplier: expected a number of at least 1.0, found string "
                          "\"2\""));
  EXPECT_THAT(errors(with_command("[restart]\nmultiplier = inf\n")),
              ElementsAre("c.toml:3:14: restart.multiplier: expected a number of at least 1.0, found inf"));
}

TEST(ConfigErrors, BurstBelowOneAndHuge) {
  EXPECT_THAT(errors(with_command("[restart]\nburst = 0\n")),
              ElementsAre("c.toml:3:9: restart.burst: expected an integer of at least 1, found 0"));
  EXPECT_THAT(errors(with_command("[restart]\nburst = 99999999999\n")),
              ElementsAre("c.toml:3:9: restart.burst: expected an integer of at most 2147483647, found "
                          "99999999999"));
}

TEST(ConfigErrors, UnknownOutputMode) {
  EXPECT_THAT(errors(with_command("output = \"prefixed\"\n")),
              ElementsAre("c.toml:2:10: output: expected \"inherit\" or \"prefix\", found \"prefixed\""));
  ConfigOverrides flag;
  flag.output = "pipe";
  EXPECT_THAT(errors_of_flags(flag), ElementsAre("--output: output: expected \"inherit\" or \"prefix\", found pipe"));
}

TEST(Config, OutputIsInheritByDefaultAndPrefixWhenAsked) {
  EXPECT_EQ(build(command_line).output.mode, OutputMode::inherit);
  EXPECT_EQ(build(with_command("output = \"prefix\"\n")).output.mode, OutputMode::prefix);
  ConfigOverrides flag;
  flag.output = "inherit";
  EXPECT_EQ(build(with_command("output = \"prefix\"\n"), flag).output.mode, OutputMode::inherit);
}

TEST(Config, OutputTableReadsEveryKey) {
  const Config config = build(with_command(
      "[output]\nmode = \"prefix\"\nfile = \"/var/log/w.log\"\ntimestamps = true\nmax_size = \"10MiB\"\n"
      "keep = 3\nrecent_lines = 50\n"));
  EXPECT_EQ(config.output.mode, OutputMode::prefix);
  EXPECT_EQ(config.output.file, "/var/log/w.log");
  EXPECT_TRUE(config.output.timestamps);
  EXPECT_EQ(config.output.max_size, 10U << 20U);
  EXPECT_EQ(config.output.keep, 3);
  EXPECT_EQ(config.output.recent_lines, 50);
}

TEST(Config, OutputKeysBesideTheModeChoosePrefix) {
  EXPECT_EQ(build(with_command("[output]\ntimestamps = true\n")).output.mode, OutputMode::prefix);
  EXPECT_EQ(build(with_command("[output]\nmode = \"inherit\"\n")).output.mode, OutputMode::inherit);
  const Config relative = build(with_command("[output]\nfile = \"logs/w.log\"\n"));
  EXPECT_EQ(relative.output.mode, OutputMode::prefix);
  // Without a config file there is no directory to take it from: it stays as written.
  EXPECT_EQ(relative.output.file, "logs/w.log");
}

TEST(Config, OutputFlagSetsTheModeOfTheTable) {
  ConfigOverrides flag;
  flag.output = "prefix";
  EXPECT_EQ(build(with_command("[output]\nmode = \"inherit\"\n"), flag).output.mode, OutputMode::prefix);
  ConfigOverrides set;
  set.sets = {"output.file=/var/log/w.log"};
  const Config config = build(with_command("output = \"prefix\"\n"), set);
  EXPECT_EQ(config.output.mode, OutputMode::prefix);
  EXPECT_EQ(config.output.file, "/var/log/w.log");
}

TEST(ConfigErrors, OutputKeysThatNeedPrefixOrAFile) {
  EXPECT_THAT(errors(with_command("[output]\nmode = \"inherit\"\ntimestamps = true\n")),
              ElementsAre(::testing::HasSubstr("output.timestamps: needs output.mode = \"prefix\"")));
  EXPECT_THAT(errors(with_command("[output]\nmax_size = \"1MiB\"\n")),
              ElementsAre(::testing::HasSubstr("output.max_size: rotates output.file, which is not set")));
  EXPECT_THAT(errors(with_command("[output]\nfile = \"/x\"\nkeep = 0\n")),
              ElementsAre(::testing::HasSubstr("output.keep: expected an integer 1-100, found 0")));
  EXPECT_THAT(errors(with_command("[output]\nfile = \"/x\"\nmax_size = \"64KiB\"\n")),
              ElementsAre(::testing::HasSubstr("output.max_size: is below 1MiB: rotating that often would keep "
                                               "clusterd busy renaming files; give 1MiB or more")));
  EXPECT_THAT(errors(with_command("[output]\nrecent_lines = -1\n")),
              ElementsAre(::testing::HasSubstr("output.recent_lines: expected an integer 0-100000")));
  EXPECT_THAT(errors(with_command("[output]\nmode = \"prefix\"\ncolour = true\n")),
              ElementsAre(::testing::HasSubstr("output.colour")));
}

TEST(ConfigErrors, UnknownPolicy) {
  EXPECT_THAT(
      errors(with_command("[restart]\npolicy = \"sometimes\"\n")),
      ElementsAre("c.toml:3:10: restart.policy: expected \"always\", \"on-failure\" or \"never\", found "
                  "\"sometimes\""));
}

TEST(ConfigErrors, UnknownCgroupMode) {
  EXPECT_THAT(errors(with_command("[cgroup]\nmode = \"yes\"\n")),
              ElementsAre("c.toml:3:8: cgroup.mode: expected \"auto\", \"on\" or \"off\", found \"yes\""));
  EXPECT_THAT(errors(with_command("[cgroup]\nmemory = \"1G\"\n")), ElementsAre(::testing::HasSubstr("cgroup.memory")));
}

TEST(ConfigErrors, StopLadder) {
  EXPECT_THAT(errors(with_command("[stop]\ndump_signal = \"KILL\"\n")),
              ElementsAre("c.toml:3:15: stop.dump_signal: expected a signal name such as \"ABRT\" or \"QUIT\", "
                          "found \"KILL\""));
  EXPECT_THAT(errors(with_command("[stop]\ngrace = \"3s\"\ndump_signal = \"ABRT\"\ndump_before = \"3s\"\n")),
              ElementsAre("c.toml:5:15: stop.dump_before: expected a duration less than stop.grace (\"3s\"), "
                          "found \"3s\""));
  EXPECT_THAT(errors(with_command("[stop]\ndump_before = \"1s\"\n")),
              ElementsAre(::testing::HasSubstr("stop.dump_before: is set without stop.dump_signal")));
}

TEST(Config, StopLadder) {
  const Config config = build("command = [\"x\"]\n[stop]\ndump_signal = \"QUIT\"\ndump_before = \"10s\"\n");
  EXPECT_EQ(config.stop.dump_signal, SIGQUIT);
  EXPECT_EQ(config.stop.dump_before, std::chrono::seconds(10));
  EXPECT_EQ(build("command = [\"x\"]\n").stop.dump_signal, std::nullopt);
}

TEST(Config, CgroupModes) {
  EXPECT_EQ(build("command = [\"x\"]\n").cgroup.mode, CgroupMode::automatic);
  EXPECT_EQ(build("command = [\"x\"]\n[cgroup]\nmode = \"on\"\n").cgroup.mode, CgroupMode::on);
  EXPECT_EQ(build("command = [\"x\"]\n[cgroup]\nmode = \"off\"\n").cgroup.mode, CgroupMode::off);
}

TEST(ConfigErrors, UnknownSignal) {
  EXPECT_THAT(
      errors(with_command("[stop]\nsignal = \"TERMINATE\"\n")),
      ElementsAre("c.toml:3:10: stop.signal: expected a signal name such as \"TERM\", found \"TERMINATE\""));
  EXPECT_THAT(
      errors(with_command("[stop]\nsignal = 15\n")),
      ElementsAre("c.toml:3:10: stop.signal: expected a signal name such as \"TERM\", found integer 15"));
}

TEST(ConfigErrors, UnknownLogLevelAndEmptyLogFile) {
  EXPECT_THAT(
      errors(with_command("[log]\nlevel = \"verbose\"\nfile = \"\"\n")),
      ElementsAre("c.toml:3:9: log.level: expected \"trace\", \"debug\", \"info\", \"warn\" or \"error\", "
                  "found \"verbose\"",
                  "c.toml:4:8: log.file: expected a file path, found \"\""));
}

TEST(ConfigErrors, SectionOfTheWrongType) {
  EXPECT_THAT(errors(with_command("restart = 5\nenv = [\"A=b\"]\n")),
              ElementsAre("c.toml:2:11: restart: expected a table [restart], found integer 5",
                          "c.toml:3:7: env: expected a table [env], found an array"));
}

// ----- [ready], [reload], [recycle]

TEST(ConfigErrors, ReadyModeListsItsThreeForms) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"sometimes\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found \"sometimes\""));
  EXPECT_THAT(errors(with_command("[ready]\nmode = 2\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found integer 2"));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"2\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found \"2\""));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"-2s\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found \"-2s\""));
}

TEST(ConfigErrors, ReadyModeDurationMustBeAboveZero) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"0s\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration greater than "
                          "0, found \"0s\""));
}

TEST(ConfigErrors, ReadyModeDurationMustBeShorterThanTheTimeout) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"2m\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected a duration shorter than ready.timeout (\"1m\"), "
                          "found \"2m\""));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"5s\"\ntimeout = \"5s\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected a duration shorter than ready.timeout (\"5s\"), "
                          "found \"5s\""));
  // A broken timeout is reported once, not again through the mode.
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"2m\"\ntimeout = \"0s\"\n")),
              ElementsAre("c.toml:4:11: ready.timeout: expected a duration greater than 0, found \"0s\""));
}

TEST(ConfigErrors, ReadyTimeoutMustBeAPositiveDuration) {
  EXPECT_THAT(errors(with_command("[ready]\ntimeout = \"0s\"\n")),
              ElementsAre("c.toml:3:11: ready.timeout: expected a duration greater than 0, found \"0s\""));
  EXPECT_THAT(errors(with_command("[ready]\ntimeout = 60\n")),
              ElementsAre("c.toml:3:11: ready.timeout: expected a duration with a unit such as \"5s\", found "
                          "integer 60"));
  EXPECT_THAT(errors(with_command("[ready]\ntimeout = \"-60s\"\n")),
              ElementsAre("c.toml:3:11: ready.timeout: expected a duration with a unit such as \"5s\", found "
                          "\"-60s\""));
}

TEST(ConfigErrors, MinUptimeOnlyWithAutoModeAndShorterThanTheTimeout) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"notify\"\nmin_uptime = \"2s\"\n")),
              ElementsAre("c.toml:4:14: ready.min_uptime: only allowed with ready.mode = \"auto\", found "
                          "ready.mode = \"notify\""));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"3s\"\nmin_uptime = \"2s\"\n")),
              ElementsAre("c.toml:4:14: ready.min_uptime: only allowed with ready.mode = \"auto\", found "
                          "ready.mode = \"3s\"; the mode's duration is the minimum uptime"));
  EXPECT_THAT(errors(with_command("[ready]\ntimeout = \"5s\"\nmin_uptime = \"5s\"\n")),
              ElementsAre("c.toml:4:14: ready.min_uptime: expected a duration shorter than ready.timeout "
                          "(\"5s\"), found \"5s\""));
  EXPECT_THAT(errors(with_command("[ready]\nmin_uptime = \"0s\"\n")),
              ElementsAre("c.toml:3:14: ready.min_uptime: expected a duration greater than 0, found \"0s\""));
}

TEST(Config, AutoModeMinUptimeIsReadAndFitsAShortTimeout) {
  EXPECT_EQ(build("command = [\"./srv\"]\n[ready]\nmin_uptime = \"250ms\"\n").ready.min_uptime, 250ms);
  // The 1 s default would never be reached within a 600 ms timeout: half the timeout instead.
  EXPECT_EQ(build("command = [\"./srv\"]\n[ready]\ntimeout = \"600ms\"\n").ready.min_uptime, 300ms);
}

TEST(ConfigErrors, WatchdogOnlyWithNotifyMode) {
  EXPECT_THAT(errors(with_command("[ready]\nwatchdog = \"10s\"\n")),
              ElementsAre("c.toml:3:12: ready.watchdog: only allowed with ready.mode = \"notify\", found "
                          "ready.mode = \"auto\" (the default)"));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"exec\"\nwatchdog = \"10s\"\n")),
              ElementsAre("c.toml:4:12: ready.watchdog: only allowed with ready.mode = \"notify\", found "
                          "ready.mode = \"exec\""));
  EXPECT_THAT(errors(with_command("[ready]\nwatchdog = \"10s\"\nmode = \"2s\"\n")),
              ElementsAre("c.toml:3:12: ready.watchdog: only allowed with ready.mode = \"notify\", found "
                          "ready.mode = \"2s\""));
}

TEST(ConfigErrors, WatchdogIsNotBlamedForABrokenMode) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"notfy\"\nwatchdog = \"10s\"\n")),
              ElementsAre("c.toml:3:8: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found \"notfy\""));
}

TEST(ConfigErrors, WatchdogMustBeAPositiveDuration) {
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"notify\"\nwatchdog = \"0s\"\n")),
              ElementsAre("c.toml:4:12: ready.watchdog: expected a duration greater than 0, found \"0s\""));
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"notify\"\nwatchdog = 10\n")),
              ElementsAre("c.toml:4:12: ready.watchdog: expected a duration with a unit such as \"5s\", "
                          "found integer 10"));
}

TEST(ConfigErrors, ReloadBatchOutOfRange) {
  EXPECT_THAT(errors(with_command("[reload]\nbatch = 0\n")),
              ElementsAre("c.toml:3:9: reload.batch: expected an integer 1-4096, found 0"));
  EXPECT_THAT(errors(with_command("[reload]\nbatch = -1\n")),
              ElementsAre("c.toml:3:9: reload.batch: expected an integer 1-4096, found -1"));
  EXPECT_THAT(errors(with_command("[reload]\nbatch = 4097\n")),
              ElementsAre("c.toml:3:9: reload.batch: expected an integer 1-4096, found 4097"));
  EXPECT_THAT(errors(with_command("[reload]\nbatch = \"2\"\n")),
              ElementsAre("c.toml:3:9: reload.batch: expected an integer 1-4096, found string \"2\""));
}

TEST(ConfigErrors, MaxRssNeedsASizeWithAUnit) {
  EXPECT_THAT(errors(with_command("[recycle]\nmax_rss = 536870912\n")),
              ElementsAre("c.toml:3:11: recycle.max_rss: expected a size with a unit KiB, MiB or GiB such as "
                          "\"512MiB\", found integer 536870912"));
  EXPECT_THAT(errors(with_command("[recycle]\nmax_rss = \"512\"\n")),
              ElementsAre("c.toml:3:11: recycle.max_rss: expected a size with a unit KiB, MiB or GiB such as "
                          "\"512MiB\", found \"512\""));
  EXPECT_THAT(errors(with_command("[recycle]\nmax_rss = \"512MB\"\n")),
              ElementsAre("c.toml:3:11: recycle.max_rss: expected a size with a unit KiB, MiB or GiB such as "
                          "\"512MiB\", found \"512MB\""));
  EXPECT_THAT(errors(with_command("[recycle]\nmax_rss = \"-1MiB\"\n")),
              ElementsAre("c.toml:3:11: recycle.max_rss: expected a size with a unit KiB, MiB or GiB such as "
                          "\"512MiB\", found \"-1MiB\""));
}

TEST(ConfigErrors, MaxRssMustBeAboveZero) {
  EXPECT_THAT(errors(with_command("[recycle]\nmax_rss = \"0MiB\"\n")),
              ElementsAre("c.toml:3:11: recycle.max_rss: expected a size greater than 0, found \"0MiB\""));
}

TEST(ConfigErrors, RecycleDurationsMustBePositive) {
  EXPECT_THAT(
      errors(with_command("[recycle]\nmax_lifetime = \"0s\"\ncheck_interval = \"0ms\"\n")),
      ElementsAre("c.toml:3:16: recycle.max_lifetime: expected a duration greater than 0, found \"0s\"",
                  "c.toml:4:18: recycle.check_interval: expected a duration greater than 0, found \"0ms\""));
  EXPECT_THAT(
      errors(with_command("[recycle]\nmax_lifetime = \"-24h\"\ncheck_interval = 10\n")),
      ElementsAre("c.toml:3:16: recycle.max_lifetime: expected a duration with a unit such as \"5s\", found "
                  "\"-24h\"",
                  "c.toml:4:18: recycle.check_interval: expected a duration with a unit such as \"5s\", "
                  "found integer 10"));
}

TEST(ConfigErrors, ReadyReloadAndRecycleMustBeTables) {
  EXPECT_THAT(errors(with_command("ready = \"notify\"\nreload = 2\nrecycle = true\n")),
              ElementsAre("c.toml:2:9: ready: expected a table [ready], found string \"notify\"",
                          "c.toml:3:10: reload: expected a table [reload], found integer 2",
                          "c.toml:4:11: recycle: expected a table [recycle], found boolean true"));
}

TEST(ConfigErrors, MisspelledOrMisplacedReadyReloadAndRecycleKeys) {
  EXPECT_THAT(errors(with_command("[ready]\nmdoe = \"notify\"\n[recycle]\nbatch = 2\n")),
              ElementsAre("c.toml:3:1: ready.mdoe: unknown key \"mdoe\"; did you mean \"ready.mode\"?",
                          "c.toml:5:1: recycle.batch: unknown key \"batch\"; did you mean "
                          "\"reload.batch\"?"));
}

TEST(ConfigErrors, EveryErrorInTheFileIsReportedInFileOrder) {
  const std::string text =
      "command = [\"./srv\", \"{oops}\"]\n"
      "workers = 0\n"
      "[[listen]]\n"
      "address = \"127.0.0.1:http\"\n"
      "[restart]\n"
      "delay = 100\n"
      "policy = \"sometimes\"\n"
      "[stop]\n"
      "signal = \"NOPE\"\n"
      "[log]\n"
      "levle = \"info\"\n";
  EXPECT_THAT(
      errors(text),
      ElementsAre("c.toml:1:21: command[1]: unknown placeholder \"{oops}\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {",
                  "c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found 0",
                  "c.toml:4:11: listen[0].address: expected a port 0-65535, found \"http\"",
                  "c.toml:6:9: restart.delay: expected a duration with a unit such as \"5s\", found "
                  "integer 100",
                  "c.toml:7:10: restart.policy: expected \"always\", \"on-failure\" or \"never\", found "
                  "\"sometimes\"",
                  "c.toml:9:10: stop.signal: expected a signal name such as \"TERM\", found \"NOPE\"",
                  "c.toml:11:1: log.levle: unknown key \"levle\"; did you mean \"log.level\"?"));
}

// ----- flags

TEST(ConfigFlagErrors, WorkersFlagIsNamed) {
  ConfigOverrides overrides;
  overrides.workers = "0";
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--workers: workers: expected an integer 1-4096 or \"auto\", found 0"));
  overrides.workers = "many";
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--workers: workers: expected an integer 1-4096 or \"auto\", found many"));
}

TEST(ConfigFlagErrors, SetWithABareNumberDuration) {
  ConfigOverrides overrides;
  overrides.sets = {"restart.delay=5"};
  EXPECT_THAT(
      errors_of_flags(overrides),
      ElementsAre("--set restart.delay=5: restart.delay: expected a duration with a unit such as \"5s\", "
                  "found 5"));
}

TEST(ConfigFlagErrors, SetOfAnUnknownKeySuggests) {
  ConfigOverrides overrides;
  overrides.sets = {"worker=3", "restart.dealy=1s", "bogus.key=1", "rstart.delay=1s"};
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--set worker=3: worker: unknown key \"worker\"; did you mean \"workers\"?",
                          "--set restart.dealy=1s: restart.dealy: unknown key \"dealy\"; did you mean "
                          "\"restart.delay\"?",
                          "--set bogus.key=1: bogus.key: unknown key \"bogus.key\"",
                          "--set rstart.delay=1s: rstart.delay: unknown key \"rstart.delay\"; did you mean "
                          "\"restart.delay\"?"));
}

TEST(ConfigFlagErrors, SetCannotTouchListeners) {
  ConfigOverrides overrides;
  overrides.sets = {"listen.address=:80"};
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--set listen.address=:80: listen.address: listeners are set with --listen "
                          "[NAME=]ADDR, not --set"));
}

TEST(ConfigFlagErrors, SetWithoutEqualsOrOfAWholeSection) {
  ConfigOverrides overrides;
  overrides.sets = {"workers", "restart=fast"};
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--set workers: expected KEY=VALUE, found workers",
                          "--set restart=fast: restart: expected restart.KEY=VALUE, found restart=fast"));
}

TEST(ConfigFlagErrors, SetOfAReservedVariable) {
  ConfigOverrides overrides;
  overrides.sets = {"env.LISTEN_FDS=3"};
  EXPECT_THAT(
      errors_of_flags(overrides),
      ElementsAre("--set env.LISTEN_FDS=3: env.LISTEN_FDS: expected a variable that clusterd does not set "
                  "or remove, found \"LISTEN_FDS\""));
}

TEST(ConfigFlagErrors, SetWithTheWrongTypeShowsTheValueAsTyped) {
  ConfigOverrides overrides;
  overrides.sets = {"restart.multiplier=fast", "restart.burst=true", "command=./srv"};
  EXPECT_THAT(
      errors("", overrides),
      ElementsAre("--set restart.multiplier=fast: restart.multiplier: expected a number of at least 1.0, "
                  "found fast",
                  "--set restart.burst=true: restart.burst: expected an integer of at least 1, found true",
                  "--set command=./srv: command: expected a non-empty array of strings, found ./srv"));
}

TEST(ConfigFlagErrors, ListenFlagWithABadAddress) {
  ConfigOverrides overrides;
  overrides.listen = {"http=127.0.0.1:99999", "a b=:80"};
  EXPECT_THAT(
      errors_of_flags(overrides),
      ElementsAre("--listen http=127.0.0.1:99999: listen[0].address: expected a port 0-65535, found "
                  "\"99999\"",
                  "--listen a b=:80: listen[1].name: expected 1-64 characters of A-Za-z0-9._-, found a b"));
}

TEST(ConfigFlagErrors, GraceStopSignalAndLogLevelFlags) {
  ConfigOverrides overrides;
  overrides.grace = "5";
  overrides.stop_signal = "TERMINATE";
  overrides.log_level = "loud";
  overrides.name = "my shop";
  overrides.log_file = "";
  EXPECT_THAT(
      errors_of_flags(overrides),
      ElementsAre("--grace: stop.grace: expected a duration with a unit such as \"5s\", found 5",
                  "--stop-signal: stop.signal: expected a signal name such as \"TERM\", found TERMINATE",
                  "--name: name: expected 1-64 characters of A-Za-z0-9._-, found my shop",
                  "--log-level: log.level: expected \"trace\", \"debug\", \"info\", \"warn\" or \"error\", "
                  "found loud",
                  "--log-file: log.file: expected a file path, found \"\""));
}

TEST(ConfigFlagErrors, ReadyFlagsAreNamed) {
  ConfigOverrides overrides;
  overrides.ready = "sometimes";
  overrides.ready_timeout = "60";
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--ready: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration with a unit "
                          "such as \"2s\", found sometimes",
                          "--ready-timeout: ready.timeout: expected a duration with a unit such as \"5s\", "
                          "found 60"));
  overrides.ready = "0s";
  overrides.ready_timeout = "0s";
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--ready: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration greater than 0, "
                          "found 0s",
                          "--ready-timeout: ready.timeout: expected a duration greater than 0, found 0s"));
}

TEST(ConfigFlagErrors, ReadyFlagLongerThanTheTimeoutFromTheFile) {
  ConfigOverrides overrides;
  overrides.ready = "30s";
  EXPECT_THAT(errors(with_command("[ready]\ntimeout = \"10s\"\n"), overrides),
              ElementsAre("--ready: ready.mode: expected a duration shorter than ready.timeout (\"10s\"), "
                          "found 30s"));
}

TEST(ConfigFlagErrors, SetOfEachReadyReloadAndRecycleKeyWithABadValue) {
  ConfigOverrides overrides;
  overrides.sets = {"ready.mode=sometimes",     "ready.timeout=0s",   "reload.batch=0",
                    "recycle.max_lifetime=-1s", "recycle.max_rss=64", "recycle.check_interval=10"};
  EXPECT_THAT(
      errors_of_flags(overrides),
      ElementsAre("--set ready.mode=sometimes: ready.mode: expected \"auto\", \"exec\", \"notify\" or a duration "
                  "with a unit such as \"2s\", found sometimes",
                  "--set ready.timeout=0s: ready.timeout: expected a duration greater than 0, found 0s",
                  "--set reload.batch=0: reload.batch: expected an integer 1-4096, found 0",
                  "--set recycle.max_lifetime=-1s: recycle.max_lifetime: expected a duration with a unit "
                  "such as \"5s\", found -1s",
                  "--set recycle.max_rss=64: recycle.max_rss: expected a size with a unit KiB, MiB or GiB "
                  "such as \"512MiB\", found 64",
                  "--set recycle.check_interval=10: recycle.check_interval: expected a duration with a unit "
                  "such as \"5s\", found 10"));
}

TEST(ConfigFlagErrors, SetOfAWatchdogWithoutNotifyMode) {
  ConfigOverrides overrides;
  overrides.sets = {"ready.watchdog=10s"};
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--set ready.watchdog=10s: ready.watchdog: only allowed with ready.mode = "
                          "\"notify\", found ready.mode = \"auto\" (the default)"));
}

TEST(ConfigFlagErrors, WatchdogInTheFileIsBlamedWhenTheReadyFlagChangesTheMode) {
  ConfigOverrides overrides;
  overrides.ready = "exec";
  EXPECT_THAT(errors(with_command("[ready]\nmode = \"notify\"\nwatchdog = \"10s\"\n"), overrides),
              ElementsAre("c.toml:4:12: ready.watchdog: only allowed with ready.mode = \"notify\", found "
                          "ready.mode = \"exec\""));
}

TEST(ConfigFlagErrors, ProgramWithAnUnknownPlaceholder) {
  ConfigOverrides overrides;
  overrides.program = {"./srv", "--port", "{port}"};
  EXPECT_THAT(errors("", overrides), ElementsAre("command line: command[2]: unknown placeholder \"{port}\": the placeholders are {fd:NAME} and {worker_id}; write {{ for a literal {"));
}

TEST(ConfigFlagErrors, FileErrorsComeBeforeFlagErrors) {
  ConfigOverrides overrides;
  overrides.workers = "0";
  EXPECT_THAT(
      errors(with_command("[stop]\ngrace = 3\n"), overrides),
      ElementsAre("c.toml:3:9: stop.grace: expected a duration with a unit such as \"5s\", found integer 3",
                  "--workers: workers: expected an integer 1-4096 or \"auto\", found 0"));
}

// ----- good paths

TEST(Config, DefaultsFromAMinimalFile) {
  const Config config = build("command = [\"./bin/my-server\", \"--port\", \"8000\"]\n");
  EXPECT_EQ(config.name, "my-server");
  EXPECT_EQ(config.workers, std::nullopt);
  EXPECT_THAT(config.command, ElementsAre("./bin/my-server", "--port", "8000"));
  EXPECT_EQ(config.directory, "");
  EXPECT_EQ(config.user, std::nullopt);
  EXPECT_EQ(config.group, std::nullopt);
  EXPECT_THAT(config.listeners, IsEmpty());
  EXPECT_THAT(config.env, IsEmpty());
  EXPECT_EQ(config.restart.policy, RestartPolicyKind::always);
  EXPECT_EQ(config.restart.delay, 100ms);
  EXPECT_EQ(config.restart.max_delay, 30s);
  EXPECT_EQ(config.restart.multiplier, 2.0);
  EXPECT_EQ(config.restart.reset_after, 30s);
  EXPECT_EQ(config.restart.burst, std::nullopt);
  EXPECT_EQ(config.restart.interval, 60s);
  EXPECT_EQ(config.stop.signal, SIGTERM);
  EXPECT_EQ(config.stop.grace, 30s);
  EXPECT_EQ(config.ready.mode, ReadyMode::automatic);
  EXPECT_EQ(config.ready.min_uptime, 1s);
  EXPECT_EQ(config.ready.timeout, 60s);
  EXPECT_EQ(config.ready.watchdog, std::nullopt);
  EXPECT_EQ(config.reload.batch, 1);
  EXPECT_EQ(config.recycle.max_lifetime, std::nullopt);
  EXPECT_EQ(config.recycle.max_rss, std::nullopt);
  EXPECT_EQ(config.recycle.check_interval, 10s);
  EXPECT_EQ(config.log.level, LogLevel::info);
  EXPECT_EQ(config.log.file, std::nullopt);
  EXPECT_EQ(config.file, "c.toml");
}

TEST(Config, EveryKeySet) {
  const Config config = build(
      "name = \"shop\"\nworkers = 8\ncommand = [\"./server\", \"--fd\", \"{fd:http}\", "
      "\"--id={worker_id}\"]\n"
      "directory = \"/srv/shop\"\nuser = \"www-data\"\ngroup = 33\n"
      "[[listen]]\nname = \"http\"\naddress = \"0.0.0.0:8000\"\nbacklog = 128\n"
      "[[listen]]\naddress = \"unix:/run/shop.sock\"\nmode = \"0600\"\n"
      "[[listen]]\naddress = \"[::1]:9000\"\nipv6_only = false\n"
      "[env]\nAPP_ENV = \"production\"\n"
      "[restart]\npolicy = \"on-failure\"\ndelay = \"250ms\"\nmax_delay = \"1m\"\nmultiplier = 3\n"
      "reset_after = \"1m30s\"\nburst = 10\ninterval = \"2m\"\n"
      "[ready]\nmode = \"notify\"\ntimeout = \"2m\"\nwatchdog = \"10s\"\n"
      "[stop]\nsignal = \"SIGINT\"\ngrace = \"0s\"\n"
      "[reload]\nbatch = 4\n"
      "[recycle]\nmax_lifetime = \"24h\"\nmax_rss = \"512MiB\"\ncheck_interval = \"30s\"\n"
      "[log]\nlevel = \"debug\"\nfile = \"/var/log/shop.log\"\n");
  EXPECT_EQ(config.name, "shop");
  EXPECT_EQ(config.workers, 8);
  EXPECT_EQ(config.directory, "/srv/shop");
  EXPECT_EQ(config.user, "www-data");
  EXPECT_EQ(config.group, "33");
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].name, "http");
  EXPECT_EQ(format_address(config.listeners[0].address), "0.0.0.0:8000");
  EXPECT_EQ(config.listeners[0].backlog, 128);
  EXPECT_EQ(config.listeners[1].name, "fd4");
  EXPECT_EQ(config.listeners[1].mode, 0600u);
  EXPECT_EQ(config.listeners[2].name, "fd5");
  EXPECT_FALSE(config.listeners[2].ipv6_only);
  EXPECT_EQ(config.env.at("APP_ENV"), "production");
  EXPECT_EQ(config.restart.policy, RestartPolicyKind::on_failure);
  EXPECT_EQ(config.restart.delay, 250ms);
  EXPECT_EQ(config.restart.max_delay, 1min);
  EXPECT_EQ(config.restart.multiplier, 3.0);
  EXPECT_EQ(config.restart.reset_after, 90s);
  EXPECT_EQ(config.restart.burst, 10);
  EXPECT_EQ(config.restart.interval, 2min);
  EXPECT_EQ(config.stop.signal, SIGINT);
  EXPECT_EQ(config.stop.grace, 0s);
  EXPECT_EQ(config.ready.mode, ReadyMode::notify);
  EXPECT_EQ(config.ready.timeout, 2min);
  EXPECT_EQ(config.ready.watchdog, 10s);
  EXPECT_EQ(config.reload.batch, 4);
  EXPECT_EQ(config.recycle.max_lifetime, 24h);
  EXPECT_EQ(config.recycle.max_rss, 512u << 20);
  EXPECT_EQ(config.recycle.check_interval, 30s);
  EXPECT_EQ(config.log.level, LogLevel::debug);
  EXPECT_EQ(config.log.file, "/var/log/shop.log");
}

TEST(Config, Ipv6OnlyDefaultsByAddressForm) {
  const Config config =
      build(with_command("[[listen]]\naddress = \"[::1]:80\"\n[[listen]]\naddress = \":81\"\n"
                         "[[listen]]\naddress = \"unix:/tmp/a.sock\"\n"));
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_TRUE(config.listeners[0].ipv6_only);
  EXPECT_FALSE(config.listeners[1].ipv6_only);
  EXPECT_EQ(config.listeners[2].mode, 0660u);
  EXPECT_EQ(config.listeners[0].name, "fd3");
}

TEST(Config, ReuseportIsLeftToClusterdUnlessSet) {
  const Config config = build(with_command(
      "[[listen]]\naddress = \"127.0.0.1:0\"\nreuseport = \"per-slot\"\n"
      "[[listen]]\naddress = \"[::1]:81\"\nreuseport = \"shared\"\n"
      "[[listen]]\naddress = \":82\"\n"
      "[[listen]]\naddress = \"unix:/tmp/a.sock\"\nreuseport = \"shared\"\n"));
  ASSERT_EQ(config.listeners.size(), 4u);
  EXPECT_EQ(config.listeners[0].reuseport, ReusePort::per_slot);
  EXPECT_EQ(config.listeners[1].reuseport, ReusePort::shared);
  EXPECT_EQ(config.listeners[2].reuseport, std::nullopt);  // reuseport_in_effect decides
  EXPECT_EQ(config.listeners[3].reuseport, ReusePort::shared);
}

TEST(Config, DefaultNameIsTheSanitizedBaseNameOfTheProgram) {
  EXPECT_EQ(build("command = [\"/opt/my app/srv@2\"]\n").name, "srv_2");
  EXPECT_EQ(build("command = [\"python3\", \"app.py\"]\n").name, "python3");
}

TEST(Config, ReadyModeDurationIsAMinimumUptime) {
  const Config config = build(with_command("[ready]\nmode = \"1m30s\"\ntimeout = \"2m\"\n"));
  EXPECT_EQ(config.ready.mode, ReadyMode::uptime);
  EXPECT_EQ(config.ready.min_uptime, 90s);
  EXPECT_EQ(config.ready.timeout, 2min);
  EXPECT_EQ(build(with_command("[ready]\nmode = \"250ms\"\n")).ready.min_uptime, 250ms);
}

TEST(Config, MaxRssInEachUnit) {
  EXPECT_EQ(build(with_command("[recycle]\nmax_rss = \"64KiB\"\n")).recycle.max_rss, 64u << 10);
  EXPECT_EQ(build(with_command("[recycle]\nmax_rss = \"512MiB\"\n")).recycle.max_rss, 512u << 20);
  EXPECT_EQ(build(with_command("[recycle]\nmax_rss = \"3GiB\"\n")).recycle.max_rss, std::uint64_t{3} << 30);
}

TEST(Config, ReloadBatchAtItsBounds) {
  EXPECT_EQ(build(with_command("[reload]\nbatch = 1\n")).reload.batch, 1);
  EXPECT_EQ(build(with_command("[reload]\nbatch = 4096\n")).reload.batch, 4096);
}

TEST(Config, DefaultCapFollowsALargerDelay) {
  const Config config = build(with_command("[restart]\ndelay = \"1m\"\n"));
  EXPECT_EQ(config.restart.max_delay, 1min);
}

TEST(Config, PlaceholdersMayNameListenersFromTheListenFlag) {
  ConfigOverrides overrides;
  overrides.listen = {"web=:8080"};
  const Config config = build(
      "command = [\"./srv\", \"{fd:web}\", \"{{literal}\"]\n[[listen]]\naddress = \":80\"\n", overrides);
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].name, "web");
}

// ----- overrides

TEST(ConfigOverrides, FlagsOverrideTheFile) {
  ConfigOverrides overrides;
  overrides.workers = "3";
  overrides.grace = "5s";
  overrides.stop_signal = "QUIT";
  overrides.name = "other";
  overrides.log_level = "warn";
  overrides.log_file = "/tmp/x.log";
  const Config config =
      build(with_command("workers = 8\nname = \"shop\"\n[stop]\ngrace = \"1m\"\n"), overrides);
  EXPECT_EQ(config.workers, 3);
  EXPECT_EQ(config.stop.grace, 5s);
  EXPECT_EQ(config.stop.signal, SIGQUIT);
  EXPECT_EQ(config.name, "other");
  EXPECT_EQ(config.log.level, LogLevel::warn);
  EXPECT_EQ(config.log.file, "/tmp/x.log");
}

TEST(ConfigOverrides, ReadyFlagsOverrideTheFile) {
  ConfigOverrides overrides;
  overrides.ready = "3s";
  overrides.ready_timeout = "20s";
  const Config config =
      build(with_command("[ready]\nmode = \"notify\"\ntimeout = \"5m\"\n"), overrides);
  EXPECT_EQ(config.ready.mode, ReadyMode::uptime);
  EXPECT_EQ(config.ready.min_uptime, 3s);
  EXPECT_EQ(config.ready.timeout, 20s);
  overrides.ready = "notify";
  EXPECT_EQ(build(with_command("[ready]\nmode = \"exec\"\n"), overrides).ready.mode, ReadyMode::notify);
}

TEST(ConfigOverrides, SetOfEachReadyReloadAndRecycleKey) {
  ConfigOverrides overrides;
  overrides.sets = {"ready.mode=notify",   "ready.timeout=2s",        "ready.watchdog=500ms",
                    "reload.batch=3",      "recycle.max_lifetime=1h", "recycle.max_rss=64MiB",
                    "recycle.check_interval=1s"};
  const Config config = build(command_line, overrides);
  EXPECT_EQ(config.ready.mode, ReadyMode::notify);
  EXPECT_EQ(config.ready.timeout, 2s);
  EXPECT_EQ(config.ready.watchdog, 500ms);
  EXPECT_EQ(config.reload.batch, 3);
  EXPECT_EQ(config.recycle.max_lifetime, 1h);
  EXPECT_EQ(config.recycle.max_rss, 64u << 20);
  EXPECT_EQ(config.recycle.check_interval, 1s);
}

TEST(ConfigOverrides, ReadyFlagWinsOverSetAndEnablesTheFilesWatchdog) {
  ConfigOverrides overrides;
  overrides.sets = {"ready.mode=exec", "ready.timeout=1s"};
  overrides.ready = "notify";
  overrides.ready_timeout = "9s";
  const Config config = build(with_command("[ready]\nwatchdog = \"5s\"\n"), overrides);
  EXPECT_EQ(config.ready.mode, ReadyMode::notify);
  EXPECT_EQ(config.ready.timeout, 9s);
  EXPECT_EQ(config.ready.watchdog, 5s);
}

TEST(ConfigOverrides, WorkersAutoFromAFlag) {
  ConfigOverrides overrides;
  overrides.workers = "auto";
  EXPECT_EQ(build(with_command("workers = 8\n"), overrides).workers, std::nullopt);
}

TEST(ConfigOverrides, ListenReplacesEveryListenTable) {
  ConfigOverrides overrides;
  overrides.listen = {"api=127.0.0.1:0", "unix:/tmp/x=y.sock"};
  const Config config =
      build(with_command("[[listen]]\nname = \"a\"\naddress = \":80\"\n[[listen]]\naddress = \":81\"\n"),
            overrides);
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].name, "api");
  EXPECT_EQ(format_address(config.listeners[0].address), "127.0.0.1:0");
  EXPECT_EQ(config.listeners[1].name, "fd4");
  EXPECT_EQ(config.listeners[1].address.path, "/tmp/x=y.sock");
}

TEST(ConfigOverrides, SetReadsValuesAsTheKeysType) {
  ConfigOverrides overrides;
  overrides.sets = {"restart.delay=5s",    "name=shop",    "env.FOO=bar baz",          "restart.multiplier=3",
                    "restart.burst=4",     "workers=auto", "command=[\"./a\", \"b\"]", "stop.signal=INT",
                    "log.file=\"/tmp/q\"", "user=1000"};
  const Config config = build("command = [\"./srv\"]\nworkers = 2\n[env]\nKEEP = \"1\"\n", overrides);
  EXPECT_EQ(config.restart.delay, 5s);
  EXPECT_EQ(config.name, "shop");
  EXPECT_EQ(config.env.at("FOO"), "bar baz");
  EXPECT_EQ(config.env.at("KEEP"), "1");
  EXPECT_EQ(config.restart.multiplier, 3.0);
  EXPECT_EQ(config.restart.burst, 4);
  EXPECT_EQ(config.workers, std::nullopt);
  EXPECT_THAT(config.command, ElementsAre("./a", "b"));
  EXPECT_EQ(config.stop.signal, SIGINT);
  EXPECT_EQ(config.log.file, "/tmp/q");
  EXPECT_EQ(config.user, "1000");
}

TEST(ConfigOverrides, DedicatedFlagWinsOverSet) {
  ConfigOverrides overrides;
  overrides.sets = {"workers=4"};
  overrides.workers = "6";
  EXPECT_EQ(build(command_line, overrides).workers, 6);
}

TEST(ConfigOverrides, ProgramReplacesCommandAndNamesTheInstance) {
  ConfigOverrides overrides;
  overrides.program = {"/usr/bin/shop-server", "--port", "{worker_id}"};
  const Config config = build("command = [\"./srv\"]\n", overrides);
  EXPECT_THAT(config.command, ElementsAre("/usr/bin/shop-server", "--port", "{worker_id}"));
  EXPECT_EQ(config.name, "shop-server");
}

TEST(ConfigOverrides, WithoutAFileEverythingComesFromFlags) {
  ConfigOverrides overrides;
  overrides.program = {"./srv"};
  overrides.workers = "2";
  const auto config = build_config(std::nullopt, overrides);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->workers, 2);
  EXPECT_EQ(config->file, std::nullopt);
}

// ----- control.socket

TEST(ConfigControl, DefaultIsOnAtTheDefaultPath) {
  const Config config = build(with_command(""));
  EXPECT_TRUE(config.control.enabled);
  EXPECT_EQ(config.control.socket, std::nullopt);
}

TEST(ConfigControl, PathOrNone) {
  EXPECT_EQ(build(with_command("[control]\nsocket = \"/run/shop/ctl.sock\"\n")).control.socket,
            "/run/shop/ctl.sock");
  const Config off = build(with_command("[control]\nsocket = \"none\"\n"));
  EXPECT_FALSE(off.control.enabled);
  EXPECT_EQ(off.control.socket, std::nullopt);
}

TEST(ConfigControl, FlagOverridesTheFile) {
  ConfigOverrides overrides;
  overrides.control = "none";
  EXPECT_FALSE(build(with_command("[control]\nsocket = \"/run/a.sock\"\n"), overrides).control.enabled);
  overrides.control = "/tmp/b.sock";
  const Config config = build(with_command("[control]\nsocket = \"none\"\n"), overrides);
  EXPECT_TRUE(config.control.enabled);
  EXPECT_EQ(config.control.socket, "/tmp/b.sock");
  ConfigOverrides by_set;
  by_set.sets = {"control.socket=/tmp/c.sock"};
  EXPECT_EQ(build(with_command(""), by_set).control.socket, "/tmp/c.sock");
}

TEST(ConfigControl, RelativeEmptyOrWrongTypeIsRefused) {
  EXPECT_THAT(errors(with_command("[control]\nsocket = \"ctl.sock\"\n")),
              ElementsAre("c.toml:3:10: control.socket: expected an absolute path or \"none\", found \"ctl.sock\""));
  EXPECT_THAT(errors(with_command("[control]\nsocket = \"\"\n")),
              ElementsAre("c.toml:3:10: control.socket: expected an absolute path or \"none\", found \"\""));
  EXPECT_THAT(errors(with_command("[control]\nsocket = 5\n")),
              ElementsAre("c.toml:3:10: control.socket: expected an absolute path or \"none\", found integer 5"));
  EXPECT_THAT(errors(with_command("[control]\nsocket = \"/a\\u0000b\"\n")),
              ElementsAre(::testing::StartsWith("c.toml:3:10: control.socket: expected an absolute path or \"none\"")));
}

TEST(ConfigControl, PathLongerThanSunPath) {
  const std::string fits = "/" + std::string(106, 'x');
  EXPECT_EQ(build(with_command("[control]\nsocket = \"" + fits + "\"\n")).control.socket, fits);
  EXPECT_THAT(errors(with_command("[control]\nsocket = \"" + fits + "y\"\n")),
              ElementsAre("c.toml:3:10: control.socket: the path is 108 bytes, the limit is 107"));
}

TEST(ConfigControl, FlagErrorsNameTheFlag) {
  ConfigOverrides overrides;
  overrides.control = "rel.sock";
  EXPECT_THAT(errors_of_flags(overrides),
              ElementsAre("--control: control.socket: expected an absolute path or \"none\", found rel.sock"));
}

TEST(ConfigControl, UnknownKeyInTheSection) {
  EXPECT_THAT(errors(with_command("[control]\nsokcet = \"/a.sock\"\n")),
              ElementsAre("c.toml:3:1: control.sokcet: unknown key \"sokcet\"; did you mean \"control.socket\"?"));
}

// ----- to_toml

TEST(ToToml, WritesEveryKeyWithDefaults) {
  EXPECT_EQ(to_toml(build("command = [\"./srv\", \"a \\\"b\\\"\"]\n[[listen]]\naddress = \":80\"\n")),
            "name = \"srv\"\n"
            "workers = \"auto\"\n"
            "command = [\"./srv\", \"a \\\"b\\\"\"]\n"
            "# directory: unset (clusterd's working directory)\n"
            "# user: unset\n"
            "# group: unset (the user's primary group)\n"
            "inherit_env = true\n"
            "\n[[listen]]\n"
            "name = \"fd3\"\n"
            "address = \":80\"\n"
            "backlog = 4096\n"
            "ipv6_only = false\n"
            "# reuseport: unset (per-slot where clusterd can steer connections, else shared)\n"
            "\n[env]\n"
            "\n[restart]\n"
            "policy = \"always\"\n"
            "delay = \"100ms\"\n"
            "max_delay = \"30s\"\n"
            "multiplier = 2.0\n"
            "reset_after = \"30s\"\n"
            "# burst: unset (off)\n"
            "interval = \"1m\"\n"
            "\n[ready]\n"
            "mode = \"auto\"\n"
            "min_uptime = \"1s\"\n"
            "timeout = \"1m\"\n"
            "# watchdog: unset (off)\n"
            "\n[stop]\n"
            "signal = \"TERM\"\n"
            "grace = \"30s\"\n"
            "# dump_signal: unset (no stack dump before SIGKILL)\n"
            "\n[reload]\n"
            "batch = 1\n"
            "\n[recycle]\n"
            "# max_lifetime: unset (off)\n"
            "# max_rss: unset (off)\n"
            "check_interval = \"10s\"\n"
            "\n[output]\n"
            "mode = \"inherit\"\n"
            "\n[cgroup]\n"
            "mode = \"auto\"\n"
            "\n[control]\n"
            "# socket: unset (NAME.sock in $RUNTIME_DIRECTORY, else in $XDG_RUNTIME_DIR/clusterd, else in "
            "/run/clusterd as root or /tmp/clusterd-UID)\n"
            "\n[metrics]\n"
            "# listen: unset (no HTTP endpoint; `clusterd metrics` still answers)\n"
            "\n[log]\n"
            "level = \"info\"\n"
            "# file: unset (stderr)\n");
}

TEST(ToToml, RoundTripsThroughBuildConfig) {
  const std::string text =
      "name = \"shop\"\nworkers = 8\ncommand = [\"./server\", \"--fd\", \"{fd:http}\", \"tab\\there\"]\n"
      "directory = \"/srv/shop\"\nuser = \"www-data\"\ngroup = \"www-data\"\noutput = \"prefix\"\n"
      "[[listen]]\nname = \"http\"\naddress = \"0.0.0.0:8000\"\nbacklog = 128\nreuseport = \"per-slot\"\n"
      "[[listen]]\naddress = \"unix:/run/shop.sock\"\nmode = \"0600\"\n"
      "[[listen]]\naddress = \":9000\"\n"
      "[[listen]]\naddress = \"[::1]:9001\"\n"
      "[env]\nAPP_ENV = \"production\"\nQUOTE = \"a\\\"b\"\n"
      "[restart]\npolicy = \"never\"\ndelay = \"250ms\"\nmax_delay = \"1m\"\nmultiplier = 1.5\n"
      "reset_after = \"1m30s\"\nburst = 10\ninterval = \"2m\"\n"
      "[ready]\nmode = \"notify\"\ntimeout = \"90s\"\nwatchdog = \"10s\"\n"
      "[stop]\nsignal = \"USR2\"\ngrace = \"20s\"\ndump_signal = \"QUIT\"\ndump_before = \"3s\"\n"
      "[reload]\nbatch = 2\n"
      "[cgroup]\nmode = \"off\"\n"
      "[recycle]\nmax_lifetime = \"24h\"\nmax_rss = \"1536MiB\"\ncheck_interval = \"30s\"\n"
      "[control]\nsocket = \"/run/shop/ctl.sock\"\n"
      "[metrics]\nlisten = \"[::1]:9100\"\n"
      "[log]\nlevel = \"error\"\nfile = \"/var/log/shop.log\"\n";
  const Config first = build(text);
  const std::string written = to_toml(first);
  const Config second = build(written);
  EXPECT_EQ(to_toml(second), written);
  EXPECT_EQ(second.command, first.command);
  EXPECT_EQ(second.env, first.env);
  EXPECT_EQ(second.output.mode, OutputMode::prefix);
  EXPECT_EQ(second.restart.multiplier, 1.5);
  EXPECT_EQ(second.restart.burst, 10);
  EXPECT_EQ(second.stop.dump_signal, SIGQUIT);
  EXPECT_EQ(second.stop.dump_before, std::chrono::seconds(3));
  EXPECT_EQ(second.cgroup.mode, CgroupMode::off);
  ASSERT_EQ(second.listeners.size(), 4u);
  EXPECT_EQ(second.listeners[0].reuseport, ReusePort::per_slot);
  EXPECT_EQ(second.listeners[2].reuseport, std::nullopt);
  EXPECT_NE(written.find("address = \"0.0.0.0:8000\"\nbacklog = 128\nreuseport = \"per-slot\"\n"), std::string::npos);
  EXPECT_FALSE(second.listeners[2].ipv6_only);
  EXPECT_TRUE(second.listeners[3].ipv6_only);
  EXPECT_EQ(second.listeners[1].mode, 0600u);
  EXPECT_EQ(second.ready.mode, ReadyMode::notify);
  EXPECT_EQ(second.ready.timeout, 90s);
  EXPECT_EQ(second.ready.watchdog, 10s);
  EXPECT_EQ(second.reload.batch, 2);
  EXPECT_EQ(second.recycle.max_lifetime, 24h);
  EXPECT_EQ(second.recycle.max_rss, 1536u << 20);
  EXPECT_EQ(second.recycle.check_interval, 30s);
  EXPECT_EQ(second.control.socket, "/run/shop/ctl.sock");
  EXPECT_EQ(second.metrics, first.metrics);
  EXPECT_NE(written.find("\n[metrics]\nlisten = \"[::1]:9100\"\n"), std::string::npos);
}

TEST(ToToml, ControlSocketNoneStaysNone) {
  const Config config = build(with_command("[control]\nsocket = \"none\"\n"));
  EXPECT_THAT(to_toml(config), ::testing::HasSubstr("\n[control]\nsocket = \"none\"\n"));
  EXPECT_FALSE(build(to_toml(config)).control.enabled);
}

TEST(ToToml, ReadyModeDurationAndSizesAreWrittenAsTheyAreRead) {
  const Config config =
      build(with_command("[ready]\nmode = \"1500ms\"\n[recycle]\nmax_rss = \"2048MiB\"\n"));
  const std::string written = to_toml(config);
  EXPECT_THAT(written, ::testing::HasSubstr("\n[ready]\nmode = \"1s500ms\"\n"));
  EXPECT_THAT(written, ::testing::HasSubstr("max_rss = \"2GiB\"\n"));
  const Config again = build(written);
  EXPECT_EQ(again.ready.mode, ReadyMode::uptime);
  EXPECT_EQ(again.ready.min_uptime, 1500ms);
  EXPECT_EQ(again.recycle.max_rss, std::uint64_t{2} << 30);
  EXPECT_THAT(to_toml(build(with_command("[recycle]\nmax_rss = \"3072KiB\"\n"))),
              ::testing::HasSubstr("max_rss = \"3MiB\"\n"));
  EXPECT_THAT(to_toml(build(with_command("[recycle]\nmax_rss = \"1025KiB\"\n"))),
              ::testing::HasSubstr("max_rss = \"1025KiB\"\n"));
}

TEST(ToToml, WorkersAutoStaysAuto) {
  const Config config = build(with_command("workers = \"auto\"\n"));
  EXPECT_THAT(to_toml(config), ::testing::HasSubstr("workers = \"auto\"\n"));
  EXPECT_EQ(build(to_toml(config)).workers, std::nullopt);
}

// ----- host checks: what only the running system can tell, reported at the key's position

// Scripted answers to the host's questions; records every question asked, in order.
class FakeHost {
 public:
  // `question` as recorded: "directory D", "program P in D", "user U", "group G", "log_file F".
  void fail(const std::string& question, std::string problem) { problems_[question] = std::move(problem); }
  const std::vector<std::string>& asked() const { return asked_; }

  HostChecks checks() {
    HostChecks checks;
    checks.directory = [this](const std::string& directory) { return answer("directory " + directory); };
    checks.program = [this](const std::string& program, const std::string& directory) {
      return answer("program " + program + " in " + directory);
    };
    checks.user = [this](const std::string& user) { return answer("user " + user); };
    checks.group = [this](const std::string& group) { return answer("group " + group); };
    checks.log_file = [this](const std::string& path, std::string_view) { return answer("log_file " + path); };
    return checks;
  }

 private:
  std::optional<std::string> answer(const std::string& question) {
    asked_.push_back(question);
    const auto it = problems_.find(question);
    return it == problems_.end() ? std::nullopt : std::optional(it->second);
  }

  std::map<std::string, std::string> problems_;
  std::vector<std::string> asked_;
};

TEST(ConfigHostChecks, EachValueIsAskedAboutOnce) {
  FakeHost host;
  const auto checks = host.checks();
  EXPECT_THAT(errors("command = [\"./srv\"]\ndirectory = \"/srv\"\nuser = \"www\"\ngroup = 33\n"
                     "[log]\nfile = \"/var/log/c.log\"\n",
                     {}, &checks),
              IsEmpty());
  EXPECT_THAT(host.asked(), ElementsAre("directory /srv", "program ./srv in /srv", "user www", "group 33",
                                        "log_file /var/log/c.log"));
}

TEST(ConfigHostChecks, NothingIsAskedAboutKeysThatAreNotSet) {
  FakeHost host;
  const auto checks = host.checks();
  EXPECT_THAT(errors("command = [\"srv\"]\n", {}, &checks), IsEmpty());
  EXPECT_THAT(host.asked(), ElementsAre("program srv in "));
}

TEST(ConfigHostChecks, ProblemsAreReportedAtThePositionOfTheirValue) {
  FakeHost host;
  host.fail("program ./nope in ", "cannot execute \"./nope\": No such file or directory");
  host.fail("user bob", "unknown user \"bob\"");
  host.fail("group staff", "unknown group \"staff\"");
  host.fail("log_file /x/c.log", "cannot open \"/x/c.log\" for appending: No such file or directory");
  const auto checks = host.checks();
  EXPECT_THAT(
      errors("command = [\"./nope\"]\nuser = \"bob\"\ngroup = \"staff\"\n[log]\nfile = \"/x/c.log\"\n", {},
             &checks),
      ElementsAre("c.toml:1:11: command: cannot execute \"./nope\": No such file or directory",
                  "c.toml:2:8: user: unknown user \"bob\"", "c.toml:3:9: group: unknown group \"staff\"",
                  "c.toml:5:8: log.file: cannot open \"/x/c.log\" for appending: No such file or directory"));
}

TEST(ConfigHostChecks, AMissingDirectoryIsReportedAndTheProgramNotLookedForInIt) {
  FakeHost host;
  host.fail("directory /nowhere", "expected an existing directory, found \"/nowhere\"");
  const auto checks = host.checks();
  EXPECT_THAT(errors("command = [\"./srv\"]\ndirectory = \"/nowhere\"\n", {}, &checks),
              ElementsAre("c.toml:2:13: directory: expected an existing directory, found \"/nowhere\""));
  EXPECT_THAT(host.asked(), ElementsAre("directory /nowhere"));
}

TEST(ConfigHostChecks, InvalidValuesAreNotAskedAboutAndNeitherIsTheProgramOfAnInvalidDirectory) {
  FakeHost host;
  const auto checks = host.checks();
  EXPECT_THAT(errors("command = [\"./srv\"]\ndirectory = 5\nuser = \"\"\n", {}, &checks),
              ElementsAre("c.toml:2:13: directory: expected a directory path, found integer 5",
                          "c.toml:3:8: user: expected a user name or uid, found \"\""));
  EXPECT_THAT(host.asked(), IsEmpty());
}

TEST(ConfigHostChecks, HostProblemsComeWithEveryOtherProblemInFileOrder) {
  FakeHost host;
  host.fail("directory /nowhere", "expected an existing directory, found \"/nowhere\"");
  host.fail("user bob", "unknown user \"bob\"");
  const auto checks = host.checks();
  EXPECT_THAT(errors("command = [\"./srv\"]\nworkers = 0\ndirectory = \"/nowhere\"\nuser = \"bob\"\n"
                     "[restart]\ndelay = 5\n",
                     {}, &checks),
              ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found 0",
                          "c.toml:3:13: directory: expected an existing directory, found \"/nowhere\"",
                          "c.toml:4:8: user: unknown user \"bob\"",
                          "c.toml:6:9: restart.delay: expected a duration with a unit such as \"5s\", found "
                          "integer 5"));
}

TEST(ConfigHostChecks, ValuesFromFlagsAreReportedAtTheFlag) {
  FakeHost host;
  host.fail("directory /nowhere", "expected an existing directory, found \"/nowhere\"");
  host.fail("log_file /x/c.log", "cannot open \"/x/c.log\" for appending: Not a directory");
  const auto checks = host.checks();
  ConfigOverrides overrides;
  overrides.sets = {"directory=/nowhere"};
  overrides.log_file = "/x/c.log";
  EXPECT_THAT(
      errors("command = [\"./srv\"]\nworkers = 0\n", overrides, &checks),
      ElementsAre("c.toml:2:11: workers: expected an integer 1-4096 or \"auto\", found 0",
                  "--set directory=/nowhere: directory: expected an existing directory, found \"/nowhere\"",
                  "--log-file: log.file: cannot open \"/x/c.log\" for appending: Not a directory"));
}

TEST(ConfigHostChecks, ProgramFromTheCommandLineIsReportedThere) {
  FakeHost host;
  host.fail("program /bin/nope in /srv", "cannot execute \"/bin/nope\": No such file or directory");
  const auto checks = host.checks();
  ConfigOverrides overrides;
  overrides.program = {"/bin/nope", "--port", "1"};
  overrides.workers = "0";
  EXPECT_THAT(errors("command = [\"./srv\"]\ndirectory = \"/srv\"\n", overrides, &checks),
              ElementsAre("--workers: workers: expected an integer 1-4096 or \"auto\", found 0",
                          "command line: command: cannot execute \"/bin/nope\": No such file or directory"));
}

TEST(ConfigHostChecks, WithoutAFileProblemsNameTheFlags) {
  FakeHost host;
  host.fail("program nope in ", "cannot execute \"nope\": No such file or directory (searched PATH)");
  host.fail("log_file /x/c.log", "cannot open \"/x/c.log\" for appending: Not a directory");
  const auto checks = host.checks();
  ConfigOverrides overrides;
  overrides.program = {"nope"};
  overrides.log_file = "/x/c.log";
  const auto result = build_config(std::nullopt, overrides, &checks);
  ASSERT_FALSE(result);
  std::vector<std::string> lines;
  for (const auto& diagnostic : result.error()) {
    lines.push_back(diagnostic.to_string());
  }
  EXPECT_THAT(
      lines,
      ElementsAre(
          "--log-file: log.file: cannot open \"/x/c.log\" for appending: Not a directory",
          "command line: command: cannot execute \"nope\": No such file or directory (searched PATH)"));
}

TEST(ConfigHostChecks, AnEmptyCheckIsSkipped) {
  HostChecks checks;
  checks.user = [](const std::string& user) { return std::optional("unknown user \"" + user + "\""); };
  EXPECT_THAT(errors("command = [\"./srv\"]\ndirectory = \"/nowhere\"\nuser = \"bob\"\n", {}, &checks),
              ElementsAre("c.toml:3:8: user: unknown user \"bob\""));
}

TEST(ConfigHostChecks, LoadConfigPassesTheChecksOn) {
  FakeHost host;
  host.fail("program /bin/sleep in ", "cannot execute \"/bin/sleep\": Permission denied");
  const auto checks = host.checks();
  const auto path =
      (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "config" / "clusterd.toml")
          .string();
  const auto config = load_config(path, {}, &checks);
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  EXPECT_EQ(config.error().front().key, "command");
  EXPECT_EQ(config.error().front().file, path);
  EXPECT_GT(config.error().front().line, 0);
}

// ----- files

std::filesystem::path source_root() {
  // tests/unit/config_test.cpp → the repository root; CMake compiles with absolute paths.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

TEST(LoadConfig, ShippedExampleIsValid) {
  const auto path = (source_root() / "config" / "clusterd.toml").string();
  const auto config = load_config(path, {});
  ASSERT_TRUE(config) << config.error().front().to_string();
  EXPECT_EQ(config->command.front(), "/bin/sleep");
  EXPECT_EQ(config->file, path);
  // Nothing in it differs from the defaults except what an example must show.
  EXPECT_EQ(config->workers, std::nullopt);
  EXPECT_EQ(config->restart.delay, 100ms);
  EXPECT_EQ(config->stop.grace, 30s);
  EXPECT_EQ(config->ready.mode, ReadyMode::exec);
  EXPECT_EQ(config->ready.timeout, 60s);
  EXPECT_EQ(config->ready.watchdog, std::nullopt);
  EXPECT_EQ(config->reload.batch, 1);
  EXPECT_EQ(config->recycle.max_lifetime, std::nullopt);
  EXPECT_EQ(config->recycle.max_rss, std::nullopt);
  EXPECT_EQ(config->recycle.check_interval, 10s);
}

TEST(LoadConfig, MissingFileIsADiagnostic) {
  const auto config = load_config(std::string("/nonexistent/clusterd.toml"), {});
  ASSERT_FALSE(config);
  EXPECT_THAT(config.error().front().to_string(),
              "/nonexistent/clusterd.toml: cannot read config file: No such file or directory");
}

TEST(LoadConfig, DirectoryIsADiagnostic) {
  const auto config = load_config(source_root().string(), {});
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().front().to_string(),
            source_root().string() + ": cannot read config file: Is a directory");
}

// ----- small parts

TEST(DiagnosticToString, OmitsWhatIsNotKnown) {
  EXPECT_EQ((Diagnostic{"c.toml", 12, 11, "workers", "expected x, found y"}.to_string()),
            "c.toml:12:11: workers: expected x, found y");
  EXPECT_EQ((Diagnostic{"--workers", 0, 0, "workers", "m"}.to_string()), "--workers: workers: m");
  EXPECT_EQ((Diagnostic{"c.toml", 3, 1, "", "syntax"}.to_string()), "c.toml:3:1: syntax");
}

TEST(Signals, ParseNamesAndNumbers) {
  EXPECT_EQ(parse_signal("TERM"), SIGTERM);
  EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(parse_signal("int"), SIGINT);
  EXPECT_EQ(parse_signal("15"), SIGTERM);
  EXPECT_EQ(parse_signal("40"), 40);
  EXPECT_EQ(parse_signal("0"), std::nullopt);
  EXPECT_EQ(parse_signal("65"), std::nullopt);
  EXPECT_EQ(parse_signal("SIG"), std::nullopt);
  EXPECT_EQ(parse_signal(""), std::nullopt);
  EXPECT_EQ(parse_signal("TERMINATE"), std::nullopt);
}

TEST(Signals, NamesRoundTrip) {
  EXPECT_EQ(signal_name(SIGTERM), "TERM");
  EXPECT_EQ(signal_name(SIGUSR2), "USR2");
  EXPECT_EQ(signal_name(40), "40");
  for (int signal = 1; signal <= 64; ++signal) {
    EXPECT_EQ(parse_signal(signal_name(signal)), signal);
  }
}

// ----- inherit_env: which of clusterd's variables reach the workers

TEST(ConfigInheritEnv, DefaultPassesEverything) {
  EXPECT_EQ(build(command_line).inherit_env, std::nullopt);
  EXPECT_EQ(build(with_command("inherit_env = true\n")).inherit_env, std::nullopt);
}

TEST(ConfigInheritEnv, FalsePassesNothingAndAListOnlyItsNames) {
  EXPECT_EQ(build(with_command("inherit_env = false\n")).inherit_env, std::vector<std::string>{});
  EXPECT_EQ(build(with_command("inherit_env = []\n")).inherit_env, std::vector<std::string>{});
  EXPECT_EQ(build(with_command("inherit_env = [\"PATH\", \"LANG\"]\n")).inherit_env,
            (std::vector<std::string>{"PATH", "LANG"}));
}

TEST(ConfigInheritEnv, BadValuesAreReportedAtTheElement) {
  EXPECT_THAT(errors(with_command("inherit_env = \"PATH\"\n")),
              ElementsAre("c.toml:2:15: inherit_env: expected true, false or an array of variable names, "
                          "found string \"PATH\""));
  EXPECT_THAT(
      errors(with_command("inherit_env = [\"PATH\", \"1X\", \"NOTIFY_SOCKET\", \"PATH\", 3]\n")),
      ElementsAre("c.toml:2:24: inherit_env[1]: expected a variable name of A-Za-z0-9_ not starting with a "
                  "digit, found \"1X\"",
                  "c.toml:2:30: inherit_env[2]: expected a variable that clusterd does not set or remove, "
                  "found \"NOTIFY_SOCKET\"",
                  "c.toml:2:47: inherit_env[3]: expected each name once, found \"PATH\" again",
                  "c.toml:2:55: inherit_env[4]: expected a variable name, found integer 3"));
}

TEST(ConfigInheritEnv, SetFlagTakesATomlValue) {
  ConfigOverrides overrides;
  overrides.sets = {"inherit_env=[\"LANG\"]"};
  EXPECT_EQ(build(with_command("inherit_env = false\n"), overrides).inherit_env,
            std::vector<std::string>{"LANG"});
  overrides.sets = {"inherit_env=false"};
  EXPECT_EQ(build(command_line, overrides).inherit_env, std::vector<std::string>{});
}

TEST(ConfigInheritEnv, ToTomlRoundTrips) {
  for (const std::string value : {"true", "false", "[\"PATH\", \"LANG\"]"}) {
    const std::string text = to_toml(build(with_command("inherit_env = " + value + "\n")));
    EXPECT_NE(text.find("\ninherit_env = " + value + "\n"), std::string::npos) << text;
    EXPECT_EQ(to_toml(build(text)), text);
  }
}

// ----- relative paths: from the config file's directory, or from the working directory for flags

// Builds `text` as the file at `path`, with clusterd's working directory `cwd`.
tl::expected<Config, Diagnostics> build_at(const std::string& path, std::string_view text, const std::string& cwd,
                                           const ConfigOverrides& overrides = {}) {
  HostChecks host;
  host.working_directory = [cwd] { return cwd; };
  return build_config(ConfigText{path, std::string(text)}, overrides, &host);
}

constexpr std::string_view relative_paths =
    "command = [\"./srv\"]\n"
    "directory = \"data\"\n"
    "[[listen]]\n"
    "address = \"unix:sock/./app.sock\"\n"
    "[log]\n"
    "file = \"logs//c.log\"\n";

TEST(ConfigPaths, RelativePathsInTheFileAreTakenFromItsDirectory) {
  const auto config = build_at("/etc/shop/clusterd.toml", relative_paths, "/");
  ASSERT_TRUE(config) << config.error().front().to_string();
  EXPECT_EQ(config->directory, "/etc/shop/data");
  EXPECT_EQ(config->listeners.at(0).address.path, "/etc/shop/sock/app.sock");
  EXPECT_EQ(config->log.file, "/etc/shop/logs/c.log");
  // The program is found from `directory`, as documented: it stays as written.
  EXPECT_EQ(config->command.front(), "./srv");
}

TEST(ConfigPaths, ARelativeConfigFileIsTakenFromTheWorkingDirectory) {
  const auto config = build_at("conf/../shop/c.toml", relative_paths, "/srv");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->directory, "/srv/conf/../shop/data");
  const auto bare = build_at("c.toml", relative_paths, "/srv");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->log.file, "/srv/logs/c.log");
}

TEST(ConfigPaths, AbsolutePathsAreKept) {
  const auto config = build_at("/etc/c.toml",
                               "command = [\"srv\"]\ndirectory = \"/var/lib/shop\"\n[log]\nfile = \"/var/log/c.log\"\n",
                               "/");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->directory, "/var/lib/shop");
  EXPECT_EQ(config->log.file, "/var/log/c.log");
}

TEST(ConfigPaths, PathsFromFlagsAreTakenFromTheWorkingDirectory) {
  ConfigOverrides overrides;
  overrides.sets = {"directory=work"};
  overrides.log_file = "c.log";
  overrides.listen = {"unix:app.sock"};
  const auto config = build_at("/etc/shop/c.toml", relative_paths, "/home/op", overrides);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->directory, "/home/op/work");
  EXPECT_EQ(config->log.file, "/home/op/c.log");
  EXPECT_EQ(config->listeners.at(0).address.path, "/home/op/app.sock");
}

TEST(ConfigPaths, WithoutAWorkingDirectoryFlagPathsStayRelative) {
  ConfigOverrides overrides;
  overrides.log_file = "c.log";
  overrides.program = {"./srv"};
  const auto config = build_config(std::nullopt, overrides);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->log.file, "c.log");
}

TEST(ConfigPaths, AUnixPathTooLongOnceAbsoluteIsRefused) {
  const std::string directory = "/" + std::string(90, 'd');
  const auto config =
      build_at(directory + "/c.toml", "command = [\"srv\"]\n[[listen]]\naddress = \"unix:" + std::string(20, 's') + "\"\n",
               "/");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().front().to_string(),
            directory + "/c.toml:3:11: listen[0].address: unix socket path is 112 bytes as an absolute path (\"" +
                directory + "/" + std::string(20, 's') + "\"), the limit is 107");
}

TEST(ConfigPaths, HostChecksAreAskedAboutTheAbsolutePaths) {
  std::vector<std::string> asked;
  HostChecks host;
  host.working_directory = [] { return std::string("/"); };
  host.directory = [&asked](const std::string& d) {
    asked.push_back("directory " + d);
    return std::optional<std::string>();
  };
  host.program = [&asked](const std::string& p, const std::string& d) {
    asked.push_back("program " + p + " in " + d);
    return std::optional<std::string>();
  };
  host.log_file = [&asked](const std::string& f, std::string_view) {
    asked.push_back("log_file " + f);
    return std::optional<std::string>();
  };
  ASSERT_TRUE(build_config(ConfigText{"/etc/shop/c.toml", std::string(relative_paths)}, {}, &host));
  EXPECT_THAT(asked, ElementsAre("directory /etc/shop/data", "program ./srv in /etc/shop/data",
                                 "log_file /etc/shop/logs/c.log"));
}

// ----- warnings: valid, but unsafe as root

struct WarningHost {
  unsigned euid = 0;
  std::map<std::string, unsigned> uids{{"nobody", 65534}, {"root", 0}};
  std::vector<std::string> output_files{"stderr (/var/log/c.err)"};

  HostChecks checks() const {
    HostChecks checks;
    checks.effective_uid = [this] { return euid; };
    checks.user_uid = [this](const std::string& user) -> std::optional<unsigned> {
      const auto it = uids.find(user);
      return it == uids.end() ? std::nullopt : std::optional(it->second);
    };
    checks.regular_output_files = [this] { return output_files; };
    return checks;
  }
};

std::vector<std::string> warnings(std::string_view text, const WarningHost& fake,
                                  const ConfigOverrides& overrides = {}) {
  const auto host = fake.checks();
  const auto config = build_config(ConfigText{"c.toml", std::string(text)}, overrides, &host);
  EXPECT_TRUE(config) << (config ? "" : config.error().front().to_string());
  return config ? config->warnings : std::vector<std::string>{};
}

TEST(ConfigWarnings, GroupWithoutUserAsRootSaysWorkersRunAsRoot) {
  EXPECT_THAT(warnings(with_command("group = \"nogroup\"\n"), WarningHost{}),
              ElementsAre("c.toml:2:9: group: workers run as root (uid 0, every capability): group without user "
                          "changes only the gid; set user as well, for example user = \"nobody\""));
  ConfigOverrides overrides;
  overrides.sets = {"group=nogroup"};
  EXPECT_THAT(warnings(command_line, WarningHost{}, overrides),
              ElementsAre("--set group=nogroup: group: workers run as root (uid 0, every capability): group "
                          "without user changes only the gid; set user as well, for example user = \"nobody\""));
}

TEST(ConfigWarnings, GroupWithUserOrNotAsRootIsNoWarning) {
  WarningHost fake;
  fake.output_files.clear();
  EXPECT_THAT(warnings(with_command("group = \"nogroup\"\nuser = \"nobody\"\n"), fake), IsEmpty());
  fake.euid = 1000;
  EXPECT_THAT(warnings(with_command("group = \"nogroup\"\n"), fake), IsEmpty());
}

TEST(ConfigWarnings, OutputFilesInheritedByAnotherUser) {
  const std::string warning =
      "output: workers run as user \"nobody\" and inherit clusterd's stderr (/var/log/c.err) open for writing "
      "(output = \"inherit\"), so they can truncate or overwrite it; set output = \"prefix\", or give clusterd a "
      "pipe or the journal as stdout and stderr rather than a file (log.file moves only clusterd's own log)";
  EXPECT_THAT(warnings(with_command("user = \"nobody\"\n"), WarningHost{}), ElementsAre("c.toml:2:8: " + warning));
  EXPECT_THAT(warnings(with_command("user = \"nobody\"\noutput = \"inherit\"\n"), WarningHost{}),
              ElementsAre("c.toml:3:10: " + warning));
}

TEST(ConfigWarnings, BothStreamsAreNamed) {
  WarningHost fake;
  fake.output_files = {"stdout (/x)", "stderr (/x)"};
  const auto found = warnings(with_command("user = \"nobody\"\n"), fake);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found.front().find("inherit clusterd's stdout (/x) and stderr (/x) open for writing"), std::string::npos);
}

TEST(ConfigWarnings, NoOutputWarningForPrefixTheSameUserOrNoFile) {
  EXPECT_THAT(warnings(with_command("user = \"nobody\"\noutput = \"prefix\"\n"), WarningHost{}), IsEmpty());
  EXPECT_THAT(warnings(with_command("user = \"root\"\n"), WarningHost{}), IsEmpty());
  WarningHost pipes;
  pipes.output_files.clear();
  EXPECT_THAT(warnings(with_command("user = \"nobody\"\n"), pipes), IsEmpty());
}

}  // namespace
}  // namespace clusterd
