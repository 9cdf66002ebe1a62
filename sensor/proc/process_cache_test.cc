#include "sensor/proc/process_cache.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sensor/proc/fake_root.h"
#include "sensor/proc/procfs.h"

namespace nodescope::sensor::proc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// A fake host: <root>/proc/<pid>/..., <root>/cgroup2 (the cgroup2 mount), <root>/etc/passwd.
class FakeHost : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fake_.path();
    fs::create_directories(root_ + "/cgroup2/kubepods/pod1");
    std::ofstream(root_ + "/mountinfo")
        << "23 1 0:21 / /sys rw - sysfs sysfs rw\n"
        << "41 31 0:38 / " << root_ << "/cgroup2 rw,relatime - cgroup2 cgroup2 rw\n";
    // A process with everything.
    WriteProcess(100,
                 "100 (fake app) S 1 100 100 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4200 "
                 "1 1 1 1 1 1 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
                 "Name:\tfake app\nUid:\t1000\t1000\t1000\t1000\n", "3:cpu:/\n0::/kubepods/pod1\n",
                 "/usr/bin/fake");
    // A kernel thread: no exe link, root cgroup.
    WriteProcess(2,
                 "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 "
                 "1 1 1 1 1 1 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
                 "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n", "0::/\n", "");
    // Gone half way: stat only.
    fs::create_directories(root_ + "/proc/300");
    std::ofstream(root_ + "/proc/300/stat") << "300 (x) Z 1";
    fs::create_directories(root_ + "/proc/self");
    fs::create_directories(root_ + "/proc/sys");
  }
  FakeRoot fake_;

  void WriteProcess(uint32_t pid, const std::string& stat, const std::string& status,
                    const std::string& cgroup, const std::string& exe) {
    std::string dir = root_ + "/proc/" + std::to_string(pid);
    fs::create_directories(dir);
    std::ofstream(dir + "/stat") << stat;
    std::ofstream(dir + "/status") << status;
    std::ofstream(dir + "/cgroup") << cgroup;
    if (!exe.empty()) fs::create_symlink(exe, dir + "/exe");
  }

  ProcessCache::Options Options() const { return fake_.Options(); }

  std::string root_;
};

TEST_F(FakeHost, SeedReadsEveryField) {
  UserResolver users(root_);
  ProcessCache cache(&users, Options());
  Result<size_t> added = cache.SeedFromProc();
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(*added, 2u);
  EXPECT_EQ(cache.size(), 2u);

  std::optional<ProcessInfo> app = cache.Lookup(100);
  ASSERT_TRUE(app);
  EXPECT_EQ(app->pid, 100u);
  EXPECT_EQ(app->ppid, 1u);
  EXPECT_EQ(app->comm, "fake app");
  EXPECT_EQ(app->filename, "/usr/bin/fake");
  EXPECT_EQ(app->uid, 1000u);
  EXPECT_EQ(app->user, "alice");
  EXPECT_EQ(app->cgroup_id, Inode(root_ + "/cgroup2/kubepods/pod1"));
  EXPECT_NEAR(static_cast<double>(app->start_time_ns),
              static_cast<double>(BootTicksToMonotonicNs(4200)), 1e6);
  EXPECT_FALSE(app->exited);

  std::optional<ProcessInfo> kthread = cache.Lookup(2);
  ASSERT_TRUE(kthread);
  EXPECT_EQ(kthread->comm, "kthreadd");
  EXPECT_EQ(kthread->filename, "");
  EXPECT_EQ(kthread->user, "root");
  EXPECT_EQ(kthread->cgroup_id, Inode(root_ + "/cgroup2"));

  EXPECT_FALSE(cache.Lookup(300));
  EXPECT_FALSE(cache.Lookup(1));
}

TEST_F(FakeHost, CgroupMountOfASubtree) {
  // The mount exposes /kubepods of the hierarchy: /kubepods/pod1 is <mount>/pod1.
  std::ofstream(root_ + "/mountinfo")
      << "41 31 0:38 /kubepods " << root_ << "/cgroup2/kubepods rw - cgroup2 cgroup2 rw\n";
  UserResolver users(root_);
  ProcessCache cache(&users, Options());
  Result<ProcessInfo> app = cache.ReadFromProc(100);
  ASSERT_TRUE(app.ok()) << app.status().message();
  EXPECT_EQ(app->cgroup_id, Inode(root_ + "/cgroup2/kubepods/pod1"));
}

TEST_F(FakeHost, NoCgroup2MountMeansIdZero) {
  std::ofstream(root_ + "/mountinfo") << "23 1 0:21 / /sys rw - sysfs sysfs rw\n";
  UserResolver users(root_);
  ProcessCache cache(&users, Options());
  Result<ProcessInfo> app = cache.ReadFromProc(100);
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->cgroup_id, 0u);
}

