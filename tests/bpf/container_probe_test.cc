// Runs real children in cgroup v2 directories named as containerd, CRI-O and docker name theirs
// under the kubelet's systemd and cgroupfs drivers, with the process probe emitting through the
// container sink as the sensor wires it, and checks that each child's exec and exit carry exactly
// that container (id, pod UID, runtime), and that a process in no container carries none.
// Needs root and a cgroup2 mount.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sensor/bpf/environment.h"
#include "sensor/plugins/process/process_plugin.h"
#include "sensor/proc/container_sink.h"
#include "sensor/proc/procfs.h"
#include "sensor/proc/users.h"
#include "tests/bpf/capturing_sink.h"

namespace nodescope::sensor {
namespace {

using namespace std::chrono_literals;
using proc::ContainerRef;

constexpr char kContainerd[] = "3b9f2c1a7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
constexpr char kCrio[] = "c0ffee00d15ea5e0123456789abcdef0123456789abcdef0123456789abcdef0";
constexpr char kDocker[] = "d0c4e7000000000000000000000000000000000000000000000000000000cafe";
constexpr char kBestEffortUid[] = "5f1c2a3b-6d7e-4f80-9a1b-2c3d4e5f6a7b";
constexpr char kBestEffortSlice[] = "kubepods-besteffort-pod5f1c2a3b_6d7e_4f80_9a1b_2c3d4e5f6a7b";
constexpr char kGuaranteedUid[] = "0e9d8c7b-6a59-4483-9271-605f4e3d2c1b";

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class ContainerProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Status env = bpf::PrepareEnvironment();
    ASSERT_TRUE(env.ok()) << env.message();
  }

  void SetUp() override {
    // The sensor's own way to the hierarchy (HOST_ROOT / HOST_PROC honoured).
    cgroup2_ = proc::FindCgroup2(proc::UserResolver::HostRootFromEnv(),
                                 proc::ProcessCache::ProcRootFromEnv());
    ASSERT_FALSE(cgroup2_.dir.empty()) << "this test needs a cgroup2 mount";
    Result<std::string> own = proc::ReadWholeFile("/proc/self/cgroup");
    ASSERT_TRUE(own.ok()) << own.status().message();
    // The fork events are ours, in our cgroup, and must carry no container.
    ASSERT_TRUE(proc::ParseProcCgroup(*own).empty())
        << "this test runs in a container's cgroup, so a process outside any container cannot "
           "be made here:\n"
        << *own;
    std::optional<std::string> own_v2 = proc::ParseCgroupV2Path(*own);
    ASSERT_TRUE(own_v2);
    own_cgroup_ = Inode(cgroup2_.dir + (*own_v2 == "/" ? "" : *own_v2));
    // Everything under one directory of this run, so a real kubelet's kubepods.slice is never
    // touched; kubepods paths under a prefix are what kind's --cgroup-root makes too.
    base_ = "/nodescope-container-test-" + std::to_string(getpid()) + ".slice";
    ASSERT_NO_FATAL_FAILURE(MakeCgroup(base_));
    users_ = std::make_unique<proc::UserResolver>();
    cache_ = std::make_unique<proc::ProcessCache>(users_.get(), proc::ProcessCache::Options{});
    containers_ = std::make_unique<proc::ContainerSink>(&sink_, proc::CgroupPaths(cgroup2_));
  }

