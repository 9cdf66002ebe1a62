// The ebpf-kernel plugin's options (Netdata's ebpf.d.conf names where it has them) and the
// interface each group of families with its own BPF object implements.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/ingest.pb.h"

namespace nodescope::sensor::kernel {

// Every family, in README order. Netdata's defaults are on unless switched off; the others only
// when switched on (ebpf_programs).
inline const std::vector<std::string> kFamilies = {
    "process",  "fd",    "vfs",  "sync", "mount", "socket", "hardirq",   "softirq",
    "oomkill",  "cachestat", "dcstat", "swap", "shm", "disk", "filesystem", "mdflush"};
inline const std::set<std::string> kDefaultFamilies = {
    "process", "fd", "vfs", "sync", "mount", "socket", "hardirq", "softirq", "oomkill"};

// Netdata's "ebpf load mode": entry counts calls; return also hooks the returns and adds the
// error dimensions.
enum class LoadMode { kEntry, kReturn };

struct KernelOptions {
  std::chrono::nanoseconds update_every = std::chrono::seconds(1);
  std::set<std::string> families = kDefaultFamilies;
  LoadMode mode = LoadMode::kEntry;
  uint32_t pid_table_size = 32768;  // per-process state entries in the kernel
  bool apps = true;                 // per-application series
  bool cgroups = true;              // per-cgroup series
  // Application groups: group name -> space-separated process-name patterns ('*' wildcards),
  // as in Netdata's apps_groups.conf. A process no pattern matches is its own group.
  std::map<std::string, std::string> apps_groups;
  std::string forced_strategy;  // probe_strategies["kernel"]: only this attach strategy
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";  // cgroup2 mount point; "" when none
  std::string cgroup_prefix = "/";             // the hierarchy path mounted there

  bool Enabled(std::string_view family) const { return families.count(std::string(family)) > 0; }
};

// One group of families that loads its own BPF object (the per-process families, IRQs, disk,
// filesystems). The plugin starts every source with an enabled family and collects all of them
// every update_every on one thread.
class FamilySource {
 public:
  virtual ~FamilySource() = default;
  // Loads and attaches what the enabled families of this source need. A family no hook can serve
  // on this kernel is not an error: it is reported in Probes() and sends nothing.
  virtual Status Start(const KernelOptions& options) = 0;
  // Appends what changed since the previous Collect (since Start for the first).
  virtual void Collect(v1::KernelMetricsEvent& out) = 0;
  // One entry per enabled family of this source: probe "kernel/<family>", the strategy that
  // attached, or state "failed"/"unavailable" with why.
  virtual std::vector<v1::ProbeStatus> Probes() const = 0;
  // Nanoseconds its BPF programs ran, summed; 0 unless BPF statistics are on (sysctl
  // kernel.bpf_stats_enabled). Resource limits shed the costliest source first.
  virtual uint64_t RunTimeNs() const { return 0; }
  // Detaches; the source may not be started again.
  virtual void Stop() = 0;
};

}  // namespace nodescope::sensor::kernel
