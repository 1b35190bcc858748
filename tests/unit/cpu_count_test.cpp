// `--workers auto`: cgroup quota texts, locating the cgroup from real-world /proc samples, the
// rounding rule, and one smoke test against this machine.
#include "cpu_count.h"

#include <sched.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterd {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::Optional;

// mountinfo lines as the kernel writes them (proc(5)), trimmed to what matters around them.
constexpr std::string_view root_and_proc =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";

std::string mountinfo_with(std::string_view cgroup_lines) {
  return std::string(root_and_proc) + std::string(cgroup_lines);
}

TEST(ParseCgroup2CpuMax, MaxIsUnlimited) {
  EXPECT_EQ(parse_cgroup2_cpu_max("max 100000\n"), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("max"), std::nullopt);
}

TEST(ParseCgroup2CpuMax, QuotaOverPeriodIsCpus) {
  EXPECT_THAT(parse_cgroup2_cpu_max("150000 100000\n"), Optional(DoubleEq(1.5)));
  EXPECT_THAT(parse_cgroup2_cpu_max("200000 100000"), Optional(DoubleEq(2.0)));
  EXPECT_THAT(parse_cgroup2_cpu_max("50000 100000"), Optional(DoubleEq(0.5)));
}

TEST(ParseCgroup2CpuMax, IgnoresExtraFields) {
  EXPECT_THAT(parse_cgroup2_cpu_max("150000 100000 20000\n"), Optional(DoubleEq(1.5)));
}

TEST(ParseCgroup2CpuMax, MalformedTextIsUnlimited) {
  EXPECT_EQ(parse_cgroup2_cpu_max(""), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("150000"), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("lots 100000"), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("150000 0"), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("-5 100000"), std::nullopt);
  EXPECT_EQ(parse_cgroup2_cpu_max("1.5 100000"), std::nullopt);
}

TEST(ParseCgroup1Quota, MinusOneIsUnlimited) {
  EXPECT_EQ(parse_cgroup1_quota("-1\n", "100000\n"), std::nullopt);
}

TEST(ParseCgroup1Quota, QuotaOverPeriodIsCpus) {
  EXPECT_THAT(parse_cgroup1_quota("150000\n", "100000\n"), Optional(DoubleEq(1.5)));
  EXPECT_THAT(parse_cgroup1_quota("400000", "100000"), Optional(DoubleEq(4.0)));
}

TEST(ParseCgroup1Quota, MalformedTextIsUnlimited) {
  EXPECT_EQ(parse_cgroup1_quota("", "100000"), std::nullopt);
  EXPECT_EQ(parse_cgroup1_quota("150000", ""), std::nullopt);
  EXPECT_EQ(parse_cgroup1_quota("150000", "0"), std::nullopt);
  EXPECT_EQ(parse_cgroup1_quota("x", "100000"), std::nullopt);
}

TEST(UsableCpusFrom, RoundsAFractionalQuotaUp) {
  EXPECT_EQ(usable_cpus_from(8, 1.5), 2);
  EXPECT_EQ(usable_cpus_from(8, 2.0), 2);
  EXPECT_EQ(usable_cpus_from(8, 2.01), 3);
}

TEST(UsableCpusFrom, IsAtMostTheAffinityCount) {
  EXPECT_EQ(usable_cpus_from(4, std::nullopt), 4);
  EXPECT_EQ(usable_cpus_from(4, 16.0), 4);
  EXPECT_EQ(usable_cpus_from(4, 3.5), 4);
  EXPECT_EQ(usable_cpus_from(4, 1e300), 4);
}

TEST(UsableCpusFrom, IsAtLeastOne) {
  EXPECT_EQ(usable_cpus_from(8, 0.1), 1);
  EXPECT_EQ(usable_cpus_from(0, std::nullopt), 1);
  EXPECT_EQ(usable_cpus_from(-3, 2.0), 1);
}

TEST(FindCpuCgroup, CgroupV2ServiceOnAHost) {
  const auto cgroup = find_cpu_cgroup(
      "0::/system.slice/shop.service\n",
      mountinfo_with("30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
                     "rw,nsdelegate,memory_recursiveprot\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup/system.slice/shop.service"}));
}

TEST(FindCpuCgroup, CgroupV2InsideANamespaceIsTheMountItself) {
  // docker/podman with a private cgroup namespace: the process sees its cgroup as "/".
  const auto cgroup = find_cpu_cgroup(
      "0::/\n",
      "1210 1200 0:290 / / rw,relatime master:415 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
      "1218 1210 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n");
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup"}));
}

TEST(FindCpuCgroup, CgroupV2WithABindMountedSubtree) {
  // Without a cgroup namespace, a container mounts only its own subtree: its root is the path.
  const auto cgroup = find_cpu_cgroup(
      "0::/kubepods/burstable/pod1/ctr2\n",
      mountinfo_with("40 22 0:27 /kubepods/burstable/pod1/ctr2 /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup"}));
}

