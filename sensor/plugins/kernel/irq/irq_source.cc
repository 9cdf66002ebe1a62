#include "sensor/plugins/kernel/irq/irq_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "irq.skel.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/strategy.h"
#include "sensor/plugins/kernel/irq/proc_irq.h"
#include "sensor/plugins/kernel/maps.h"

namespace nodescope::sensor::kernel::irq {
namespace {

// The family a program serves, from its hook ("<strategy>__irq_handler_entry": hardirq).
std::string_view FamilyOf(std::string_view program) {
  const size_t sep = program.find("__");
  const std::string_view hook = sep == std::string_view::npos ? "" : program.substr(sep + 2);
  if (hook.substr(0, 12) == "irq_handler_") return IrqSource::kHardirq;
  if (hook.substr(0, 8) == "softirq_") return IrqSource::kSoftirq;
  return "";
}

bool IsEntryHook(std::string_view program) {
  return program.size() >= 6 && program.substr(program.size() - 6) == "_entry";
}

// An event is lost once per skipped exit: a skipped entry alone shows up as an unmatched exit,
// and a handler that interrupted another BPF program has both skipped.
bool IsExitHook(std::string_view program) { return !IsEntryHook(program); }

// What an attached family cannot see, for its ProbeStatus.
std::string Coverage(std::string_view family, std::string_view strategy) {
  std::string coverage;
  if (family == IrqSource::kHardirq) {
    coverage =
        "handlers registered with request_irq() only (the numbered lines of /proc/interrupts): "
        "the local timer, IPIs and other architecture interrupts (LOC, RES, CAL, TLB, ...) have "
        "no handler tracepoint; a threaded handler's thread is not included";
  }
  if (strategy == bpf::kTracepoint) {
    if (!coverage.empty()) coverage += "; ";
    coverage +=
        "events that arrive while another kprobe or tracepoint BPF program runs on the "
        "same CPU are skipped by the kernel (kernel_events_lost reason " +
        std::string(family) + "_recursion)";
  }
  return coverage;
}

constexpr bpf::SkeletonOps<irq_bpf> kOps = {
    .open = irq_bpf__open,
    .load = irq_bpf__load,
    .destroy = irq_bpf__destroy,
    .counters_map = [](irq_bpf* s) { return s->maps.counters; },
    // Entries before exits: an exit attached first would meet handlers already running, whose
    // entry it never saw, and count each as unmatched.
    .attach_first = IsEntryHook,
};

// Leaves only `family`'s programs of `strategy` on, and creates only its maps: no program of
// this copy uses the other family's.
Status KeepFamily(irq_bpf* skel, const std::string& family, std::string_view strategy) {
  size_t programs = 0;
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, skel->obj) {
    if (!bpf_program__autoload(program)) continue;
    if (FamilyOf(bpf_program__name(program)) == family) {
      ++programs;
    } else if (int err = bpf_program__set_autoload(program, false); err != 0) {
      return Status::Error(std::string("set autoload of ") + bpf_program__name(program) + ": " +
                           bpf::LibbpfErrorText(err));
    }
  }
  if (programs == 0) {
    return Status::Error("no " + family + " program for strategy " + std::string(strategy));
  }
  const bool hard = family == IrqSource::kHardirq;
  for (bpf_map* map : {hard ? skel->maps.softirq_start : skel->maps.hardirq_start,
                       hard ? skel->maps.softirq_hists : skel->maps.hardirq_hists}) {
    if (int err = bpf_map__set_autocreate(map, false); err != 0) {
      return Status::Error(std::string("skip map ") + bpf_map__name(map) + ": " +
                           bpf::LibbpfErrorText(err));
    }
  }
  return Status::Ok();
}

}  // namespace

IrqSource::IrqSource(std::string forced_strategy)
    : hardirq_(kHardirq, NS_IRQ_CNT_MAX, bpf::kTracepoint, forced_strategy),
      softirq_(kSoftirq, NS_IRQ_CNT_MAX, bpf::kTracepoint, forced_strategy) {}

IrqSource::~IrqSource() { IrqSource::Stop(); }

