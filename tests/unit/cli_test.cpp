// The command line: where PROGRAM starts, subcommands with options before and after them,
// --help/--version, and the text of usage errors.
#include "cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "version.h"

namespace clusterd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

CliOptions options(const std::vector<std::string>& args) {
  auto result = parse_cli(args);
  if (auto* exit = std::get_if<CliExit>(&result)) {
    ADD_FAILURE() << "unexpected exit " << exit->code << ": " << exit->text;
    return {};
  }
  return std::get<CliOptions>(result);
}

CliExit exit_of(const std::vector<std::string>& args) {
  auto result = parse_cli(args);
  if (auto* exit = std::get_if<CliExit>(&result)) {
    return *exit;
  }
  ADD_FAILURE() << "parsed without an exit";
  return {};
}

std::string usage_error(const std::string& line) {
  return "clusterd: " + line + "\nrun 'clusterd --help' for usage\n";
}

// ----- PROGRAM ends the options

TEST(CliProgram, OptionsAfterProgramBelongToTheWorkers) {
  const auto parsed = options({"-w", "2", "./srv", "--port", "1", "-w", "9"});
  EXPECT_EQ(parsed.command, Command::run);
  EXPECT_EQ(parsed.overrides.workers, "2");
  EXPECT_THAT(parsed.overrides.program, ElementsAre("./srv", "--port", "1", "-w", "9"));
}

TEST(CliProgram, DoubleDashBeforeAProgramStartingWithADash) {
  const auto parsed = options({"-w", "2", "--", "-srv", "-w", "3"});
  EXPECT_EQ(parsed.overrides.workers, "2");
  EXPECT_THAT(parsed.overrides.program, ElementsAre("-srv", "-w", "3"));
}

TEST(CliProgram, DoubleDashBeforeAProgramNamedLikeASubcommand) {
  const auto parsed = options({"--", "check", "x"});
  EXPECT_EQ(parsed.command, Command::run);
  EXPECT_THAT(parsed.overrides.program, ElementsAre("check", "x"));
}

TEST(CliProgram, DoubleDashAfterProgramIsTheProgramsOwn) {
  const auto parsed = options({"./srv", "--", "x"});
  EXPECT_THAT(parsed.overrides.program, ElementsAre("./srv", "--", "x"));
}

TEST(CliProgram, WordsAfterProgramAreNotSubcommands) {
  const auto parsed = options({"./srv", "check", "status"});
  EXPECT_EQ(parsed.command, Command::run);
  EXPECT_THAT(parsed.overrides.program, ElementsAre("./srv", "check", "status"));
}

TEST(CliProgram, NoProgramIsLeftToTheConfig) {
  const auto parsed = options({"-c", "shop.toml"});
  EXPECT_EQ(parsed.command, Command::run);
  EXPECT_EQ(parsed.config_file, "shop.toml");
  EXPECT_THAT(parsed.overrides.program, IsEmpty());
}

TEST(CliProgram, RepeatableOptionsTakeOneValueEach) {
  const auto parsed =
      options({"-l", "http=:80", "--listen", "unix:/tmp/a.sock", "--set", "a=1", "--set=b=2", "./srv"});
  EXPECT_THAT(parsed.overrides.listen, ElementsAre("http=:80", "unix:/tmp/a.sock"));
  EXPECT_THAT(parsed.overrides.sets, ElementsAre("a=1", "b=2"));
  EXPECT_THAT(parsed.overrides.program, ElementsAre("./srv"));
}

TEST(CliProgram, EveryConfigFlagIsRecorded) {
  const auto parsed = options({"--workers=3", "--ready", "notify", "--ready-timeout", "2m", "--grace", "5s",
                               "--stop-signal", "INT", "--name", "shop", "--log-level", "debug", "--log-file",
                               "/tmp/l", "--output", "prefix", "./srv"});
  EXPECT_EQ(parsed.overrides.workers, "3");
  EXPECT_EQ(parsed.overrides.ready, "notify");
  EXPECT_EQ(parsed.overrides.ready_timeout, "2m");
  EXPECT_EQ(parsed.overrides.grace, "5s");
  EXPECT_EQ(parsed.overrides.stop_signal, "INT");
  EXPECT_EQ(parsed.overrides.name, "shop");
  EXPECT_EQ(parsed.overrides.log_level, "debug");
  EXPECT_EQ(parsed.overrides.log_file, "/tmp/l");
  EXPECT_EQ(parsed.overrides.output, "prefix");
}

