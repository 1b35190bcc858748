// `--workers auto`: cgroup quota texts, locating the cgroup from real-world /proc samples, the
// rounding rule, the count from known inputs (count_usable_cpus), and this machine's count
// against its mask and quota read another way.
#include "cpu_count.h"

#include <sched.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

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

TEST(FindCgroupV2, TheUnifiedEntryEvenWhereV1HoldsTheCpuController) {
  // A hybrid host: cpu is on v1, but the workers' cgroups go in the unified hierarchy.
  const auto cgroup = find_cgroup_v2(
      "4:cpu,cpuacct:/user.slice\n0::/user.slice/session-2.scope\n",
      mountinfo_with("30 22 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
                     "31 22 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(cgroup, (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup/unified",
                               "/sys/fs/cgroup/unified/user.slice/session-2.scope"}));
  EXPECT_EQ(find_cgroup_v2("4:cpu,cpuacct:/user.slice\n", mountinfo_with("")), std::nullopt);
  EXPECT_EQ(find_cgroup_v2("0::/\n", mountinfo_with("")), std::nullopt);  // no cgroup2 mount
}

TEST(FindCgroupV2, APathTheMountDoesNotShowIsNotGuessed) {
  // A new cgroup namespace that still sees the host's mount, and a sibling of the mounted subtree:
  // neither is the mount point itself (which would be taken for the root of the hierarchy).
  const std::string host = mountinfo_with("31 22 0:27 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(find_cgroup_v2("0::/../sibling.scope\n", host), std::nullopt);
  const std::string bound = mountinfo_with("40 22 0:27 /kubepods/pod1 /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(find_cgroup_v2("0::/kubepods/pod2\n", bound), std::nullopt);
  EXPECT_EQ(find_cgroup_v2("0::/kubepods/pod1/ctr\n", bound),
            (CpuCgroup{CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup/ctr"}));
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

// ----- the count from known inputs: count_usable_cpus() is what detect_usable_cpus() returns for
// what it read

constexpr std::string_view v2_mount_line =
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

// A process in /sys/fs/cgroup/app/web (cgroup v2) with `affinity` CPUs in its mask and these files.
CpuCountInputs v2_inputs(int affinity, std::map<std::string, std::string> files) {
  return CpuCountInputs{affinity, "0::/app/web\n", mountinfo_with(v2_mount_line), std::move(files)};
}

constexpr char leaf_max[] = "/sys/fs/cgroup/app/web/cpu.max";
constexpr char parent_max[] = "/sys/fs/cgroup/app/cpu.max";

TEST(CountUsableCpus, AWholeQuotaBelowTheMaskIsTheCount) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "200000 100000\n"}})),
            (CpuCount{8, 2.0, 2, "cgroup2 /sys/fs/cgroup/app/web/cpu.max"}));
}

TEST(CountUsableCpus, AnUnlimitedQuotaLeavesTheMask) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "max 100000\n"}})), (CpuCount{8, std::nullopt, 8, "affinity"}));
}

TEST(CountUsableCpus, AFractionalQuotaIsRoundedUp) {
  // configuration.md, `workers`: "rounded up"; protocols §5 leaves ceil or floor to the choice.
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "150000 100000\n"}})),
            (CpuCount{8, 1.5, 2, "cgroup2 /sys/fs/cgroup/app/web/cpu.max"}));
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "50000 100000\n"}})).usable, 1);
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "700001 100000\n"}})).usable, 8);
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "700000 100000\n"}})).usable, 7);
}

TEST(CountUsableCpus, AQuotaAboveTheMaskLeavesTheMaskButIsReported) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(2, {{leaf_max, "1600000 100000\n"}})),
            (CpuCount{2, 16.0, 2, "cgroup2 /sys/fs/cgroup/app/web/cpu.max"}));
}

TEST(CountUsableCpus, TheLowestQuotaAlongThePathApplies) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "400000 100000\n"}, {parent_max, "150000 100000\n"}})),
            (CpuCount{8, 1.5, 2, "cgroup2 /sys/fs/cgroup/app/cpu.max"}));
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "300000 100000\n"}, {parent_max, "500000 100000\n"}})),
            (CpuCount{8, 3.0, 3, "cgroup2 /sys/fs/cgroup/app/web/cpu.max"}));
  // Equal quotas: the one nearest the leaf is named.
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "200000 100000"}, {parent_max, "400000 200000"}})),
            (CpuCount{8, 2.0, 2, "cgroup2 /sys/fs/cgroup/app/web/cpu.max"}));
  // An unlimited or unreadable leaf: the parent's quota still applies.
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{leaf_max, "max 100000"}, {parent_max, "250000 100000"}})),
            (CpuCount{8, 2.5, 3, "cgroup2 /sys/fs/cgroup/app/cpu.max"}));
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{parent_max, "250000 100000"}})),
            (CpuCount{8, 2.5, 3, "cgroup2 /sys/fs/cgroup/app/cpu.max"}));
}

