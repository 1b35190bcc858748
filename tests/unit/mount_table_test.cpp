// Which file system a path is on, read from /proc/self/mountinfo's text, and which of them may
// make an exec wait on a server (mount_table.h).
#include "mount_table.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

// proc(5)'s format: the mount point is the fifth field; the type follows the lone "-".
constexpr const char* mountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "25 22 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw\n"
    "30 22 0:40 / /srv/app rw,relatime shared:9 master:2 - nfs4 server:/export rw,vers=4.2\n"
    "31 30 0:41 / /srv/app/local rw - ext4 /dev/sdb1 rw\n"
    "32 22 0:42 / /mnt/my\\040disk rw - fuse.sshfs host:/ rw\n"
    "33 22 0:43 / /srv/application rw - xfs /dev/sdc1 rw\n"
    "34 22 0:44 / /run rw - ext4 /dev/sdd1 rw\n";

TEST(MountTable, ThePathIsOnTheLongestMountPointThatContainsIt) {
  EXPECT_EQ(file_system_type_of(mountinfo, "/usr/bin/python3"), "ext4");
  EXPECT_EQ(file_system_type_of(mountinfo, "/srv/app/bin/server"), "nfs4");
  EXPECT_EQ(file_system_type_of(mountinfo, "/srv/app"), "nfs4");
  EXPECT_EQ(file_system_type_of(mountinfo, "/srv/app/local/server"), "ext4");
  // A mount point is a whole directory name, not a prefix of one.
  EXPECT_EQ(file_system_type_of(mountinfo, "/srv/application/server"), "xfs");
}

TEST(MountTable, EscapedMountPointsAndLaterMountsOnTheSamePoint) {
  EXPECT_EQ(file_system_type_of(mountinfo, "/mnt/my disk/server"), "fuse.sshfs");
  EXPECT_EQ(file_system_type_of(mountinfo, "/run/clusterd"), "ext4");  // mounted over the tmpfs
}

TEST(MountTable, NoMountContainsARelativePath) {
  EXPECT_EQ(file_system_type_of(mountinfo, "bin/server"), std::nullopt);
  EXPECT_EQ(file_system_type_of("", "/usr/bin/env"), std::nullopt);
}

TEST(MountTable, NetworkFileSystemsAndFuseMayHangLocalOnesDoNot) {
  for (const char* type : {"nfs", "nfs4", "cifs", "smb3", "ceph", "9p", "fuse", "fuse.sshfs", "glusterfs"}) {
    EXPECT_TRUE(file_system_may_hang(type)) << type;
  }
  for (const char* type : {"ext4", "xfs", "btrfs", "tmpfs", "overlay", "squashfs", "fuseblk-not", "nfsd"}) {
    EXPECT_FALSE(file_system_may_hang(type)) << type;
  }
}

TEST(MountTable, AProgramOnThisMachinesRootFileSystemCanBeSharedWith) {
  // /bin/sh is on a local file system wherever this suite runs; a missing path cannot be resolved,
  // so it counts as one that may hang (forking is the safe side).
  EXPECT_FALSE(launch_may_hang("/bin/sh", ""));
  EXPECT_TRUE(launch_may_hang("/nonexistent/clusterd-test-program", ""));
}

}  // namespace
}  // namespace clusterd
