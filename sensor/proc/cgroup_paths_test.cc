#include "sensor/proc/cgroup_paths.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::proc {
namespace {

namespace fs = std::filesystem;

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(CgroupPaths, NamesEveryDirectoryByItsInode) {
  test::TempDir dir;
  fs::create_directories(dir.path() + "/system.slice/cron.service");
  fs::create_directories(dir.path() + "/a b/c");
  std::ofstream(dir.path() + "/cgroup.procs") << "";  // files are no cgroups
  CgroupPaths paths(dir.path(), "/");
  EXPECT_EQ(paths.PathOf(Inode(dir.path())), "/");
  EXPECT_EQ(paths.PathOf(Inode(dir.path() + "/system.slice/cron.service")),
            "/system.slice/cron.service");
  EXPECT_EQ(paths.PathOf(Inode(dir.path() + "/a b/c")), "/a b/c");
  EXPECT_EQ(paths.walks(), 1u);
  EXPECT_FALSE(paths.Find(Inode(dir.path() + "/cgroup.procs")).path);
}

TEST(CgroupPaths, MountOfASubtreeNamesFullPaths) {
  test::TempDir dir;
  fs::create_directories(dir.path() + "/x.scope");
  CgroupPaths paths(dir.path(), "/kubepods.slice");
  EXPECT_EQ(paths.PathOf(Inode(dir.path())), "/kubepods.slice");
  EXPECT_EQ(paths.PathOf(Inode(dir.path() + "/x.scope")), "/kubepods.slice/x.scope");
}

TEST(CgroupPaths, UnknownIdsWalkWhileWalksAreLeft) {
  test::TempDir dir;
  CgroupPaths paths(dir.path(), "/");
  // Each unknown id walks again (it may be a cgroup made since), kWalkBurst times in a row.
  for (int i = 0; i < CgroupPaths::kWalkBurst; ++i) {
    CgroupPaths::Found found = paths.Find((uint64_t{1} << 40) + i);
    EXPECT_FALSE(found.path);
    EXPECT_TRUE(found.gone) << i;  // a walk made for it did not find it
  }
  EXPECT_EQ(paths.walks(), static_cast<uint64_t>(CgroupPaths::kWalkBurst));
  fs::create_directories(dir.path() + "/new");
  const uint64_t made = Inode(dir.path() + "/new");
  CgroupPaths::Found found = paths.Find(made);
  EXPECT_FALSE(found.path);
  EXPECT_FALSE(found.gone);  // no walk left: it may be there
  EXPECT_EQ(paths.PathOf(made), "#" + std::to_string(made));
  EXPECT_EQ(paths.walks(), static_cast<uint64_t>(CgroupPaths::kWalkBurst));
  std::this_thread::sleep_for(CgroupPaths::kWalkInterval);  // one more walk
  EXPECT_EQ(paths.PathOf(made), "/new");

  CgroupPaths none("", "/");  // no cgroup2 mount: nothing to find, ever
  EXPECT_TRUE(none.Find(5).gone);
}

// A fake host: <root>/host is the host's / as a DaemonSet mounts it, <root>/proc/1/mountinfo the
// host's mounts, <root>/self the sensor's own mountinfo.
TEST(FindCgroup2, HostMountUnderHostRoot) {
  test::TempDir root;
  fs::create_directories(root.path() + "/host/sys/fs/cgroup/unified");
  fs::create_directories(root.path() + "/proc/1");
  std::ofstream(root.path() + "/proc/1/mountinfo")
      << "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
         "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
  // In a cgroup namespace of its own, the sensor's /sys/fs/cgroup is its own subtree.
  std::ofstream(root.path() + "/self")
      << "600 500 0:38 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";

  Cgroup2Mount m = FindCgroup2(root.path() + "/host", root.path() + "/proc", root.path() + "/self");
  EXPECT_EQ(m.dir, root.path() + "/host/sys/fs/cgroup/unified");
  EXPECT_EQ(m.prefix, "/");

  // Without HOST_ROOT, or when the host's mount is not visible there: the sensor's own.
  m = FindCgroup2("", root.path() + "/proc", root.path() + "/self");
  EXPECT_EQ(m.dir, "/sys/fs/cgroup");
  m = FindCgroup2(root.path() + "/elsewhere", root.path() + "/proc", root.path() + "/self");
  EXPECT_EQ(m.dir, "/sys/fs/cgroup");
  m = FindCgroup2("", root.path() + "/proc", root.path() + "/missing");
  EXPECT_EQ(m.dir, "");
}

}  // namespace
}  // namespace nodescope::sensor::proc
