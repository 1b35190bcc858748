// The Prometheus text of an instance's status: families, labels, escaping, per-worker samples.
#include "metrics_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

InstanceStatus sample() {
  InstanceStatus status;
  status.name = "shop \"eu\"\\1";
  status.version = "0.1.0";
  status.now_unix = 1000.0;
  StatusSnapshot& snapshot = status.snapshot;
  snapshot.generation = 3;
  snapshot.workers_wanted = 2;
  snapshot.workers_ready = 1;
  snapshot.counters = Counters{4, 1, 2, 0, 2, 1, 1500ms};
  SlotStatus ready;
  ready.workers = {WorkerStatus{{0, 3, 7}, 4121, WorkerState::ready, 250s, std::nullopt, std::nullopt}};
  SlotStatus backoff;
  backoff.slot = 1;
  backoff.state = SlotState::backoff;
  snapshot.slots = {ready, backoff};
  status.costs[4121] = WorkerCost{12.5, ProcessTreeCost{3.25, 52428800, 31457280, 3},
                                  CgroupCost{"/sys/fs/cgroup/worker.0.3.7", 4.5, 4, std::nullopt}};
  return status;
}

TEST(MetricsText, InstanceFamiliesWithHelpAndType) {
  const std::string text = metrics_text(sample());
  EXPECT_THAT(text, HasSubstr("# HELP clusterd_workers_ready Slots whose serving worker is ready.\n"
                              "# TYPE clusterd_workers_ready gauge\nclusterd_workers_ready 1\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_info{name=\"shop \\\"eu\\\"\\\\1\",version=\"0.1.0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nclusterd_generation 3\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE clusterd_worker_restarts_total counter\nclusterd_worker_restarts_total 4\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_exits_total{reason=\"exit_code\"} 1\n"
                              "clusterd_worker_exits_total{reason=\"signal\"} 2\n"
                              "clusterd_worker_exits_total{reason=\"start_failure\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_reloads_total{result=\"finished\"} 2\n"
                              "clusterd_reloads_total{result=\"abandoned\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_last_reload_duration_seconds 1.5\n"));
}

TEST(MetricsText, OneSeriesPerWorkerProcessNoneForASlotWithout) {
  const std::string text = metrics_text(sample());
  const std::string labels = "slot=\"0\",pid=\"4121\",generation=\"3\"";
  EXPECT_THAT(text, HasSubstr("clusterd_worker_cpu_seconds_total{" + labels + "} 3.25\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_resident_memory_bytes{" + labels + "} 52428800\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_proportional_memory_bytes{" + labels + "} 31457280\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_processes{" + labels + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_cgroup_cpu_seconds_total{" + labels + "} 4.5\n"));
  // No memory controller in the worker's cgroup: no sample, the family is still declared.
  EXPECT_THAT(text, Not(HasSubstr("clusterd_worker_cgroup_memory_bytes{")));
  EXPECT_THAT(text, HasSubstr("# TYPE clusterd_worker_cgroup_memory_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_start_time_seconds{" + labels + "} 750\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_state{" + labels + ",state=\"ready\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_state{" + labels + ",state=\"starting\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("slot=\"1\"")));
}

TEST(MetricsText, NoReloadYetMeansNoDurationAndAnUnreadableWorkerNoCost) {
  InstanceStatus status = sample();
  status.snapshot.counters.last_reload.reset();
  status.costs.clear();
  const std::string text = metrics_text(status);
  EXPECT_THAT(text, Not(HasSubstr("clusterd_last_reload_duration_seconds")));
  EXPECT_THAT(text, Not(HasSubstr("clusterd_worker_cpu_seconds_total{")));
  EXPECT_THAT(text, HasSubstr("clusterd_worker_state{slot=\"0\""));
}

}  // namespace
}  // namespace clusterd
