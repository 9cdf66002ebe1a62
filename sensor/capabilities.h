// The capabilities the sensor keeps once its probes are loaded, and the drop of all the others
// from every thread of the process. Loading needs root's whole set (BPF objects, cgroup
// attachments, tracefs and bpffs mounts); what runs afterwards needs a few, each named here with
// the reason, so a compromised sensor cannot load modules, reboot, change files it does not own,
// or regain what it gave up by exec.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sensor/config.h"

namespace nodescope::sensor {

// Numbers as in include/uapi/linux/capability.h.
inline constexpr int kCapDacReadSearch = 2;
inline constexpr int kCapSetpcap = 8;
inline constexpr int kCapNetAdmin = 12;
inline constexpr int kCapSysPtrace = 19;
inline constexpr int kCapSysAdmin = 21;
inline constexpr int kCapPerfmon = 38;  // Linux 5.8
inline constexpr int kCapBpf = 39;      // Linux 5.8

struct KeptCapability {
  int number;
  std::string_view why;
};

// What the sensor still does after Start with `config`'s plugins needs these, on a kernel whose
// highest capability is `last_cap` (/proc/sys/kernel/cap_last_cap): without CAP_BPF (before
// 5.8) CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
std::vector<KeptCapability> CapabilitiesToKeep(const SensorConfig& config, int last_cap);

uint64_t MaskOf(const std::vector<KeptCapability>& caps);
// "CAP_BPF", or "cap_41" for a number this table does not know.
std::string CapabilityName(int number);
// "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE,...": the bits of `mask`, ascending; "none" when empty.
std::string CapabilityNames(uint64_t mask);

struct CapabilitySets {
  uint64_t inheritable = 0, permitted = 0, effective = 0, bounding = 0, ambient = 0;
  bool operator==(const CapabilitySets&) const = default;
};
// The Cap* lines of a /proc/<pid>/status or /proc/<pid>/task/<tid>/status file.
Result<CapabilitySets> ReadCapabilitySets(const std::string& status_path);
// /proc/sys/kernel/cap_last_cap.
Result<int> LastCapability();

// Leaves every thread of this process with exactly `keep` (those bits of it the process holds)
// permitted and effective, nothing inheritable or ambient, and `keep` as the bounding set. Each
// other thread applies it in a signal handler, and every thread's /proc status is read back until
// all agree, so a thread created meanwhile by one not yet reduced is caught. Returns the mask kept.
// Errors name the capability or thread that failed.
Result<uint64_t> DropCapabilities(uint64_t keep, int last_cap);

// CapabilitiesToKeep for `config` on this kernel, then DropCapabilities; logs one line naming
// what was kept. Returns the kept mask.
Result<uint64_t> DropUnneededCapabilities(const SensorConfig& config);

}  // namespace nodescope::sensor