TEST(CliProgram, ReadyTakesAnyModeAsTextForTheConfigToJudge) {
  // Whether "2s" or "sometimes" is a mode is config's question (build_config), asked with the file.
  EXPECT_EQ(options({"--ready", "2s", "./srv"}).overrides.ready, "2s");
  EXPECT_EQ(options({"--ready=sometimes", "./srv"}).overrides.ready, "sometimes");
  EXPECT_EQ(options({"check", "--ready-timeout=0s"}).overrides.ready_timeout, "0s");
  EXPECT_EQ(options({"./srv"}).overrides.ready, std::nullopt);
}

TEST(CliProgram, AttachedShortValueAndLastRepeatWins) {
  EXPECT_EQ(options({"-w4", "./srv"}).overrides.workers, "4");
  EXPECT_EQ(options({"-w", "1", "-w", "2", "./srv"}).overrides.workers, "2");
}

// ----- check

TEST(CliCheck, TakesOptionsBeforeAndAfterAndAProgram) {
  const auto parsed = options({"-w", "2", "check", "-c", "x.toml", "./srv", "--port", "1"});
  EXPECT_EQ(parsed.command, Command::check);
  EXPECT_EQ(parsed.overrides.workers, "2");
  EXPECT_EQ(parsed.config_file, "x.toml");
  EXPECT_THAT(parsed.overrides.program, ElementsAre("./srv", "--port", "1"));
}

TEST(CliCheck, ProgramIsOptional) {
  const auto parsed = options({"check"});
  EXPECT_EQ(parsed.command, Command::check);
  EXPECT_THAT(parsed.overrides.program, IsEmpty());
}

TEST(CliCheck, DoubleDashProgram) {
  const auto parsed = options({"check", "--", "check", "-x"});
  EXPECT_EQ(parsed.command, Command::check);
  EXPECT_THAT(parsed.overrides.program, ElementsAre("check", "-x"));
}

// ----- client subcommands

TEST(CliClient, JsonBeforeOrAfterTheSubcommand) {
  EXPECT_TRUE(options({"status", "--json"}).json);
  const auto parsed = options({"--json", "status"});
  EXPECT_EQ(parsed.command, Command::status);
  EXPECT_TRUE(parsed.json);
}

TEST(CliClient, PssOnlyForStatus) {
  EXPECT_TRUE(options({"status", "--pss"}).pss);
  EXPECT_TRUE(options({"--pss", "status", "--json"}).pss);
  EXPECT_FALSE(options({"status"}).pss);
  EXPECT_EQ(exit_of({"stop", "--pss"}).text, usage_error("--pss: only for status, not stop"));
  EXPECT_EQ(exit_of({"--pss", "./srv"}).text, usage_error("--pss: only for status, not run"));
  EXPECT_THAT(exit_of({"status", "--help"}).text, HasSubstr("--pss"));
}

TEST(CliClient, FindTheInstanceByConfigControlOrName) {
  const auto by_config = options({"-c", "shop.toml", "reload"});
  EXPECT_EQ(by_config.command, Command::reload);
  EXPECT_EQ(by_config.config_file, "shop.toml");
  const auto by_control = options({"stop", "--control", "/run/x.sock", "--json"});
  EXPECT_EQ(by_control.command, Command::stop);
  EXPECT_EQ(by_control.control, "/run/x.sock");
  EXPECT_TRUE(by_control.json);
  EXPECT_EQ(options({"status", "--name", "shop"}).overrides.name, "shop");
}

TEST(CliRun, ControlIsTheControlSocketOverride) {
  const auto run = options({"--control", "/run/x.sock", "./srv"});
  EXPECT_EQ(run.command, Command::run);
  EXPECT_EQ(run.overrides.control, "/run/x.sock");
  EXPECT_EQ(run.control, std::nullopt);
  const auto check = options({"check", "--control", "none", "./srv"});
  EXPECT_EQ(check.command, Command::check);
  EXPECT_EQ(check.overrides.control, "none");
  EXPECT_THAT(check.overrides.program, ElementsAre("./srv"));
}

TEST(CliClient, ControlNoneNamesNoInstance) {
  EXPECT_EQ(exit_of({"status", "--control", "none"}).text,
            usage_error("status: --control none names no instance to ask; give the socket's path"));
}

TEST(CliClient, ScaleTakesACount) {
  const auto parsed = options({"scale", "3", "--json"});
  EXPECT_EQ(parsed.command, Command::scale);
  EXPECT_EQ(parsed.scale_to, "3");
  EXPECT_TRUE(parsed.json);
  EXPECT_EQ(options({"--json", "scale", "4096"}).scale_to, "4096");
}

// ----- help and version

TEST(CliExitText, VersionNamesTheCommit) {
  const auto exit = exit_of({"--version"});
  EXPECT_EQ(exit.code, 0);
  EXPECT_EQ(exit.text, std::string("clusterd ") + version + " (commit " + git_commit + ")\n");
  EXPECT_THAT(exit.text, StartsWith("clusterd 0.1.0 (commit "));
}