TEST(CountUsableCpus, FilesOutsideTheCgroupsPathAreNotRead) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(8, {{"/sys/fs/cgroup/app/other/cpu.max", "100000 100000"},
                                            {"/sys/fs/cgroup/app/web/child/cpu.max", "100000 100000"}})),
            (CpuCount{8, std::nullopt, 8, "affinity"}));
}

TEST(CountUsableCpus, MalformedQuotaTextLimitsNothing) {
  EXPECT_EQ(count_usable_cpus(v2_inputs(4, {{leaf_max, "lots 100000"}})), (CpuCount{4, std::nullopt, 4, "affinity"}));
}

TEST(CountUsableCpus, CgroupV1QuotaAndPeriod) {
  const std::string mountinfo = mountinfo_with("31 22 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n");
  const std::string cgroup = "4:cpu,cpuacct:/batch\n0::/\n";
  const std::string leaf = "/sys/fs/cgroup/cpu,cpuacct/batch/";
  EXPECT_EQ(count_usable_cpus({4, cgroup, mountinfo,
                               {{leaf + "cpu.cfs_quota_us", "250000\n"}, {leaf + "cpu.cfs_period_us", "100000\n"}}}),
            (CpuCount{4, 2.5, 3, "cgroup1 /sys/fs/cgroup/cpu,cpuacct/batch/cpu.cfs_quota_us"}));
  // -1: unlimited, as the root always is.
  EXPECT_EQ(count_usable_cpus({4, cgroup, mountinfo,
                               {{leaf + "cpu.cfs_quota_us", "-1\n"}, {leaf + "cpu.cfs_period_us", "100000\n"},
                                {"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"},
                                {"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"}}}),
            (CpuCount{4, std::nullopt, 4, "affinity"}));
  // A quota without its period cannot be read as CPUs.
  EXPECT_EQ(count_usable_cpus({4, cgroup, mountinfo, {{leaf + "cpu.cfs_quota_us", "250000\n"}}}),
            (CpuCount{4, std::nullopt, 4, "affinity"}));
}

TEST(CountUsableCpus, WithoutACgroupTheMaskAlone) {
  EXPECT_EQ(count_usable_cpus({6, "", "", {{leaf_max, "100000 100000"}}}), (CpuCount{6, std::nullopt, 6, "affinity"}));
  EXPECT_EQ(count_usable_cpus({6, "0::/app/web\n", std::string(root_and_proc), {{leaf_max, "100000 100000"}}}),
            (CpuCount{6, std::nullopt, 6, "affinity"}));
  EXPECT_EQ(count_usable_cpus({0, "", "", {}}), (CpuCount{0, std::nullopt, 1, "affinity"}));
}