TEST(FindCpuCgroup, CgroupV1HostWithCombinedCpuController) {
  const auto cgroup = find_cpu_cgroup(
      "12:pids:/user.slice/user-1000.slice\n"
      "4:cpu,cpuacct:/user.slice\n"
      "3:cpuset:/\n"
      "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n",
      mountinfo_with("25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
                     "26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup "
                     "rw,xattr,name=systemd\n"
                     "30 25 0:27 / /sys/fs/cgroup/cpuset rw,nosuid shared:14 - cgroup cgroup rw,cpuset\n"
                     "31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup "
                     "rw,cpu,cpuacct\n"));
  EXPECT_EQ(cgroup,
            (CpuCgroup{CgroupVersion::v1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/user.slice"}));
}

TEST(FindCpuCgroup, CgroupV1ControllerOrderDoesNotMatter) {
  const auto cgroup = find_cpu_cgroup(
      "5:cpuacct,cpu:/app\n",
      mountinfo_with("31 22 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/app"}));
}

TEST(FindCpuCgroup, CgroupV1DockerWithoutNamespace) {
  // Older docker: /proc/self/cgroup shows the host path, the mount's root is that same path.
  const auto cgroup = find_cpu_cgroup(
      "11:cpuset:/docker/4f1c\n"
      "4:cpu,cpuacct:/docker/4f1c\n"
      "0::/system.slice/containerd.service\n",
      mountinfo_with("1260 1250 0:31 /docker/4f1c /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:17 - cgroup "
                     "cgroup rw,cpu,cpuacct\n"
                     "1261 1250 0:32 /docker/4f1c /sys/fs/cgroup/cpuset ro,nosuid master:18 - cgroup cgroup "
                     "rw,cpuset\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"}));
}

TEST(FindCpuCgroup, HybridHostUsesTheV1CpuController) {
  // systemd "hybrid": the unified tree is mounted but holds no controllers.
  const auto cgroup = find_cpu_cgroup(
      "9:name=systemd:/\n"
      "3:cpuset:/\n"
      "2:cpuacct:/\n"
      "1:cpu:/batch\n"
      "0::/\n",
      mountinfo_with("31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                     "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                     "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
                     "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
                     "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v1, "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu/batch"}));
}

TEST(FindCpuCgroup, CpusetAndCpuacctAreNotTheCpuController) {
  const auto cgroup = find_cpu_cgroup(
      "3:cpuset:/a\n2:cpuacct:/a\n",
      mountinfo_with("33 22 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
                     "34 22 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"));
  EXPECT_EQ(cgroup, std::nullopt);
}

TEST(FindCpuCgroup, FallsBackToV2WhenTheV1CpuHierarchyIsNotMounted) {
  const auto cgroup = find_cpu_cgroup(
      "1:cpu:/a\n0::/b\n", mountinfo_with("41 22 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup/b"}));
}

TEST(FindCpuCgroup, NothingMountedIsNoCgroup) {
  EXPECT_EQ(find_cpu_cgroup("0::/a\n", root_and_proc), std::nullopt);
  EXPECT_EQ(find_cpu_cgroup("", root_and_proc), std::nullopt);
  EXPECT_EQ(find_cpu_cgroup("garbage\n", "garbage\n"), std::nullopt);
}

TEST(FindCpuCgroup, ReadsManyOptionalMountFieldsAndEscapedPaths) {
  const auto cgroup = find_cpu_cgroup(
      "0::/a b\n",
      mountinfo_with("41 22 0:38 / /mnt/my\\040cgroups rw shared:4 master:1 propagate_from:2 - cgroup2 none rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/mnt/my cgroups", "/mnt/my cgroups/a b"}));
}

TEST(FindCpuCgroup, APathOutsideTheMountedSubtreeReadsTheMountPoint) {
  // A process moved out of its cgroup namespace's root sees "/../.." forms.
  const auto cgroup = find_cpu_cgroup("0::/../../other\n",
                                      mountinfo_with("41 22 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup"}));
}

TEST(CgroupDirectories, ListsTheLeafAndEveryAncestorUpToTheMount) {
  EXPECT_THAT(cgroup_directories({CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup/system.slice/shop.service"}),
              ElementsAre("/sys/fs/cgroup/system.slice/shop.service", "/sys/fs/cgroup/system.slice",
                          "/sys/fs/cgroup"));
  EXPECT_THAT(cgroup_directories({CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup"}),
              ElementsAre("/sys/fs/cgroup"));
  EXPECT_THAT(cgroup_directories({CgroupVersion::v1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/a"}),
              ElementsAre("/sys/fs/cgroup/cpu,cpuacct/a", "/sys/fs/cgroup/cpu,cpuacct"));
}

TEST(DetectUsableCpus, IsBetweenOneAndTheAffinityCount) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
  const int affinity = CPU_COUNT(&set);
  const CpuCount count = detect_usable_cpus();
  EXPECT_EQ(count.affinity, affinity);
  EXPECT_GE(count.usable, 1);
  EXPECT_LE(count.usable, affinity);
  EXPECT_FALSE(count.source.empty());
}

}  // namespace
}  // namespace clusterd
