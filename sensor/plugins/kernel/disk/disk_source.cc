#include "sensor/plugins/kernel/disk/disk_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <cerrno>
#include <memory>

#include "bpf/abi/disk.h"
#include "disk.skel.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/strategy.h"
#include "sensor/plugins/kernel/disk/diskstats.h"

namespace nodescope::sensor::kernel::disk {
namespace {

constexpr char kMetric[] = "disk_io_latency";
constexpr char kLost[] = "kernel_events_lost";

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

uint64_t RecursionMisses(const std::vector<int>& prog_fds) {
  uint64_t misses = 0;
  for (int fd : prog_fds) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) misses += info.recursion_misses;
  }
  return misses;
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

DiskSource::DiskSource(std::string forced_strategy)
    : forced_strategy_(std::move(forced_strategy)), probe_(kProbe, NS_DISK_CNT_MAX) {}

DiskSource::~DiskSource() { DiskSource::Stop(); }

std::vector<std::string> DiskSource::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kTracepoint)};
}

nodescope::Status DiskSource::Attach(const std::string& strategy) {
  bpf::LibbpfLogCapture capture;
  std::unique_ptr<disk_bpf, decltype(&disk_bpf__destroy)> skel(disk_bpf__open(),
                                                               &disk_bpf__destroy);
  if (!skel) return nodescope::Status::Error("open: " + bpf::LibbpfErrorText(errno));
  if (nodescope::Status s = bpf::SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  if (int err = disk_bpf__load(skel.get()); err != 0) {
    return nodescope::Status::Error("load: " + bpf::LibbpfErrorText(err));
  }
  // Issue before completion: a completion hook attached first would only meet more requests
  // whose issue it never saw.
  bpf_program* const order[] = {strategy == bpf::kTpBtf ? skel->progs.tp_btf__block_rq_issue
                                                        : skel->progs.tracepoint__block_rq_issue,
                                strategy == bpf::kTpBtf
                                    ? skel->progs.tp_btf__block_rq_complete
                                    : skel->progs.tracepoint__block_rq_complete};
  std::vector<bpf::LinkPtr> links;
  std::vector<int> fds;
  for (bpf_program* program : order) {
    if (!bpf::ProgramInStrategy(bpf_program__name(program), strategy)) {
      return nodescope::Status::Error(std::string("program ") + bpf_program__name(program) +
                                      " is not of strategy " + strategy);
    }
    bpf_link* link = bpf_program__attach(program);
    if (link == nullptr) {
      const int err = errno;
      return nodescope::Status::Error(std::string("attach ") + bpf_program__name(program) + ": " +
                                      bpf::LibbpfErrorText(err));
    }
    links.emplace_back(link, &bpf_link__destroy);
    fds.push_back(bpf_program__fd(program));
  }
  const int counters_fd = bpf_map__fd(skel->maps.counters);
  disk_bpf* raw = skel.release();
  probe_.Adopt([raw] { disk_bpf__destroy(raw); }, std::move(links), nullptr, counters_fd);
  skel_ = raw;
  prog_fds_ = std::move(fds);
  return nodescope::Status::Ok();
}

nodescope::Status DiskSource::Start(const KernelOptions& options) {
  if (started_) return nodescope::Status::Error("disk source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  enabled_ = options.Enabled(kFamily);
  if (!enabled_) return nodescope::Status::Ok();
  if (Result<std::vector<DiskStats>> stats = ReadDiskstats(proc_root_); stats.ok()) {
    names_ = KernelDevNames(*stats);
  } else {
    spdlog::warn("{}: device names: {}", kProbe, stats.status().message());
  }
  nodescope::Status attached = probe_.Select(Strategies(), forced_strategy_,
                                             [this](const std::string& s) { return Attach(s); });
  if (!attached.ok()) spdlog::warn("{}: {}", kProbe, attached.message());
  next_sweep_ = std::chrono::steady_clock::now() + kSweepEvery;
  // A family no hook can serve is reported in Probes(), not as an error of the plugin.
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
      spdlog::warn("{}: device names: {}", kProbe, stats.status().message());
    }
  }
  return DevLabel(kernel_dev);
}

uint64_t DiskSource::SweepInflight() {
  const int fd = bpf_map__fd(skel_->maps.inflight);
  const uint64_t now = MonotonicNs();
  const uint64_t expiry = std::chrono::nanoseconds(kInflightExpiry).count();
  std::vector<ns_disk_rq_key> stale;
  ns_disk_rq_key key{}, next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    uint64_t start = 0;
    if (bpf_map_lookup_elem(fd, &next, &start) == 0 && now > start && now - start > expiry) {
      stale.push_back(next);
    }
    key = next;
    previous = &key;
  }
  uint64_t dropped = 0;
  for (const ns_disk_rq_key& k : stale) {
    // ENOENT: completed meanwhile, and counted.
    if (bpf_map_delete_elem(fd, &k) == 0) ++dropped;
  }
  return dropped;
}

void DiskSource::Collect(v1::KernelMetricsEvent& out) {
  if (skel_ == nullptr) return;
  const int fd = bpf_map__fd(skel_->maps.hists);
  bool reread = false;
  uint32_t key = 0, next = 0;
  const void* previous = nullptr;
  // Entries are only ever added, so walking the keys while requests complete misses none that
  // existed when the walk started.
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    ns_hist hist{};
    if (bpf_map_lookup_elem(fd, &next, &hist) == 0) {
      hists_.Append(std::string(kMetric) + "|" + std::to_string(next), hist, kMetric,
                    ExtraLabels({{"device", DeviceName(next, reread)}}), out);
    }
    key = next;
    previous = &key;
  }
  if (std::chrono::steady_clock::now() >= next_sweep_) {
    expired_ += SweepInflight();
    next_sweep_ = std::chrono::steady_clock::now() + kSweepEvery;
  }
  const std::vector<uint64_t> counters = probe_.KernelCounters();
  const std::pair<const char*, uint64_t> lost[] = {
      {"disk_inflight_full", counters[NS_DISK_CNT_INFLIGHT_FULL]},
      {"disk_no_start", counters[NS_DISK_CNT_NO_START]},
      {"disk_devices_full", counters[NS_DISK_CNT_DEVICES_FULL]},
      {"disk_inflight_expired", expired_},
      {"disk_recursion", RecursionMisses(prog_fds_)},
  };
  for (const auto& [reason, total] : lost) {
    lost_.Append(std::string(kLost) + "|" + reason, total, kLost, ExtraLabels({{"reason", reason}}),
                 out);
  }
}

std::vector<v1::ProbeStatus> DiskSource::Probes() const {
  if (!enabled_) return {};
  v1::ProbeStatus status = probe_.status();
  if (status.state() == "attached") status.set_coverage(Coverage(status.strategy()));
  return {status};
}

std::vector<uint64_t> DiskSource::KernelCounters() const { return probe_.KernelCounters(); }

void DiskSource::Stop() {
  probe_.Teardown();
  skel_ = nullptr;
  prog_fds_.clear();
}

}  // namespace nodescope::sensor::kernel::disk