TEST(CpuQuotaFiles, EachLevelsFilesLeafFirst) {
  EXPECT_THAT(cpu_quota_files({CgroupVersion::v2, "/sys/fs/cgroup", "/sys/fs/cgroup/app/web"}),
              ElementsAre("/sys/fs/cgroup/app/web/cpu.max", "/sys/fs/cgroup/app/cpu.max", "/sys/fs/cgroup/cpu.max"));
  EXPECT_THAT(cpu_quota_files({CgroupVersion::v1, "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu/batch"}),
              ElementsAre("/sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/batch/cpu.cfs_period_us",
                          "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
}

// ----- this machine, read here another way

std::string read_whole(const std::string& path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::vector<std::string> split_on(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) {
    parts.push_back(part);
  }
  return parts;
}

// The CPUs of "Cpus_allowed_list:\t0-3,8,10-11" in /proc/self/status (proc(5)): the kernel's
// own list of this process's mask, not sched_getaffinity's bit set.
int cpus_allowed_by_status() {
  for (const std::string& line : split_on(read_whole("/proc/self/status"), '\n')) {
    if (line.rfind("Cpus_allowed_list:", 0) != 0) {
      continue;
    }
    int cpus = 0;
    for (const std::string& range : split_on(line.substr(line.find_first_not_of(" \t", 18)), ',')) {
      const auto dash = range.find('-');
      const int first = std::stoi(range.substr(0, dash));
      const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
      cpus += last - first + 1;
    }
    return cpus;
  }
  ADD_FAILURE() << "no Cpus_allowed_list in /proc/self/status";
  return 0;
}

struct HostQuota {
  CpuQuota quota;
  std::string source = "affinity";
};

// The lowest CPU quota along this process's cgroup path, found through /proc/mounts (not
// mountinfo) and read with plain streams: the cgroup's line in /proc/self/cgroup, its hierarchy's
// mount point, and the quota file of each directory from the cgroup up to that mount point.
HostQuota host_quota() {
  std::string v1_mount;
  std::string v2_mount;
  for (const std::string& line : split_on(read_whole("/proc/mounts"), '\n')) {
    const auto fields = split_on(line, ' ');
    if (fields.size() < 4) {
      continue;
    }
    const auto options = split_on(fields[3], ',');
    if (fields[2] == "cgroup" && std::find(options.begin(), options.end(), "cpu") != options.end()) {
      v1_mount = fields[1];
    } else if (fields[2] == "cgroup2" && v2_mount.empty()) {
      v2_mount = fields[1];
    }
  }
  std::string mount;
  std::string path;
  bool v1 = false;
  for (const std::string& line : split_on(read_whole("/proc/self/cgroup"), '\n')) {
    const auto fields = split_on(line, ':');
    if (fields.size() < 3) {
      continue;
    }
    const auto controllers = split_on(fields[1], ',');
    if (!v1_mount.empty() && std::find(controllers.begin(), controllers.end(), "cpu") != controllers.end()) {
      mount = v1_mount;
      path = fields[2];
      v1 = true;
    } else if (fields[0] == "0" && !v2_mount.empty() && !v1) {
      mount = v2_mount;
      path = fields[2];
    }
  }
  HostQuota lowest;
  if (mount.empty()) {
    return lowest;
  }
  std::string directory = mount + (path == "/" ? "" : path);
  if (!std::filesystem::is_directory(directory)) {
    directory = mount;  // a cgroup namespace or a bind-mounted subtree: the mount is the cgroup
  }
  for (;;) {
    CpuQuota quota;
    std::string source;
    if (v1) {
      std::ifstream quota_file(directory + "/cpu.cfs_quota_us");
      std::ifstream period_file(directory + "/cpu.cfs_period_us");
      long long quota_us = 0;
      long long period_us = 0;
      if (quota_file >> quota_us && period_file >> period_us && quota_us > 0 && period_us > 0) {
        quota = static_cast<double>(quota_us) / static_cast<double>(period_us);
      }
      source = "cgroup1 " + directory + "/cpu.cfs_quota_us";
    } else {
      std::ifstream max_file(directory + "/cpu.max");
      std::string max;
      long long period_us = 0;
      if (max_file >> max >> period_us && max != "max" && period_us > 0) {
        quota = static_cast<double>(std::stoll(max)) / static_cast<double>(period_us);
      }
      source = "cgroup2 " + directory + "/cpu.max";
    }
    if (quota && (!lowest.quota || *quota < *lowest.quota)) {
      lowest = {quota, source};
    }
    if (directory.size() <= mount.size()) {
      return lowest;
    }
    directory.resize(directory.rfind('/'));
  }
}

// The count for this machine as this process sees it, against the same inputs read another way.
TEST(DetectUsableCpus, IsThisMachinesMaskCappedByItsQuota) {
  const int allowed = cpus_allowed_by_status();
  const HostQuota host = host_quota();
  const CpuCount count = detect_usable_cpus();
  EXPECT_EQ(count.affinity, allowed);
  EXPECT_EQ(count.quota, host.quota);
  EXPECT_EQ(count.source, host.source);
  const int expected = host.quota ? std::min(allowed, std::max(1, static_cast<int>(std::ceil(*host.quota)))) : allowed;
  EXPECT_EQ(count.usable, expected) << "affinity " << allowed << ", quota " << host.quota.value_or(-1);
}

// Known inputs on this machine: the mask this test sets. One CPU is one worker whatever the quota.
TEST(DetectUsableCpus, FollowsTheMaskThisProcessIsGiven) {
  cpu_set_t original;
  CPU_ZERO(&original);
  ASSERT_EQ(::sched_getaffinity(0, sizeof original, &original), 0);
  int first = 0;
  while (!CPU_ISSET(first, &original)) {
    ++first;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  const CpuCount count = detect_usable_cpus();
  const int allowed = cpus_allowed_by_status();
  ASSERT_EQ(::sched_setaffinity(0, sizeof original, &original), 0);
  EXPECT_EQ(allowed, 1);
  EXPECT_EQ(count.affinity, 1);
  EXPECT_EQ(count.usable, 1);
  EXPECT_EQ(detect_usable_cpus().affinity, CPU_COUNT(&original));
}

}  // namespace
}  // namespace clusterd