TEST(CliExitText, HelpShowsTheUsageLines) {
  const auto exit = exit_of({"--help"});
  EXPECT_EQ(exit.code, 0);
  EXPECT_THAT(exit.text, HasSubstr("clusterd [OPTIONS] [--] PROGRAM [ARG...]"));
  EXPECT_THAT(exit.text, HasSubstr("--workers"));
  EXPECT_THAT(exit.text, HasSubstr("--set"));
  EXPECT_THAT(exit.text, HasSubstr("--ready MODE"));
  EXPECT_THAT(exit.text, HasSubstr("--ready-timeout DURATION"));
  EXPECT_EQ(exit_of({"-h"}).code, 0);
}

TEST(CliExitText, HelpOfASubcommandListsTheOptionsItTakes) {
  for (const char* command : {"status", "reload", "scale", "restart", "stop", "upgrade"}) {
    const auto exit = exit_of({command, "--help"});
    EXPECT_EQ(exit.code, 0);
    EXPECT_THAT(exit.text, HasSubstr(std::string("Usage: clusterd ") + command));
    for (const char* option : {"--json", "--name NAME", "--control PATH", "-c,--config FILE"}) {
      EXPECT_THAT(exit.text, HasSubstr(option)) << command;
    }
  }
  EXPECT_THAT(exit_of({"scale", "--help"}).text, HasSubstr("Sets the worker count to N (1-4096), or changes it by N"));
  EXPECT_THAT(exit_of({"ls", "--help"}).text, HasSubstr("--json"));
  EXPECT_THAT(exit_of({"upgrade", "--help"}).text, HasSubstr("  --binary PATH "));
  EXPECT_THAT(exit_of({"check", "--help"}).text, HasSubstr("--workers"));
}

TEST(CliUsageError, AMistypedOptionGetsADidYouMean) {
  EXPECT_EQ(exit_of({"status", "--jsn"}).text, usage_error("--jsn: unknown option; did you mean --json?"));
  EXPECT_EQ(exit_of({"--workrs", "2", "./srv"}).text, usage_error("--workrs: unknown option; did you mean --workers?"));
  EXPECT_EQ(exit_of({"--frobnicate", "./srv"}).text, usage_error("--frobnicate: unknown option"));
}

TEST(CliCommands, RestartAndRelativeScale) {
  EXPECT_EQ(options({"restart", "2"}).restart_slot, "2");
  EXPECT_EQ(options({"restart", "all"}).command, Command::restart);
  EXPECT_EQ(options({"scale", "+2"}).scale_to, "+2");
  EXPECT_EQ(options({"scale", "-1"}).scale_to, "-1");
  EXPECT_EQ(options({"ls", "--json"}).command, Command::ls);
  EXPECT_EQ(exit_of({"restart"}).text, usage_error("restart: expected a slot number 0-4095 or all, found nothing"));
  EXPECT_EQ(exit_of({"restart", "x"}).text, usage_error("restart: expected a slot number 0-4095 or all, found \"x\""));
}

TEST(CliCommands, UpgradeTakesAnAbsoluteBinaryPath) {
  EXPECT_EQ(options({"upgrade"}).command, Command::upgrade);
  EXPECT_EQ(options({"upgrade"}).upgrade_binary, std::nullopt);
  EXPECT_EQ(options({"upgrade", "--binary", "/usr/bin/clusterd"}).upgrade_binary, "/usr/bin/clusterd");
  EXPECT_EQ(exit_of({"upgrade", "--binary", "clusterd"}).text,
            usage_error("upgrade: expected nothing or the binary's absolute path, found \"clusterd\""));
}

// ----- usage errors

TEST(CliUsageError, OptionWithoutItsValue) {
  const auto exit = exit_of({"-w"});
  EXPECT_EQ(exit.code, 2);
  EXPECT_EQ(exit.text, usage_error("--workers: expected a value"));
}

TEST(CliUsageError, OptionWithoutItsValueBeforeDoubleDash) {
  EXPECT_EQ(exit_of({"--grace", "--", "./srv"}).text, usage_error("--grace: expected a value"));
}

TEST(CliUsageError, UnknownOptionBeforeProgram) {
  EXPECT_EQ(exit_of({"--bogus", "-w", "2", "./srv"}).text, usage_error("--bogus: unknown option"));
  EXPECT_EQ(exit_of({"--bogus=3", "./srv"}).text, usage_error("--bogus: unknown option"));
  EXPECT_EQ(exit_of({"check", "-x"}).text, usage_error("-x: unknown option"));
}

