// The preflight on this machine, as root: it leaves tracefs and bpffs mounted where libbpf looks,
// and really mounts what is missing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <string>

#include "sensor/bpf/environment.h"
#include "sensor/proc/mountinfo.h"

namespace nodescope::sensor::bpf {
namespace {

bool MountedAt(const std::string& dir, const std::string& fstype) {
  Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo("/proc/self/mountinfo");
  return mounts.ok() && proc::FindMount(*mounts, fstype, dir).has_value();
}

TEST(PrepareEnvironment, LeavesTracefsAndBpffsMounted) {
  ASSERT_EQ(geteuid(), 0u) << "the bpf tests need root";
  Status s = PrepareEnvironment();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(MountedAt("/sys/kernel/tracing", "tracefs"));
  EXPECT_TRUE(MountedAt("/sys/fs/bpf", "bpf"));
  EXPECT_EQ(access("/sys/kernel/tracing/events/sched/sched_process_exec/id", R_OK), 0);
}

TEST(EnsureMounted, MountsWhatIsMissing) {
  char pattern[] = "/tmp/ns_mount_test_XXXXXX";
  std::string dir = mkdtemp(pattern);
  ASSERT_FALSE(MountedAt(dir, "tracefs"));
  Status s = EnsureMounted("/proc/self/mountinfo", dir, "tracefs", "mount -t tracefs nodev " + dir);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(MountedAt(dir, "tracefs"));
  EXPECT_EQ(access((dir + "/events/sched/sched_process_fork/format").c_str(), R_OK), 0);
  // A second call sees the mount and does not stack another one.
  ASSERT_TRUE(EnsureMounted("/proc/self/mountinfo", dir, "tracefs", "x").ok());
  EXPECT_EQ(umount2(dir.c_str(), 0), 0);
  EXPECT_NE(umount2(dir.c_str(), 0), 0) << "two mounts were stacked";
  EXPECT_EQ(rmdir(dir.c_str()), 0);
}

}  // namespace
}  // namespace nodescope::sensor::bpf
