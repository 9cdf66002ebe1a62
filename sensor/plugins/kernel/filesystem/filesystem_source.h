// The filesystem family of the ebpf-kernel plugin (bpf/progs/filesystem.bpf.c): latency of read,
// write, open and sync calls on regular files, per filesystem type (ext4, xfs, btrfs, nfs, ...),
// as log2 histograms labelled fstype and op. Measured at the syscall boundary (sys_enter to
// sys_exit), host-wide.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/bpf/programs.h"
#include "sensor/plugins/kernel/deltas.h"
#include "sensor/plugins/kernel/family_probe.h"
#include "sensor/plugins/kernel/maps.h"
#include "sensor/plugins/kernel/options.h"

struct filesystem_bpf;

namespace nodescope::sensor::kernel::filesystem {

class FilesystemSource final : public FamilySource {
 public:
  static constexpr char kFamily[] = "filesystem";
  // An entry of the in-flight map is dropped when its thread no longer exists and it is at least
  // this old: its return was never seen (a skipped program run). The age keeps a /proc of
  // another pid namespace, where no thread of the host is found, from dropping live calls other
  // than ones blocked that long.
  static constexpr std::chrono::seconds kStaleAfter{60};
  static constexpr std::chrono::seconds kSweepEvery{60};

  using ProgramStats = bpf::ProgramStats;

  // With `forced_strategy` ("tp_btf" or "raw_tp") only that strategy is tried; otherwise tp_btf,
  // then raw_tp.
  explicit FilesystemSource(std::string forced_strategy = {});
  ~FilesystemSource() override;  // Stop()
  FilesystemSource(const FilesystemSource&) = delete;
  FilesystemSource& operator=(const FilesystemSource&) = delete;

  // The fstype label of each type index and the op label of each op (bpf/abi/filesystem.h).
  static std::vector<std::string> FsTypes();
  static std::vector<std::string> Ops();

  nodescope::Status Start(const KernelOptions& options) override;
  void Collect(v1::KernelMetricsEvent& out) override;
  std::vector<v1::ProbeStatus> Probes() const override;
  uint64_t RunTimeNs() const override { return TotalRunTimeNs(probe_.probe()); }
  void Stop() override;

  // The kernel's counters (enum ns_fs_counter), summed over CPUs; zeros when not attached.
  std::vector<uint64_t> KernelCounters() const { return probe_.probe().KernelCounters(); }
  // The attached programs; empty when nothing is attached.
  std::vector<ProgramStats> Programs() const { return probe_.probe().Programs(); }

 private:
  // Drops the entries of threads gone for good (kStaleAfter); returns how many.
  uint64_t SweepInflight();

  std::string proc_root_;
  bool started_ = false;
  FamilyProbe<filesystem_bpf> probe_;
  PeriodicSweep sweep_{kSweepEvery};
  HistogramDeltas hists_;
  CounterDeltas lost_;
};

}  // namespace nodescope::sensor::kernel::filesystem
