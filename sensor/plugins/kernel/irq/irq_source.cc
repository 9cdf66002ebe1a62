#include "sensor/plugins/kernel/irq/irq_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "irq.skel.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/strategy.h"
#include "sensor/plugins/kernel/irq/proc_irq.h"

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

uint64_t RecursionMisses(const std::vector<int>& prog_fds) {
  uint64_t misses = 0;
  for (int fd : prog_fds) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) misses += info.recursion_misses;
  }
  return misses;
}

}  // namespace

struct IrqSource::Family {
  explicit Family(std::string family)
      : name(std::move(family)), probe("kernel/" + name, NS_IRQ_CNT_MAX) {}

  const std::string name;
  bpf::LoadedProbe probe;
  irq_bpf* skel = nullptr;    // owned by `probe` from a successful attach until Stop
  std::vector<int> prog_fds;  // the attached exit programs, for their recursion misses
};

IrqSource::IrqSource(std::string forced_strategy) : forced_strategy_(std::move(forced_strategy)) {}

IrqSource::~IrqSource() { Stop(); }

std::vector<std::string> IrqSource::Strategies() {
  return {std::string(bpf::kTpBtf), std::string(bpf::kTracepoint)};
}

Status IrqSource::Attach(Family& family, const std::string& strategy) {
  bpf::LibbpfLogCapture capture;
  std::unique_ptr<irq_bpf, decltype(&irq_bpf__destroy)> skel(irq_bpf__open(), &irq_bpf__destroy);
  if (!skel) return Status::Error("open: " + bpf::LibbpfErrorText(errno));
  if (Status s = bpf::SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  std::vector<bpf_program*> programs;
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, skel->obj) {
    if (!bpf_program__autoload(program)) continue;
    const bool mine = FamilyOf(bpf_program__name(program)) == family.name;
    if (!mine) {
      if (int err = bpf_program__set_autoload(program, false); err != 0) {
        return Status::Error(std::string("set autoload of ") + bpf_program__name(program) + ": " +
                             bpf::LibbpfErrorText(err));
      }
      continue;
    }
    programs.push_back(program);
  }
  if (programs.empty()) {
    return Status::Error("no " + family.name + " program for strategy " + strategy);
  }
  // The other family's maps are not created: no program of this copy uses them.
  const bool hard = family.name == kHardirq;
  for (bpf_map* map : {hard ? skel->maps.softirq_start : skel->maps.hardirq_start,
                       hard ? skel->maps.softirq_hists : skel->maps.hardirq_hists}) {
    if (int err = bpf_map__set_autocreate(map, false); err != 0) {
      return Status::Error(std::string("skip map ") + bpf_map__name(map) + ": " +
                           bpf::LibbpfErrorText(err));
    }
  }
  if (int err = irq_bpf__load(skel.get()); err != 0) {
    return Status::Error("load: " + bpf::LibbpfErrorText(err));
  }
  // Entries before exits: an exit attached first would meet handlers already running, whose
  // entry it never saw, and count each as unmatched.
  std::stable_partition(programs.begin(), programs.end(),
                        [](bpf_program* p) { return IsEntryHook(bpf_program__name(p)); });
  std::vector<bpf::LinkPtr> links;
  std::vector<int> fds;
  for (bpf_program* p : programs) {
    bpf_link* link = bpf_program__attach(p);
    if (link == nullptr) {
      const int err = errno;
      return Status::Error(std::string("attach ") + bpf_program__name(p) + ": " +
                           bpf::LibbpfErrorText(err));
    }
    links.emplace_back(link, &bpf_link__destroy);
    // An event is lost once per skipped exit: a skipped entry alone shows up as an unmatched
    // exit, and a handler that interrupted another BPF program has both skipped.
    if (!IsEntryHook(bpf_program__name(p))) fds.push_back(bpf_program__fd(p));
  }
  const int counters_fd = bpf_map__fd(skel->maps.counters);
  irq_bpf* raw = skel.release();
  family.probe.Adopt([raw] { irq_bpf__destroy(raw); }, std::move(links), nullptr, counters_fd);
  family.skel = raw;
  family.prog_fds = std::move(fds);
  return Status::Ok();
}

