// The progress line of `reload` and `stop`, from status replies as clusterd writes them.
#include <gtest/gtest.h>

#include "control_progress.h"

namespace clusterd {
namespace {

using Json = nlohmann::ordered_json;

Json worker(int slot, int generation, const char* state, Json pid = 100) {
  return Json{{"slot", slot}, {"pid", pid}, {"generation", generation}, {"state", state}};
}

Json stopping_worker(int slot, double kill_in) {
  Json entry = worker(slot, 1, "stopping");
  entry["kill_in_s"] = kill_in;
  return entry;
}

Json reload_status(Json workers) {
  return Json{{"ok", true}, {"generation", 3}, {"workers_wanted", 4}, {"reloading_to", 4},
              {"stopping", false}, {"workers", std::move(workers)}};
}

Json stop_status(Json workers) {
  return Json{{"ok", true}, {"generation", 1}, {"workers_wanted", 3}, {"reloading_to", nullptr},
              {"stopping", true}, {"workers", std::move(workers)}};
}

TEST(ReloadProgress, CountsSlotsWhoseNewWorkerIsReadyOutOfTheWorkersWanted) {
  const Json status = reload_status(Json::array({worker(0, 4, "ready"), worker(0, 3, "stopping"),
                                                 worker(1, 4, "ready"), worker(2, 3, "ready"),
                                                 worker(2, 4, "starting"), worker(3, 3, "ready")}));
  EXPECT_EQ(progress_line(ProgressOf::reload, status),
            "reloading to generation 4: 2/4 slots replaced, 1 old worker stopping");
}

TEST(ReloadProgress, NothingReplacedYetIsZero) {
  const Json status = reload_status(Json::array({worker(0, 3, "ready"), worker(0, 4, "starting"),
                                                 worker(1, 3, "ready")}));
  EXPECT_EQ(progress_line(ProgressOf::reload, status), "reloading to generation 4: 0/4 slots replaced");
}

TEST(ReloadProgress, EverySlotReplacedWhileOldWorkersStillStop) {
  Json workers = Json::array();
  for (int slot = 0; slot < 4; ++slot) {
    workers.push_back(worker(slot, 4, "ready"));
  }
  workers.push_back(stopping_worker(2, 1.5));
  workers.push_back(stopping_worker(3, 2.5));
  EXPECT_EQ(progress_line(ProgressOf::reload, reload_status(workers)),
            "reloading to generation 4: 4/4 slots replaced, 2 old workers stopping, SIGKILL in 1.5s");
}

TEST(ReloadProgress, ASlotBeyondTheWorkersWantedIsNotCounted) {
  Json status = reload_status(Json::array({worker(0, 4, "ready"), worker(1, 4, "ready"), worker(2, 4, "ready")}));
  status["workers_wanted"] = 2;
  EXPECT_EQ(progress_line(ProgressOf::reload, status), "reloading to generation 4: 2/2 slots replaced");
}

TEST(ReloadProgress, NoReloadUnderWayShowsNothing) {
  Json status = reload_status(Json::array({worker(0, 4, "ready")}));
  status["reloading_to"] = nullptr;
  EXPECT_EQ(progress_line(ProgressOf::reload, status), std::nullopt);
}

TEST(ReloadProgress, FieldsOfAnUnexpectedTypeCountAsMissing) {
  Json status = reload_status(Json::array({worker(0, 4, "ready"), Json{{"slot", "1"}, {"generation", 4}},
                                           Json{{"slot", 2}, {"generation", "4"}, {"state", "ready"}},
                                           Json{{"slot", 3}, {"generation", 4}, {"state", 1}}, Json("worker"),
                                           Json(nullptr)}));
  status["workers_wanted"] = "4";
  EXPECT_EQ(progress_line(ProgressOf::reload, status), "reloading to generation 4: 1 slot replaced");
  status["reloading_to"] = "4";
  EXPECT_EQ(progress_line(ProgressOf::reload, status), std::nullopt);
}

TEST(StopProgress, CountsWorkersLeftAndTheNearestSigkill) {
  const Json status = stop_status(Json::array({stopping_worker(0, 7.24), stopping_worker(1, 7.9),
                                               stopping_worker(2, 9.0)}));
  EXPECT_EQ(progress_line(ProgressOf::stop, status), "stopping: 3 workers left, SIGKILL in 7.2s");
}

TEST(StopProgress, WithoutKillInTheLineEndsAfterTheCount) {
  // SIGKILL already sent, or a daemon that does not say when it comes.
  const Json status = stop_status(Json::array({worker(0, 1, "stopping")}));
  EXPECT_EQ(progress_line(ProgressOf::stop, status), "stopping: 1 worker left");
}

TEST(StopProgress, ASlotWithoutAProcessIsNotAWorkerLeft) {
  const Json status = stop_status(Json::array({stopping_worker(0, 0.0), worker(1, 1, "backoff", nullptr)}));
  EXPECT_EQ(progress_line(ProgressOf::stop, status), "stopping: 1 worker left, SIGKILL in 0.0s");
}

TEST(StopProgress, NoWorkersLeft) {
  EXPECT_EQ(progress_line(ProgressOf::stop, stop_status(Json::array())), "stopping: 0 workers left");
}

TEST(StopProgress, AKillInOfAnUnexpectedTypeIsMissingAndANegativeOneIsZero) {
  Json odd = worker(0, 1, "stopping");
  odd["kill_in_s"] = "soon";
  EXPECT_EQ(progress_line(ProgressOf::stop, stop_status(Json::array({odd}))), "stopping: 1 worker left");
  EXPECT_EQ(progress_line(ProgressOf::stop, stop_status(Json::array({stopping_worker(0, -0.4)}))),
            "stopping: 1 worker left, SIGKILL in 0.0s");
}

TEST(Progress, AReplyWithoutAWorkersListShowsNothing) {
  EXPECT_EQ(progress_line(ProgressOf::stop, Json{{"ok", true}}), std::nullopt);
  EXPECT_EQ(progress_line(ProgressOf::stop, Json{{"ok", true}, {"workers", "none"}}), std::nullopt);
  EXPECT_EQ(progress_line(ProgressOf::reload, Json::array()), std::nullopt);
  EXPECT_EQ(progress_line(ProgressOf::stop, Json("status")), std::nullopt);
}

}  // namespace
}  // namespace clusterd
