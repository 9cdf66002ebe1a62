#include "sensor/plugins/kernel/disk/disk_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include "bpf/abi/disk.h"
#include "disk.skel.h"
#include "sensor/bpf/clock.h"
#include "sensor/bpf/strategy.h"
#include "sensor/plugins/kernel/disk/diskstats.h"

namespace nodescope::sensor::kernel::disk {
namespace {

constexpr char kMetric[] = "disk_io_latency";

// What the attached probe does not see, for its ProbeStatus.
std::string Coverage(std::string_view strategy) {
  std::string coverage =
      "requests handed to a driver (block_rq_issue), per whole disk: a partition's I/O counts on "
      "its disk, and bio-based devices (device-mapper, md) that issue no requests of their own "
      "have no series; empty PREFLUSH writes the flush machinery ends without issuing them are "
      "not counted (their FLUSH request is)";
  if (strategy == bpf::kTracepoint) {
    coverage +=
        "; requests are told apart by (disk, start sector): two in flight at one sector, or a "
        "partial completion, lose a start (kernel_events_lost reason disk_no_start); events that "
        "arrive while another tracepoint BPF program runs on the same CPU are skipped by the "
        "kernel (reason disk_recursion)";
  }
  return coverage;
}

constexpr bpf::SkeletonOps<disk_bpf> kOps = {
    .open = disk_bpf__open,
    .load = disk_bpf__load,
    .destroy = disk_bpf__destroy,
    .counters_map = [](disk_bpf* s) { return s->maps.counters; },
    // Issue before completion: a completion hook attached first would only meet more requests
    // whose issue it never saw.
    .attach_first = [](std::string_view program) { return program.ends_with("__block_rq_issue"); },
};

}  // namespace

DiskSource::DiskSource(std::string forced_strategy)
    : probe_(kFamily, NS_DISK_CNT_MAX, bpf::kTracepoint, std::move(forced_strategy)) {}

DiskSource::~DiskSource() { DiskSource::Stop(); }

nodescope::Status DiskSource::Start(const KernelOptions& options) {
  if (started_) return nodescope::Status::Error("disk source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  if (!options.Enabled(kFamily)) return nodescope::Status::Ok();
  if (Result<std::vector<DiskStats>> stats = ReadDiskstats(proc_root_); stats.ok()) {
    names_ = KernelDevNames(*stats);
  } else {
    spdlog::warn("kernel/disk: device names: {}", stats.status().message());
  }
  probe_.Start(kOps);
  sweep_.Start();
  return nodescope::Status::Ok();
}

std::string DiskSource::DeviceName(uint32_t kernel_dev, bool& reread) {
  auto it = names_.find(kernel_dev);
  if (it != names_.end()) return it->second;
  if (!reread) {
    reread = true;
    Result<std::vector<DiskStats>> stats = ReadDiskstats(proc_root_);
    if (stats.ok()) {
      names_ = KernelDevNames(*stats);
      it = names_.find(kernel_dev);
      if (it != names_.end()) return it->second;
    } else {
      spdlog::warn("kernel/disk: device names: {}", stats.status().message());
    }
  }
  return DevLabel(kernel_dev);
}

uint64_t DiskSource::SweepInflight() {
  const uint64_t now = bpf::MonotonicNs();
  const uint64_t expiry = std::chrono::nanoseconds(kInflightExpiry).count();
  // ENOENT on delete: completed meanwhile, and counted.
  return DeleteEntries<ns_disk_rq_key, uint64_t>(
      bpf_map__fd(probe_.skel()->maps.inflight),
      [&](const ns_disk_rq_key&, uint64_t start) { return now > start && now - start > expiry; });
}

void DiskSource::Collect(v1::KernelMetricsEvent& out) {
  if (probe_.skel() == nullptr) return;
  bool reread = false;
  // Entries are only ever added, so walking the keys while requests complete misses none that
  // existed when the walk started.
  ForEachEntry<uint32_t, ns_hist>(
      bpf_map__fd(probe_.skel()->maps.hists), [&](uint32_t dev, const ns_hist& hist) {
        hists_.Append(std::string(kMetric) + "|" + std::to_string(dev), hist, kMetric,
                      ExtraLabels({{"device", DeviceName(dev, reread)}}), out);
      });
  const uint64_t swept = sweep_.Run([this] { return SweepInflight(); });
  const std::vector<uint64_t> counters = KernelCounters();
  const std::pair<const char*, uint64_t> lost[] = {
      {"disk_inflight_full", counters[NS_DISK_CNT_INFLIGHT_FULL]},
      {"disk_no_start", counters[NS_DISK_CNT_NO_START]},
      {"disk_devices_full", counters[NS_DISK_CNT_DEVICES_FULL]},
      {"disk_inflight_expired", swept},
      {"disk_recursion", probe_.probe().RecursionMisses()},
  };
  for (const auto& [reason, total] : lost) AppendLost(lost_, reason, total, out);
}

std::vector<v1::ProbeStatus> DiskSource::Probes() const { return probe_.Probes(Coverage); }

void DiskSource::Stop() { probe_.Stop(); }

}  // namespace nodescope::sensor::kernel::disk
