#include "sensor/proc/mountinfo.h"

#include <gtest/gtest.h>

namespace nodescope::sensor::proc {
namespace {

// Lines from this machine's /proc/self/mountinfo, plus a mount point with a space and a line
// with several optional fields.
constexpr char kMountInfo[] =
    "23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "42 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw\n"
    "50 23 0:40 /sub /mnt/my\\040dir rw shared:1 master:2 propagate_from:3 - ext4 /dev/sda\\0401 "
    "rw\n"
    "garbage line\n"
    "\n";

TEST(MountInfo, ParsesFieldsAndEscapes) {
  std::vector<Mount> mounts = ParseMountInfo(kMountInfo);
  ASSERT_EQ(mounts.size(), 4u);
  EXPECT_EQ(mounts[1].mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(mounts[1].fstype, "cgroup2");
  EXPECT_EQ(mounts[1].root, "/");
  EXPECT_EQ(mounts[3].root, "/sub");
  EXPECT_EQ(mounts[3].mount_point, "/mnt/my dir");
  EXPECT_EQ(mounts[3].fstype, "ext4");
  EXPECT_EQ(mounts[3].source, "/dev/sda 1");
}

TEST(MountInfo, FindByTypeAndPlace) {
  std::vector<Mount> mounts = ParseMountInfo(kMountInfo);
  ASSERT_TRUE(FindMount(mounts, "cgroup2"));
  EXPECT_EQ(FindMount(mounts, "cgroup2")->mount_point, "/sys/fs/cgroup/unified");
  EXPECT_TRUE(FindMount(mounts, "tracefs", "/sys/kernel/tracing"));
  EXPECT_FALSE(FindMount(mounts, "tracefs", "/sys/kernel/debug/tracing"));
  EXPECT_FALSE(FindMount(mounts, "bpf"));
}

TEST(MountInfo, RealFileHasProc) {
  Result<std::vector<Mount>> mounts = ReadMountInfo("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok()) << mounts.status().message();
  ASSERT_TRUE(FindMount(*mounts, "proc", "/proc"));
  EXPECT_FALSE(ReadMountInfo("/nonexistent/mountinfo").ok());
}

}  // namespace
}  // namespace nodescope::sensor::proc
