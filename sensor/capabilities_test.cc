#include "sensor/capabilities.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor {
namespace {

std::string Kept(const SensorConfig& config, int last_cap = 40) {
  return CapabilityNames(MaskOf(CapabilitiesToKeep(config, last_cap)));
}

TEST(Capabilities, KeptSetFollowsThePlugins) {
  SensorConfig config;  // ebpf-net (httpflow) and ebpf-kernel
  EXPECT_EQ(Kept(config), "CAP_SYS_PTRACE,CAP_PERFMON,CAP_BPF");
  config.enabled_plugins = {"ebpf-bash"};
  EXPECT_EQ(Kept(config), "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_PERFMON,CAP_BPF");
  config.enabled_plugins = {"ebpf-net"};
  config.l7net_enabled = {"httpflow", "httpflow-tls"};
  EXPECT_EQ(Kept(config), "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_PERFMON,CAP_BPF");
  config.enabled_plugins = {"ebpf-conntrack"};
  EXPECT_EQ(Kept(config), "CAP_NET_ADMIN,CAP_SYS_PTRACE,CAP_SYS_ADMIN,CAP_PERFMON,CAP_BPF");
  // Before 5.8 CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
  config.enabled_plugins = {"ebpf-kernel"};
  EXPECT_EQ(Kept(config, 37), "CAP_SYS_PTRACE,CAP_SYS_ADMIN");
  for (const KeptCapability& c : CapabilitiesToKeep(config, 40)) EXPECT_FALSE(c.why.empty());
}

TEST(Capabilities, Names) {
  EXPECT_EQ(CapabilityName(0), "CAP_CHOWN");
  EXPECT_EQ(CapabilityName(40), "CAP_CHECKPOINT_RESTORE");
  EXPECT_EQ(CapabilityName(41), "cap_41");
  EXPECT_EQ(CapabilityNames(0), "none");
  EXPECT_EQ(CapabilityNames((uint64_t{1} << 21) | 1), "CAP_CHOWN,CAP_SYS_ADMIN");
}

TEST(Capabilities, ReadsStatusLines) {
  test::TempDir dir;
  dir.Write("status",
            "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
            "CapEff:\t000000c000080000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000001\n");
  Result<CapabilitySets> sets = ReadCapabilitySets(dir.File("status"));
  ASSERT_TRUE(sets.ok()) << sets.status().message();
  EXPECT_EQ(sets->permitted, 0x1ffffffffffu);
  EXPECT_EQ(sets->effective, 0xc000080000u);
  EXPECT_EQ(sets->ambient, 1u);
  dir.Write("bad", "CapInh:\tzz\n");
  EXPECT_FALSE(ReadCapabilitySets(dir.File("bad")).ok());
  EXPECT_FALSE(ReadCapabilitySets(dir.File("missing")).ok());
}

// In a child process (the drop cannot be undone): threads started before, blocked in a read,
// and one started after, all end with the kept set, and what a dropped capability allowed fails.
std::string DropInChild(const std::string& scratch_file) {
  Result<int> last = LastCapability();
  if (!last.ok()) return last.status().message();
  Result<CapabilitySets> before = ReadCapabilitySets("/proc/self/status");
  if (!before.ok()) return before.status().message();
  int fds[2];
  if (pipe(fds) != 0) return "pipe";
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([fd = fds[0]] {
      char c;
      while (read(fd, &c, 1) < 0 && errno == EINTR) {
      }
    });
  }
  const uint64_t keep = (uint64_t{1} << kCapSysPtrace) | (uint64_t{1} << kCapBpf);
  Result<uint64_t> kept = DropCapabilities(keep, *last);
  if (!kept.ok()) return kept.status().message();
  if (*kept != (keep & before->permitted)) return "kept " + CapabilityNames(*kept);
  std::atomic<bool> checked{false};
  std::thread late([&] { checked = true; });
  late.join();
  std::string why;
  CapabilitySets expected;
  expected.permitted = expected.effective = *kept;
  expected.bounding = before->bounding & *kept;
  DIR* dir = opendir("/proc/self/task");
  while (dirent* e = dir ? readdir(dir) : nullptr) {
    if (e->d_name[0] == '.') continue;
    auto sets = ReadCapabilitySets(std::string("/proc/self/task/") + e->d_name + "/status");
    if (sets.ok() && !(*sets == expected)) {
      why += std::string("thread ") + e->d_name + " has CapPrm " +
             CapabilityNames(sets->permitted) + " CapBnd " + CapabilityNames(sets->bounding) + "; ";
    }
  }
  if (dir) closedir(dir);
  // CAP_CHOWN is gone: giving a file away is refused even to uid 0.
  if (chown(scratch_file.c_str(), 65534, 65534) == 0 && getuid() == 0) why += "chown worked; ";
  if (write(fds[1], "xxx", 3) != 3) why += "write; ";
  for (auto& t : threads) t.join();
  return why;
}

TEST(Capabilities, DropReachesEveryThread) {
  test::TempDir dir;
  dir.Write("file", "x");
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(out[0]);
    const std::string why = DropInChild(dir.File("file"));
    (void)!write(out[1], why.data(), why.size());
    _exit(why.empty() ? 0 : 1);
  }
  close(out[1]);
  std::string why;
  char buffer[512];
  ssize_t n;
  while ((n = read(out[0], buffer, sizeof(buffer))) > 0) why.append(buffer, n);
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << why;
  EXPECT_EQ(why, "");
}

}  // namespace
}  // namespace nodescope::sensor
