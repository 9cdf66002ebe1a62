// One family's BPF object of the ebpf-kernel plugin (disk, filesystem, hardirq, softirq): the
// attach-strategy selection, the skeleton once attached, and the family's ProbeStatus. These
// objects emit no records, so they have no ring buffer: user space reads their maps on Collect.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::kernel {

// Nanoseconds the attached programs of `probe` ran (FamilySource::RunTimeNs).
inline uint64_t TotalRunTimeNs(const bpf::LoadedProbe& probe) {
  uint64_t ns = 0;
  for (const bpf::ProgramStats& p : probe.Programs()) ns += p.run_time_ns;
  return ns;
}

// Logs why a family attached with no strategy: a family no hook can serve on this kernel is
// reported in its ProbeStatus, not as an error of the plugin.
void WarnUnattached(std::string_view probe, const Status& why);

// `Skel` is the bpftool skeleton type (disk_bpf, ...); it need only be complete where Start is
// called.
template <typename Skel>
class FamilyProbe {
 public:
  // Before load, with the strategy being tried: sets read-only data, switches programs or maps off.
  using Configure = std::function<Status(Skel*, std::string_view strategy)>;
  // What the attached probe does not see under `strategy`.
  using Coverage = std::function<std::string(std::string_view strategy)>;

  // Probe "kernel/<family>" with `counter_slots` per-CPU counters. Start tries tp_btf, then
  // `fallback` (the hook of kernels without BTF), or only `forced_strategy` when it is not empty.
  FamilyProbe(std::string_view family, uint32_t counter_slots, std::string_view fallback,
              std::string forced_strategy)
      : family_(family),
        probe_("kernel/" + family_, counter_slots),
        strategies_{std::string(bpf::kTpBtf), std::string(fallback)},
        forced_strategy_(std::move(forced_strategy)) {}
  FamilyProbe(const FamilyProbe&) = delete;
  FamilyProbe& operator=(const FamilyProbe&) = delete;

  const std::string& family() const { return family_; }

  // Loads the object with the first strategy that attaches (bpf::LoadSkeleton); when none does,
  // why is logged and reported by Probes().
  void Start(const bpf::SkeletonOps<Skel>& ops, const Configure& configure = {}) {
    started_ = true;
    Status attached =
        probe_.Select(strategies_, forced_strategy_, [&](const std::string& strategy) -> Status {
          Result<Skel*> skel = bpf::LoadSkeleton<Skel>(probe_, ops, strategy, {}, [&](Skel* s) {
            return configure ? configure(s, strategy) : Status::Ok();
          });
          if (!skel.ok()) return skel.status();
          skel_ = *skel;
          return Status::Ok();
        });
    if (!attached.ok()) WarnUnattached(probe_.status().probe(), attached);
  }

  // The attached skeleton, owned by the probe until Stop; null when nothing is attached.
  Skel* skel() const { return skel_; }
  // The probe's counters and programs (bpf::LoadedProbe::KernelCounters, Programs, ...).
  const bpf::LoadedProbe& probe() const { return probe_; }

  // The family's ProbeStatus, with `coverage` once attached; none when Start never ran (the
  // family is disabled).
  std::vector<v1::ProbeStatus> Probes(const Coverage& coverage) const {
    if (!started_) return {};
    v1::ProbeStatus status = probe_.status();
    if (status.state() == "attached") status.set_coverage(coverage(status.strategy()));
    return {status};
  }

  void Stop() {
    probe_.Teardown();
    skel_ = nullptr;
  }

 private:
  const std::string family_;
  bpf::LoadedProbe probe_;
  const std::vector<std::string> strategies_;
  const std::string forced_strategy_;
  bool started_ = false;
  Skel* skel_ = nullptr;
};

}  // namespace nodescope::sensor::kernel