Status IrqSource::Start(const KernelOptions& options) {
  if (started_) return Status::Error("irq source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  for (FamilyProbe<irq_bpf>* family : {&hardirq_, &softirq_}) {
    if (!options.Enabled(family->family())) continue;
    family->Start(kOps, [name = family->family()](irq_bpf* s, std::string_view strategy) {
      return KeepFamily(s, name, strategy);
    });
  }
  return Status::Ok();
}

IrqTotals IrqSource::ReadTotals() {
  IrqTotals totals;
  if (irq_bpf* skel = hardirq_.skel()) {
    totals.hardirq = true;
    // Entries are only ever added, so walking the keys while handlers run misses none that
    // existed when the walk started.
    ForEachEntry<uint32_t, ns_hist>(
        bpf_map__fd(skel->maps.hardirq_hists),
        [&](uint32_t irq, const ns_hist& hist) { totals.hardirq_hists[irq] = hist; });
    const std::vector<uint64_t> counters = hardirq_.probe().KernelCounters();
    totals.lost["hardirq_unmatched"] = counters[NS_IRQ_CNT_HARDIRQ_UNMATCHED];
    totals.lost["hardirq_map_full"] = counters[NS_IRQ_CNT_HARDIRQ_MAP_FULL];
    totals.lost["hardirq_recursion"] = hardirq_.probe().RecursionMisses(IsExitHook);
  }
  if (irq_bpf* skel = softirq_.skel()) {
    totals.softirq = true;
    PerCpuHists per_cpu(bpf_map__fd(skel->maps.softirq_hists));
    for (uint32_t v = 0; v < NS_SOFTIRQ_VECTORS && per_cpu.ok(); ++v) {
      if (!per_cpu.Read(v, totals.softirq_hists[v])) {
        spdlog::warn("kernel/softirq: read vector {}: {}", v, std::strerror(errno));
      }
    }
    const std::vector<uint64_t> counters = softirq_.probe().KernelCounters();
    totals.lost["softirq_unmatched"] = counters[NS_IRQ_CNT_SOFTIRQ_UNMATCHED];
    totals.lost["softirq_bad_vector"] = counters[NS_IRQ_CNT_SOFTIRQ_BAD_VECTOR];
    totals.lost["softirq_recursion"] = softirq_.probe().RecursionMisses(IsExitHook);
  }
  return totals;
}

void IrqSource::LearnNames(const std::vector<uint32_t>& irqs) {
  const std::string path = proc_root_ + "/interrupts";
  Result<std::string> text = ReadProcFile(path);
  Result<Interrupts> parsed =
      text.ok() ? ParseInterrupts(*text) : Result<Interrupts>(text.status());
  if (!parsed.ok()) {
    spdlog::warn("kernel/hardirq: IRQ names: {}", parsed.status().message());
  } else {
    for (const auto& [irq, line] : parsed->lines) names_[irq] = line.name;
  }
  for (uint32_t irq : irqs) names_.try_emplace(irq, "");
}

void IrqSource::Collect(v1::KernelMetricsEvent& out) {
  IrqTotals totals = ReadTotals();
  // A name is read once, when its IRQ first fires: /proc/interrupts has a column per CPU, too
  // much to parse every second on a big machine for names that change only on hotplug.
  std::vector<uint32_t> unnamed;
  for (const auto& [irq, hist] : totals.hardirq_hists) {
    if (names_.count(irq) == 0) unnamed.push_back(irq);
  }
  if (!unnamed.empty()) LearnNames(unnamed);
  metrics_.Append(totals, names_, out);
}

std::vector<v1::ProbeStatus> IrqSource::Probes() const {
  std::vector<v1::ProbeStatus> statuses;
  for (const FamilyProbe<irq_bpf>* family : {&hardirq_, &softirq_}) {
    for (v1::ProbeStatus& status : family->Probes([family](std::string_view strategy) {
           return Coverage(family->family(), strategy);
         })) {
      statuses.push_back(std::move(status));
    }
  }
  return statuses;
}

void IrqSource::Stop() {
  hardirq_.Stop();
  softirq_.Stop();
}

}  // namespace nodescope::sensor::kernel::irq