  void TearDown() override {
    plugin_.Stop();
    // Deepest first; the children have been reaped, but the kernel may still hold an exited
    // task's cgroup for a moment (EBUSY).
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      for (int i = 0; i < 50 && rmdir(it->c_str()) != 0 && errno == EBUSY; ++i) {
        std::this_thread::sleep_for(20ms);
      }
      EXPECT_NE(access(it->c_str(), F_OK), 0) << "left behind: " << *it;
    }
  }

  // mkdir -p of `relative` under the mount, remembering what it made for TearDown.
  void MakeCgroup(const std::string& relative) {
    size_t at = 0;
    while (at != std::string::npos) {
      at = relative.find('/', at + 1);
      const std::string dir = cgroup2_.dir + relative.substr(0, at);
      if (mkdir(dir.c_str(), 0755) == 0) {
        made_.push_back(dir);
      } else {
        ASSERT_EQ(errno, EEXIST) << dir << ": " << std::strerror(errno);
      }
    }
  }

  // Forks a child that joins `cgroup` (relative to the mount) and execs /bin/true; reaps it.
  pid_t RunIn(const std::string& cgroup) {
    const std::string procs = cgroup2_.dir + cgroup + "/cgroup.procs";
    const char* procs_path = procs.c_str();
    pid_t pid = fork();
    if (pid == 0) {  // async-signal-safe calls only
      int fd = open(procs_path, O_WRONLY);
      if (fd < 0 || write(fd, "0", 1) != 1) _exit(120);  // "0": the writing process itself
      close(fd);
      execl("/bin/true", "true", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return pid;
  }

  // The child's fork (ours: no container), then its exec and exit in `cgroup` with `want`.
  void Check(const std::string& cgroup, const ContainerRef& want) {
    SCOPED_TRACE(cgroup);
    const pid_t pid = RunIn(cgroup);
    std::vector<v1::Event> events = sink_.WaitFor(static_cast<uint32_t>(pid), 3);
    ASSERT_EQ(events.size(), 3u) << "pid " << pid;
    const v1::ProcessEvent& fork = events[0].process();
    EXPECT_EQ(fork.kind(), v1::ProcessEvent::FORK);
    EXPECT_EQ(fork.cgroup_id(), own_cgroup_);
    EXPECT_FALSE(fork.has_container()) << fork.ShortDebugString();
    for (size_t i : {1, 2}) {
      const v1::ProcessEvent& p = events[i].process();
      std::cerr << p.ShortDebugString() << "\n";
      EXPECT_EQ(p.kind(), i == 1 ? v1::ProcessEvent::EXEC : v1::ProcessEvent::EXIT);
      EXPECT_EQ(p.filename(), "/bin/true");
      EXPECT_EQ(p.cgroup_id(), Inode(cgroup2_.dir + cgroup));
      EXPECT_EQ(p.has_container(), !want.empty()) << p.ShortDebugString();
      EXPECT_EQ(p.container().id(), want.id);
      EXPECT_EQ(p.container().pod_uid(), want.pod_uid);
      EXPECT_EQ(p.container().runtime(), want.runtime);
    }
  }

  proc::Cgroup2Mount cgroup2_;
  uint64_t own_cgroup_ = 0;
  std::string base_;
  std::vector<std::string> made_;
  std::unique_ptr<proc::UserResolver> users_;
  std::unique_ptr<proc::ProcessCache> cache_;
  CapturingSink sink_;
  std::unique_ptr<proc::ContainerSink> containers_;
  process::ProcessPlugin plugin_;
};

TEST_F(ContainerProbeTest, ExecAndExitCarryTheirContainer) {
  const std::string containerd = base_ + "/kubepods.slice/kubepods-besteffort.slice/" +
                                 kBestEffortSlice + ".slice/cri-containerd-" + kContainerd +
                                 ".scope";
  const std::string crio = base_ + "/kubepods/pod" + kGuaranteedUid + "/crio-" + kCrio;
  const std::string conmon = base_ + "/kubepods/pod" + kGuaranteedUid + "/crio-conmon-" + kCrio;
  const std::string docker = base_ + "/system.slice/docker-" + kDocker + ".scope";
  const std::string service = base_ + "/system.slice/cron.service";
  for (const std::string* c : {&containerd, &crio, &conmon, &service}) {
    ASSERT_NO_FATAL_FAILURE(MakeCgroup(*c));
  }
  ASSERT_TRUE(cache_->SeedFromProc().ok());
  Status started = plugin_.Start(containers_.get(), cache_.get());
  ASSERT_TRUE(started.ok()) << started.message();

  // systemd driver, containerd, a besteffort pod.
  Check(containerd, {kContainerd, kBestEffortUid, "containerd"});
  // cgroupfs driver, CRI-O, a guaranteed pod; and CRI-O's conmon beside it: the pod only.
  Check(crio, {kCrio, kGuaranteedUid, "crio"});
  Check(conmon, {"", kGuaranteedUid, ""});
  // A system service: no container.
  Check(service, {});
  // A container made while the sensor runs, after its walks of the tree: found by the next one,
  // in time for its first exec.
  const uint64_t walks = containers_->walks();
  ASSERT_NO_FATAL_FAILURE(MakeCgroup(docker));
  Check(docker, {kDocker, "", "docker"});
  EXPECT_GT(containers_->walks(), walks);
  EXPECT_EQ(plugin_.counters().ringbuf_drops, 0u);
}

}  // namespace
}  // namespace nodescope::sensor