TEST(CliUsageError, ReadyFlagsWithoutTheirValue) {
  EXPECT_EQ(exit_of({"--ready"}).text, usage_error("--ready: expected a value"));
  EXPECT_EQ(exit_of({"--ready-timeout", "--", "./srv"}).text,
            usage_error("--ready-timeout: expected a value"));
}

TEST(CliUsageError, ClientOptionsWithRunOrCheck) {
  EXPECT_EQ(exit_of({"--json", "./srv"}).text,
            usage_error("--json: only for status, reload, scale, restart, stop, metrics, ls, top, logs and upgrade"));
}

TEST(CliUsageError, ConfigOptionsWithAClientSubcommand) {
  EXPECT_EQ(exit_of({"status", "-w", "2"}).text,
            usage_error("--workers: only for run and check, not status"));
  EXPECT_EQ(exit_of({"--set", "a=1", "stop"}).text, usage_error("--set: only for run and check, not stop"));
  EXPECT_EQ(exit_of({"reload", "--ready", "notify"}).text,
            usage_error("--ready: only for run and check, not reload"));
  EXPECT_EQ(exit_of({"--ready-timeout", "5s", "status"}).text,
            usage_error("--ready-timeout: only for run and check, not status"));
}

TEST(CliUsageError, StrayArgumentsOfAClientSubcommand) {
  EXPECT_EQ(exit_of({"status", "foo"}).text, usage_error("status: unexpected argument \"foo\""));
  EXPECT_EQ(exit_of({"reload", "--", "x"}).text, usage_error("reload: unexpected argument \"x\""));
  EXPECT_EQ(exit_of({"status", "stop"}).text, usage_error("status: unexpected argument \"stop\""));
  EXPECT_EQ(exit_of({"scale", "3", "4"}).text, usage_error("scale: unexpected argument \"4\""));
}

TEST(CliUsageError, ScaleWithoutAValidCount) {
  const std::string expected = "scale: expected a worker count 1-4096, or +N or -N to change it by N, found ";
  EXPECT_EQ(exit_of({"scale"}).text, usage_error(expected + "nothing"));
  EXPECT_EQ(exit_of({"scale", "many"}).text, usage_error(expected + "\"many\""));
  EXPECT_EQ(exit_of({"scale", "0"}).text, usage_error(expected + "\"0\""));
  EXPECT_EQ(exit_of({"scale", "4097"}).text, usage_error(expected + "\"4097\""));
}

TEST(CliUsageError, FlagGivenAValue) {
  EXPECT_EQ(exit_of({"status", "--json=maybe"}).text, usage_error("--json: takes no value"));
}

TEST(CliTop, IntervalDefaultsToOneSecond) {
  const auto parsed = options({"top"});
  EXPECT_EQ(parsed.command, Command::top);
  EXPECT_EQ(parsed.interval, std::chrono::seconds(1));
  EXPECT_EQ(options({"top", "--interval", "250ms", "--name", "shop"}).interval, std::chrono::milliseconds(250));
  EXPECT_EQ(options({"--interval", "100ms", "top"}).interval, std::chrono::milliseconds(100));
}

TEST(CliTop, IntervalBelowTheMinimumOrNotADuration) {
  EXPECT_EQ(exit_of({"top", "--interval", "50ms"}).text,
            usage_error("--interval 50ms: below the minimum of 100ms; give 100ms or more"));
  EXPECT_EQ(exit_of({"top", "--interval", "1"}).text,
            usage_error("--interval 1: expected a duration such as 1s or 250ms"));
}

TEST(CliTop, IntervalOnlyForTopAndJsonNotForTop) {
  EXPECT_EQ(exit_of({"status", "--interval", "1s"}).text, usage_error("--interval: only for top"));
  EXPECT_EQ(exit_of({"--interval", "1s", "./srv"}).text, usage_error("--interval: only for top"));
  EXPECT_EQ(exit_of({"top", "--json"}).text,
            usage_error("--json: top draws a live view for people; for JSON use 'clusterd status --json'"));
}

TEST(CliTop, HelpListsTheKeysAndOptions) {
  const auto exit = exit_of({"top", "--help"});
  EXPECT_EQ(exit.code, 0);
  EXPECT_THAT(exit.text, HasSubstr("Usage: clusterd top [--interval DURATION]"));
  EXPECT_THAT(exit.text, HasSubstr("--interval DURATION"));
  EXPECT_THAT(exit.text, HasSubstr("--control PATH"));
  EXPECT_THAT(exit.text, HasSubstr("R, a slot number, y"));
  EXPECT_THAT(exit.text, Not(HasSubstr("--json")));
}

}  // namespace
}  // namespace clusterd
