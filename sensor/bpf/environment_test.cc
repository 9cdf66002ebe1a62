#include "common/testing/temp_dir.h"
#include "sensor/bpf/environment.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace nodescope::sensor::bpf {
namespace {

uint64_t Bit(int cap) { return uint64_t{1} << cap; }

TEST(CheckCapabilities, SysAdminOrBpfWithPerfmon) {
  EXPECT_TRUE(CheckCapabilities(Bit(kCapSysAdmin)).ok());
  EXPECT_TRUE(CheckCapabilities(Bit(kCapBpf) | Bit(kCapPerfmon)).ok());
  EXPECT_TRUE(CheckCapabilities(0x1fffeffffffULL).ok());  // root here: all but CAP_SYS_RESOURCE
}

TEST(CheckCapabilities, MissingOnesAreNamedInOneLine) {
  Status none = CheckCapabilities(0);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.message(),
            "missing capabilities CAP_BPF CAP_PERFMON (or CAP_SYS_ADMIN) to load eBPF programs: "
            "run nodescope-sensor as root, or in a container with privileged: true");
  Status only_bpf = CheckCapabilities(Bit(kCapBpf));
  ASSERT_FALSE(only_bpf.ok());
  EXPECT_NE(only_bpf.message().find("missing capabilities CAP_PERFMON (or"), std::string::npos);
  EXPECT_EQ(only_bpf.message().find('\n'), std::string::npos);
}

// Ground truth: the kernel's own account of this process in /proc/self/status.
TEST(EffectiveCapabilities, MatchesProcStatus) {
  std::ifstream status("/proc/self/status");
  std::string line;
  uint64_t cap_eff = 0;
  bool found = false;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      cap_eff = std::stoull(line.substr(7), nullptr, 16);
      found = true;
    }
  }
  ASSERT_TRUE(found);
  Result<uint64_t> caps = EffectiveCapabilities();
  ASSERT_TRUE(caps.ok()) << caps.status().message();
  EXPECT_EQ(*caps, cap_eff);
}

TEST(CheckBtf, MissingBtfSaysWhichKernelOption) {
  Status s = CheckBtf("/nonexistent/btf/vmlinux");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("kernel has no BTF (CONFIG_DEBUG_INFO_BTF): /nonexistent/btf/vmlinux "
                              "is missing",
                              0),
            0u)
      << s.message();
  EXPECT_TRUE(CheckBtf("/sys/kernel/btf/vmlinux").ok());  // this machine has BTF
}

using nodescope::test::TempDir;

TEST(EnsureMounted, AlreadyMountedIsLeftAlone) {
  TempDir dir;
  std::string mountinfo = dir.path() + "/mountinfo";
  std::ofstream(mountinfo) << "42 23 0:13 / " << dir.path()
                           << "/tracing rw,relatime shared:5 - tracefs nodev rw\n";
  // The directory does not exist: a mount attempt would fail, so success means none was made.
  EXPECT_TRUE(EnsureMounted(mountinfo, dir.path() + "/tracing", "tracefs", "mount ...").ok());
}

TEST(EnsureMounted, FailureIsOneLineWithTheFix) {
  TempDir dir;
  std::string mountinfo = dir.path() + "/mountinfo";
  std::ofstream(mountinfo) << "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  std::string target = dir.path() + "/missing";
  Status s = EnsureMounted(mountinfo, target, "tracefs", "mount -t tracefs nodev " + target);
  ASSERT_FALSE(s.ok());
  // mount(2) resolves the target before checking privileges: ENOENT for root and others alike.
  const std::string reason = std::strerror(ENOENT);
  EXPECT_EQ(s.message(), "tracefs is not mounted at " + target +
                             " and mounting it failed: " + reason +
                             "; mount it "
                             "(mount -t tracefs nodev " +
                             target + ") or run nodescope-sensor as root");
}

TEST(EnsureMounted, UnreadableMountInfo) {
  Status s = EnsureMounted("/nonexistent/mountinfo", "/sys/kernel/tracing", "tracefs", "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/mountinfo"), std::string::npos);
}

}  // namespace
}  // namespace nodescope::sensor::bpf