Status IrqSource::Start(const KernelOptions& options) {
  if (started_) return Status::Error("irq source already started");
  started_ = true;
  proc_root_ = options.proc_root;
  for (const char* name : {kHardirq, kSoftirq}) {
    if (!options.Enabled(name)) continue;
    auto family = std::make_unique<Family>(name);
    Status attached = family->probe.Select(
        Strategies(), forced_strategy_,
        [this, f = family.get()](const std::string& strategy) { return Attach(*f, strategy); });
    if (!attached.ok()) spdlog::warn("kernel/{}: {}", name, attached.message());
    (name == std::string_view(kHardirq) ? hardirq_ : softirq_) = std::move(family);
  }
  return Status::Ok();
}

IrqTotals IrqSource::ReadTotals() {
  IrqTotals totals;
  if (hardirq_ && hardirq_->skel) {
    totals.hardirq = true;
    const int fd = bpf_map__fd(hardirq_->skel->maps.hardirq_hists);
    uint32_t key = 0, next = 0;
    const void* previous = nullptr;
    // Entries are only ever added, so walking the keys while handlers run misses none that
    // existed when the walk started.
    while (bpf_map_get_next_key(fd, previous, &next) == 0) {
      ns_hist hist{};
      if (bpf_map_lookup_elem(fd, &next, &hist) == 0) totals.hardirq_hists[next] = hist;
      key = next;
      previous = &key;
    }
    const std::vector<uint64_t> counters = hardirq_->probe.KernelCounters();
    totals.lost["hardirq_unmatched"] = counters[NS_IRQ_CNT_HARDIRQ_UNMATCHED];
    totals.lost["hardirq_map_full"] = counters[NS_IRQ_CNT_HARDIRQ_MAP_FULL];
    totals.lost["hardirq_recursion"] = RecursionMisses(hardirq_->prog_fds);
  }
  if (softirq_ && softirq_->skel) {
    totals.softirq = true;
    const int fd = bpf_map__fd(softirq_->skel->maps.softirq_hists);
    const int cpus = libbpf_num_possible_cpus();
    // A per-CPU lookup fills one value per possible CPU, each rounded up to 8 bytes, which
    // sizeof(ns_hist) already is.
    static_assert(sizeof(ns_hist) % 8 == 0);
    std::vector<ns_hist> per_cpu(cpus > 0 ? static_cast<size_t>(cpus) : 0);
    for (uint32_t v = 0; v < NS_SOFTIRQ_VECTORS && !per_cpu.empty(); ++v) {
      if (bpf_map_lookup_elem(fd, &v, per_cpu.data()) != 0) {
        spdlog::warn("kernel/softirq: read vector {}: {}", v, std::strerror(errno));
        continue;
      }
      ns_hist& sum = totals.softirq_hists[v];
      for (const ns_hist& h : per_cpu) {
        for (size_t i = 0; i < NS_HIST_SLOTS; ++i) sum.slots[i] += h.slots[i];
        sum.sum_ns += h.sum_ns;
      }
    }
    const std::vector<uint64_t> counters = softirq_->probe.KernelCounters();
    totals.lost["softirq_unmatched"] = counters[NS_IRQ_CNT_SOFTIRQ_UNMATCHED];
    totals.lost["softirq_bad_vector"] = counters[NS_IRQ_CNT_SOFTIRQ_BAD_VECTOR];
    totals.lost["softirq_recursion"] = RecursionMisses(softirq_->prog_fds);
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
  for (const Family* family : {hardirq_.get(), softirq_.get()}) {
    if (family == nullptr) continue;
    v1::ProbeStatus status = family->probe.status();
    if (status.state() == "attached")
      status.set_coverage(Coverage(family->name, status.strategy()));
    statuses.push_back(std::move(status));
  }
  return statuses;
}

void IrqSource::Stop() {
  for (Family* family : {hardirq_.get(), softirq_.get()}) {
    if (family == nullptr) continue;
    family->probe.Teardown();
    family->skel = nullptr;
    family->prog_fds.clear();
  }
}

}  // namespace nodescope::sensor::kernel::irq