TEST_F(FakeHost, MissingProcRootIsAnErrorThatNamesTheFix) {
  UserResolver users(root_);
  ProcessCache::Options options = Options();
  options.proc_root = root_ + "/nope";
  ProcessCache cache(&users, options);
  Result<size_t> added = cache.SeedFromProc();
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.status().message(), "cannot list " + root_ +
                                          "/nope: No such file or directory (set HOST_PROC to the "
                                          "host's /proc)");
}

TEST_F(FakeHost, EventsKeepItCurrent) {
  UserResolver users(root_);
  ProcessCache cache(&users, Options());
  ASSERT_TRUE(cache.SeedFromProc().ok());

  // fork: the child runs its parent's executable until it execs.
  ProcessInfo child;
  child.pid = 101;
  child.ppid = 100;
  child.comm = "fake app";
  child.uid = 1000;
  child.cgroup_id = 77;
  child.start_time_ns = 5'000;
  cache.OnFork(child);
  std::optional<ProcessInfo> forked = cache.Lookup(101);
  ASSERT_TRUE(forked);
  EXPECT_EQ(forked->filename, "/usr/bin/fake");
  EXPECT_EQ(forked->user, "alice");
  EXPECT_EQ(forked->cgroup_id, 77u);
  EXPECT_EQ(forked->start_time_ns, 5'000u);

  // exec: new executable and name.
  child.comm = "sh";
  child.filename = "/bin/sh";
  cache.OnExec(child);
  std::optional<ProcessInfo> execd = cache.Lookup(101);
  ASSERT_TRUE(execd);
  EXPECT_EQ(execd->comm, "sh");
  EXPECT_EQ(execd->filename, "/bin/sh");
  EXPECT_EQ(cache.size(), 3u);

  // exit: still resolvable during the grace period, gone after it.
  auto t0 = ProcessCache::Clock::now();
  cache.OnExit(101, t0);
  ASSERT_TRUE(cache.Lookup(101));
  EXPECT_TRUE(cache.Lookup(101)->exited);
  EXPECT_EQ(cache.ExpireExited(t0 + 29s), 0u);
  EXPECT_TRUE(cache.Lookup(101));
  EXPECT_EQ(cache.ExpireExited(t0 + 30s), 1u);
  EXPECT_FALSE(cache.Lookup(101));
  EXPECT_TRUE(cache.Lookup(100));  // never exited: kept

  // A fork whose parent is unknown has no executable yet; an exit of an unknown pid is ignored.
  ProcessInfo orphan;
  orphan.pid = 500;
  orphan.ppid = 499;
  cache.OnFork(orphan);
  EXPECT_EQ(cache.Lookup(500)->filename, "");
  cache.OnExit(12345, t0);
  EXPECT_FALSE(cache.Lookup(12345));
}

TEST_F(FakeHost, PidReusedDuringGraceIsANewProcess) {
  UserResolver users(root_);
  ProcessCache cache(&users, Options());
  ASSERT_TRUE(cache.SeedFromProc().ok());
  cache.OnExit(100, ProcessCache::Clock::now());
  ProcessInfo reused;
  reused.pid = 100;
  reused.ppid = 2;
  reused.comm = "new";
  cache.OnFork(reused);
  EXPECT_FALSE(cache.Lookup(100)->exited);
  EXPECT_EQ(cache.ExpireExited(ProcessCache::Clock::now() + 1h), 0u);
  EXPECT_EQ(cache.Lookup(100)->comm, "new");
}

TEST(ProcessCacheRealProc, OwnEntryMatchesTheSyscalls) {
  UserResolver users;
  ProcessCache cache(&users, ProcessCache::Options{});
  Result<size_t> added = cache.SeedFromProc();
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_GT(*added, 1u);

  std::optional<ProcessInfo> self = cache.Lookup(static_cast<uint32_t>(getpid()));
  ASSERT_TRUE(self);
  EXPECT_EQ(self->pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(self->ppid, static_cast<uint32_t>(getppid()));
  EXPECT_EQ(self->uid, getuid());
  EXPECT_EQ(self->user, getpwuid(getuid())->pw_name);
  EXPECT_EQ(self->comm, std::string(program_invocation_short_name).substr(0, 15));
  EXPECT_EQ(self->filename, fs::read_symlink("/proc/self/exe").string());
  EXPECT_GT(self->start_time_ns, 0u);

  // cgroup v2 id: the inode of our cgroup directory under this machine's cgroup2 mount.
  std::ifstream cgroup_file("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cgroup_file, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  ASSERT_FALSE(path.empty());
  std::string mount =
      fs::exists("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
  EXPECT_EQ(self->cgroup_id, Inode(mount + path));

  // PID 1 is there too.
  EXPECT_TRUE(cache.Lookup(1));
  EXPECT_EQ(ProcessCache::ProcRootFromEnv(),
            std::getenv("HOST_PROC") ? std::getenv("HOST_PROC") : "/proc");
}

}  // namespace
}  // namespace nodescope::sensor::proc
