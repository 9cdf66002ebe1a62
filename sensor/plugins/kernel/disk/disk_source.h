// The disk family of the ebpf-kernel plugin (bpf/progs/disk.bpf.c): block I/O latency per disk,
// from the request's issue to the driver to its completion, as a log2 histogram labelled with
// the kernel's name of the disk ("sda", "loop3", "nvme0n1"). Host-wide: a request completes in
// interrupt context, with no process or cgroup of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/plugins/kernel/deltas.h"
#include "sensor/plugins/kernel/family_probe.h"
#include "sensor/plugins/kernel/maps.h"
#include "sensor/plugins/kernel/options.h"

struct disk_bpf;

namespace nodescope::sensor::kernel::disk {

class DiskSource final : public FamilySource {
 public:
  static constexpr char kFamily[] = "disk";
  // A request in flight longer than this is taken as one whose completion the probe will never
  // see (a record of the tracepoint strategy whose sector changed, a request aborted without a
  // completion) and its start is dropped, so that such leftovers cannot fill the map. Block
  // layer timeouts are 30 s (SCSI, NVMe) and end a request one way or another.
  static constexpr std::chrono::minutes kInflightExpiry{10};
  static constexpr std::chrono::seconds kSweepEvery{60};

  // With `forced_strategy` ("tp_btf" or "tracepoint") only that strategy is tried; otherwise
  // tp_btf, then tracepoint.
  explicit DiskSource(std::string forced_strategy = {});
  ~DiskSource() override;  // Stop()
  DiskSource(const DiskSource&) = delete;
  DiskSource& operator=(const DiskSource&) = delete;

  nodescope::Status Start(const KernelOptions& options) override;
  void Collect(v1::KernelMetricsEvent& out) override;
  std::vector<v1::ProbeStatus> Probes() const override;
  uint64_t RunTimeNs() const override { return TotalRunTimeNs(probe_.probe()); }
  void Stop() override;

  // The kernel's counters (enum ns_disk_counter), summed over CPUs; zeros when not attached.
  std::vector<uint64_t> KernelCounters() const { return probe_.probe().KernelCounters(); }

 private:
  // The name of the disk `kernel_dev`; re-reads diskstats for a device it does not know, at
  // most once per Collect.
  std::string DeviceName(uint32_t kernel_dev, bool& reread);
  // Drops starts older than kInflightExpiry; returns how many.
  uint64_t SweepInflight();

  std::string proc_root_;
  bool started_ = false;
  FamilyProbe<disk_bpf> probe_;
  std::map<uint32_t, std::string> names_;  // kernel dev_t -> diskstats name
  PeriodicSweep sweep_{kSweepEvery};
  HistogramDeltas hists_;
  CounterDeltas lost_;
};

}  // namespace nodescope::sensor::kernel::disk
