// The families counted per process (bpf/progs/kernel.bpf.c): process, fd, vfs, sync, mount, shm,
// socket, oomkill. Host-wide totals come from a per-CPU array; per-process totals are folded into
// applications (AppGroups) and cgroups at every Collect, and a process's entries are read one
// last time and freed when its exit event arrives.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bpf/abi/kernel.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/kernel/apps.h"
#include "sensor/plugins/kernel/deltas.h"
#include "sensor/plugins/kernel/family_probe.h"
#include "sensor/plugins/kernel/maps.h"
#include "sensor/plugins/kernel/options.h"
#include "sensor/proc/cgroup_paths.h"

struct kernel_bpf;

namespace nodescope::sensor::kernel {

// What a counter slot is: its catalog name, its family, and whether it is an error dimension
// (return mode only).
struct SlotInfo {
  const char* name;
  const char* family;
  bool error;
};
const std::array<SlotInfo, NS_K_SLOTS>& Slots();
// The families this source serves.
inline const std::vector<std::string> kProcFamilies = {
    "process", "fd", "vfs", "sync", "mount", "shm", "socket", "oomkill", "cachestat"};

class ProcSource : public FamilySource {
 public:
  static constexpr std::string_view kProbe = "kernel";
  using Totals = std::array<uint64_t, NS_K_SLOTS>;

  ProcSource();
  ~ProcSource() override;

  // tp_btf first, then raw_tp.
  static std::vector<std::string> Strategies();

  Status Start(const KernelOptions& options) override;
  void Collect(v1::KernelMetricsEvent& out) override;
  std::vector<v1::ProbeStatus> Probes() const override;
  uint64_t RunTimeNs() const override { return TotalRunTimeNs(probe_); }
  void Stop() override;

  // Health: entries in the per-process table, exit events lost, processes counted host-wide only.
  size_t entries() const { return last_.size(); }
  std::vector<uint64_t> KernelCounters() const { return probe_.KernelCounters(); }

 private:
  // The kernel table's own key (bpf/abi/kernel.h), hashed and compared for the maps below.
  using Key = ns_kernel_proc_key;
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.cgroup_id * 0x9e3779b97f4a7c15ULL ^
                                   (uint64_t{k.tgid} << 32 | k.exec_id));
    }
  };
  struct KeyEq {
    bool operator()(const Key& a, const Key& b) const {
      return a.cgroup_id == b.cgroup_id && a.tgid == b.tgid && a.exec_id == b.exec_id;
    }
  };
  struct Seen {
    Totals totals{};
    std::string app;
  };

  Status Attach(const std::string& strategy);
  void OnRecord(std::span<const std::byte> record);
  // Folds what `entry` counted since its last read into its application and cgroup.
  void Fold(const Key& key, const ns_kernel_proc& entry);
  void ReadTable();
  // After ReadTable: frees the entries of thread groups that are gone, their last totals read.
  void FreeDeadEntries();
  bool Wanted(const SlotInfo& slot) const;

  KernelOptions options_;
  std::optional<AppGroups> apps_;
  std::unique_ptr<proc::CgroupPaths> cgroups_;
  bpf::LoadedProbe probe_;
  kernel_bpf* skel_ = nullptr;
  bool started_ = false;

  std::unordered_map<Key, Seen, KeyHash, KeyEq> last_;
  std::vector<uint32_t> exited_;  // thread groups whose exit events arrived since the last read
  std::unordered_map<uint32_t, int> dead_tgids_;  // tgid -> reads left to free late entries of
  PeriodicSweep proc_check_{std::chrono::seconds(60)};  // entries of groups /proc lacks
  std::map<std::string, Totals> app_deltas_;
  std::map<uint64_t, Totals> cgroup_deltas_;
  CounterDeltas host_;
  Totals host_totals_{};
};

}  // namespace nodescope::sensor::kernel
