// A cgroup per worker: where clusterd makes them (the plan, from where it runs and what was
// delegated to it), cgroup.events, the workers' cgroup names.
#include "worker_cgroups.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace clusterd {
namespace {

CpuCgroup cgroup_at(std::string directory) { return CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", std::move(directory)}; }

// `delegated` for the plan: only the directories listed.
auto delegated(std::set<std::string> directories) {
  return [directories = std::move(directories)](const std::string& directory) { return directories.contains(directory); };
}

TEST(PlanWorkerCgroups, AtTheRootOfTheHierarchyAParentOfItsOwnNamedByPid) {
  // A container's cgroup namespace, or a host where nothing manages cgroups: clusterd stays.
  const auto plan = plan_worker_cgroups(cgroup_at("/sys/fs/cgroup"), delegated({}), 4242);
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_EQ(*plan, (CgroupPlan{"/sys/fs/cgroup/clusterd.4242", true, std::nullopt}));
}

TEST(PlanWorkerCgroups, ADelegatedCgroupTakesTheWorkersAndClusterdMovesToItsLeaf) {
  const std::string unit = "/sys/fs/cgroup/system.slice/shop.service";
  const auto plan = plan_worker_cgroups(cgroup_at(unit), delegated({unit}), 4242);
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_EQ(*plan, (CgroupPlan{unit, false, unit + "/supervisor"}));
}

TEST(PlanWorkerCgroups, AlreadyInTheLeafOfADelegatedCgroupStaysThere) {
  const std::string unit = "/sys/fs/cgroup/system.slice/shop.service";
  const auto plan = plan_worker_cgroups(cgroup_at(unit + "/supervisor"), delegated({unit}), 4242);
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_EQ(*plan, (CgroupPlan{unit, false, unit + "/supervisor"}));
}

TEST(PlanWorkerCgroups, AssumedDelegatedAnInheritedLeafIsStillTheLeaf) {
  // cgroup.mode = "on" takes every cgroup as delegated: the leaf is not a parent of its own.
  const std::string unit = "/sys/fs/cgroup/system.slice/shop.service";
  const auto everything = [](const std::string&) { return true; };
  EXPECT_EQ(plan_worker_cgroups(cgroup_at(unit + "/supervisor"), everything, 1),
            (CgroupPlan{unit, false, unit + "/supervisor"}));
  EXPECT_EQ(plan_worker_cgroups(cgroup_at(unit), everything, 1), (CgroupPlan{unit, false, unit + "/supervisor"}));
}

TEST(PlanWorkerCgroups, ACgroupNotDelegatedIsLeftAloneAndSaysHowToDelegate) {
  const auto plan = plan_worker_cgroups(cgroup_at("/sys/fs/cgroup/system.slice/shop.service"), delegated({}), 1);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error(),
            "clusterd's cgroup /sys/fs/cgroup/system.slice/shop.service was not delegated to it (a systemd unit "
            "needs Delegate=yes; see docs/operations.md#a-cgroup-per-worker)");
  // A leaf called supervisor is not enough: its parent must have been delegated.
  EXPECT_FALSE(plan_worker_cgroups(cgroup_at("/sys/fs/cgroup/user.slice/supervisor"), delegated({}), 1));
}

TEST(PlanWorkerCgroups, NoCgroupV2HierarchySaysSo) {
  const auto plan = plan_worker_cgroups(std::nullopt, delegated({}), 1);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error(), "no cgroup v2 mount here shows clusterd's cgroup");
}

TEST(ParsePopulated, ReadsThePopulatedLine) {
  EXPECT_EQ(parse_populated("populated 1\nfrozen 0\n"), true);
  EXPECT_EQ(parse_populated("populated 0\nfrozen 0\n"), false);
  EXPECT_EQ(parse_populated("frozen 1\npopulated 0"), false);
}

TEST(ParsePopulated, AnythingElseIsUnknown) {
  EXPECT_EQ(parse_populated(""), std::nullopt);
  EXPECT_EQ(parse_populated("frozen 0\n"), std::nullopt);
  EXPECT_EQ(parse_populated("populated yes\n"), std::nullopt);
  EXPECT_EQ(parse_populated("populated_x 0\n"), std::nullopt);
}

TEST(ParseCpuUsage, TheUsageLineInSeconds) {
  EXPECT_EQ(parse_cpu_usage("usage_usec 1250000\nuser_usec 1000000\nsystem_usec 250000\n"), 1.25);
  EXPECT_EQ(parse_cpu_usage("nr_periods 0\nusage_usec 7"), 0.000007);
  EXPECT_EQ(parse_cpu_usage("user_usec 5\n"), std::nullopt);
  EXPECT_EQ(parse_cpu_usage("usage_usec x\n"), std::nullopt);
}

TEST(WorkerCgroupName, SlotGenerationInstance) { EXPECT_EQ(worker_cgroup_name(3, 2, 17), "worker.3.2.17"); }

}  // namespace
}  // namespace clusterd
