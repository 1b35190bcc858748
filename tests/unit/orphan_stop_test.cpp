// The stop of the processes re-parented to clusterd: nothing before the stop, the stop signal
// once, SIGKILL once when the grace ends (at once after a quick stop), and how long clusterd waits.
#include "orphan_stop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

namespace clusterd {

bool operator==(const OrphanSignal& a, const OrphanSignal& b) { return a.pid == b.pid && a.signal == b.signal; }

namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const TimePoint t0{};

TEST(OrphanStop, NothingHappensToOrphansBeforeTheStop) {
  OrphanStop stop;
  EXPECT_FALSE(stop.begun());
  EXPECT_THAT(stop.signals_for({100, 101}, t0), IsEmpty());
  EXPECT_EQ(stop.next_deadline(t0, true), std::nullopt);
}

TEST(OrphanStop, StopSignalOnceThenSigkillWhenTheGraceEnds) {
  OrphanStop stop;
  stop.begin(t0, 2s, SIGTERM);
  EXPECT_THAT(stop.signals_for({100}, t0), ElementsAre(OrphanSignal{100, SIGTERM}));
  EXPECT_THAT(stop.signals_for({100}, t0 + 1s), IsEmpty());
  // One found later in the grace gets the stop signal then.
  EXPECT_THAT(stop.signals_for({100, 101}, t0 + 1s), ElementsAre(OrphanSignal{101, SIGTERM}));
  EXPECT_EQ(stop.next_deadline(t0 + 1s, true), t0 + 2s);
  EXPECT_THAT(stop.signals_for({100, 101}, t0 + 2s - 1ms), IsEmpty());
  EXPECT_THAT(stop.signals_for({100, 101}, t0 + 2s),
              ElementsAre(OrphanSignal{100, SIGKILL}, OrphanSignal{101, SIGKILL}));
  EXPECT_THAT(stop.signals_for({100, 101}, t0 + 3s), IsEmpty());
}

TEST(OrphanStop, TheConfiguredStopSignalIsUsed) {
  OrphanStop stop;
  stop.begin(t0, 2s, SIGQUIT);
  EXPECT_THAT(stop.signals_for({7}, t0), ElementsAre(OrphanSignal{7, SIGQUIT}));
}

TEST(OrphanStop, OneFoundAfterTheGraceIsKilledAtOnce) {
  OrphanStop stop;
  stop.begin(t0, 1s, SIGTERM);
  EXPECT_THAT(stop.signals_for({300}, t0 + 5s), ElementsAre(OrphanSignal{300, SIGKILL}));
}

TEST(OrphanStop, AQuickStopAfterAGracefulOneKillsNow) {
  OrphanStop stop;
  stop.begin(t0, 30s, SIGTERM);
  EXPECT_THAT(stop.signals_for({100}, t0), ElementsAre(OrphanSignal{100, SIGTERM}));
  stop.begin(t0 + 1s, 0s, SIGTERM);
  EXPECT_THAT(stop.signals_for({100}, t0 + 1s), ElementsAre(OrphanSignal{100, SIGKILL}));
  stop.begin(t0 + 2s, 30s, SIGTERM);  // never pushed back
  EXPECT_EQ(stop.next_deadline(t0 + 2s, true), std::nullopt);
}

TEST(OrphanStop, AReapedPidThatComesBackIsAnotherProcess) {
  OrphanStop stop;
  stop.begin(t0, 2s, SIGTERM);
  EXPECT_THAT(stop.signals_for({100}, t0), ElementsAre(OrphanSignal{100, SIGTERM}));
  EXPECT_THAT(stop.signals_for({}, t0 + 1s), IsEmpty());
  EXPECT_THAT(stop.signals_for({100}, t0 + 1s), ElementsAre(OrphanSignal{100, SIGTERM}));
}

TEST(OrphanStop, ExitWaitsUntilTheGraceAndTheKillWaitThenGivesUp) {
  OrphanStop stop;
  stop.begin(t0, 2s, SIGTERM);
  stop.exit_wanted(t0 + 1s, 2s, SIGTERM);
  EXPECT_TRUE(stop.exiting());
  EXPECT_EQ(stop.next_deadline(t0 + 1s, true), t0 + 2s);
  EXPECT_EQ(stop.next_deadline(t0 + 2s, true), t0 + 2s + OrphanStop::kill_wait);
  EXPECT_EQ(stop.next_deadline(t0 + 2s, false), std::nullopt);  // nothing left to wait for
  EXPECT_FALSE(stop.gave_up(t0 + 2s + OrphanStop::kill_wait - 1ms));
  EXPECT_TRUE(stop.gave_up(t0 + 2s + OrphanStop::kill_wait));
}

TEST(OrphanStop, AnExitWithoutAStopBeginsItWithTheGrace) {
  OrphanStop stop;
  stop.exit_wanted(t0, 3s, SIGTERM);
  EXPECT_TRUE(stop.begun());
  EXPECT_THAT(stop.signals_for({5}, t0), ElementsAre(OrphanSignal{5, SIGTERM}));
  EXPECT_THAT(stop.signals_for({5}, t0 + 3s), ElementsAre(OrphanSignal{5, SIGKILL}));
  EXPECT_FALSE(stop.gave_up(t0 + 3s));
  EXPECT_TRUE(stop.gave_up(t0 + 3s + OrphanStop::kill_wait));
}

}  // namespace
}  // namespace clusterd
