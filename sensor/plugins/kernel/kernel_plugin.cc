#include "sensor/plugins/kernel/kernel_plugin.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "sensor/bpf/clock.h"
#include "sensor/plugins/kernel/disk/disk_source.h"
#include "sensor/plugins/kernel/filesystem/filesystem_source.h"
#include "sensor/plugins/kernel/irq/irq_source.h"
#include "sensor/plugins/kernel/proc_source.h"

namespace nodescope::sensor::kernel {
namespace {

struct Served {
  std::vector<std::string> families;
  std::function<std::unique_ptr<FamilySource>()> make;
};

std::vector<Served> Sources() {
  return {
      {kProcFamilies, [] { return std::make_unique<ProcSource>(); }},
      {{"hardirq", "softirq"}, [] { return std::make_unique<irq::IrqSource>(); }},
      {{"disk"}, [] { return std::make_unique<disk::DiskSource>(); }},
      {{"filesystem"}, [] { return std::make_unique<filesystem::FilesystemSource>(); }},
  };
}

}  // namespace

std::string UnservedReason(std::string_view family) {
  for (const Served& s : Sources()) {
    if (std::find(s.families.begin(), s.families.end(), family) != s.families.end()) return "";
  }
  if (family == "swap") {
    return "swap_readpage/swap_writepage have no tracepoint; needs a kprobe variant, not built";
  }
  if (family == "dcstat") {
    return "lookup_fast/d_lookup have no tracepoint; needs a kprobe variant, not built";
  }
  if (family == "mdflush") {
    return "md_flush_request has no tracepoint; needs a kprobe variant, not built";
  }
  return "not part of this build yet";
}

KernelPlugin::KernelPlugin() = default;

KernelPlugin::~KernelPlugin() { Stop(); }

Status KernelPlugin::Start(EventSink* sink, const KernelOptions& options) {
  sink_ = sink;
  options_ = options;
  std::string errors;
  const std::vector<Served> all = Sources();
  for (const Served& served : all) {
    if (std::none_of(served.families.begin(), served.families.end(),
                     [&](const std::string& f) { return options_.Enabled(f); })) {
      continue;
    }
    std::unique_ptr<FamilySource> source = served.make();
    Status s = source->Start(options_);
    if (s.ok()) {
      sources_.push_back({static_cast<size_t>(&served - all.data()), std::move(source)});
      continue;
    }
    spdlog::error("ebpf-kernel: {}: {}", served.families.front(), s.message());
    errors += (errors.empty() ? "" : "; ") + s.message();
    for (const std::string& f : served.families) {
      if (!options_.Enabled(f)) continue;
      v1::ProbeStatus p;
      p.set_probe("kernel/" + f);
      p.set_state("failed");
      p.set_error(s.message());
      failed_.push_back(std::move(p));
    }
  }
  for (const std::string& f : kFamilies) {
    if (!options_.Enabled(f)) continue;
    const std::string why = UnservedReason(f);
    if (!why.empty()) spdlog::warn("ebpf-kernel: family {} is not collected: {}", f, why);
  }
  if (sources_.empty() && !errors.empty()) return Status::Error(errors);
  last_emit_ = std::chrono::steady_clock::now();
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void KernelPlugin::CollectAndEmit() {
  v1::Event event;
  v1::KernelMetricsEvent* k = event.mutable_kernel();
  {
    // Not held while emitting: the transport asks for the status, which lists the sources.
    std::lock_guard lock(sources_mu_);
    event.set_time_unix_nano(bpf::NowUnixNano());
    for (auto& running : sources_) running.source->Collect(*k);
    const auto now = std::chrono::steady_clock::now();
    k->set_interval_ns(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_emit_).count());
    last_emit_ = now;
  }
  if (k->counters_size() == 0 && k->gauges_size() == 0 && k->histograms_size() == 0) return;
  sink_->Emit(std::move(event));
}

void KernelPlugin::Run() {
  auto next = std::chrono::steady_clock::now() + options_.update_every;
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (cv_.wait_until(lock, next, [this] { return stop_; })) break;
    lock.unlock();
    CollectAndEmit();
    lock.lock();
    next += options_.update_every;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + options_.update_every;  // a stall: no burst of catch-up reads
  }
}

void KernelPlugin::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  CollectAndEmit();  // the last partial interval
  std::lock_guard lock(sources_mu_);
  for (auto& running : sources_) running.source->Stop();
}

std::string KernelPlugin::FamiliesOf(size_t served) const {
  const std::vector<Served> all = Sources();  // a loop over a member of a temporary dangles
  std::string families;
  for (const std::string& f : all[served].families) {
    if (options_.Enabled(f)) families += (families.empty() ? "" : " ") + f;
  }
  return families;
}

size_t KernelPlugin::running_sources() const {
  std::lock_guard lock(sources_mu_);
  return sources_.size();
}

std::string KernelPlugin::ShedCostliest(const std::string& why) {
  if (!running()) return "";
  CollectAndEmit();  // what was counted so far is not lost with the source
  std::lock_guard lock(sources_mu_);
  if (sources_.empty()) return "";
  // Ties (statistics off: all 0) go to the first, in Sources() order.
  auto costliest = sources_.begin();
  for (auto it = sources_.begin(); it != sources_.end(); ++it) {
    if (it->source->RunTimeNs() > costliest->source->RunTimeNs()) costliest = it;
  }
  const size_t served = costliest->served;
  costliest->source->Stop();
  sources_.erase(costliest);
  shed_.push_back({served, why});
  return FamiliesOf(served);
}

std::string KernelPlugin::RestoreShed() {
  std::lock_guard lock(sources_mu_);
  if (shed_.empty() || !running()) return "";
  const size_t served = shed_.back().served;
  shed_.pop_back();
  const std::vector<Served> all = Sources();
  std::unique_ptr<FamilySource> source = all[served].make();
  if (Status s = source->Start(options_); !s.ok()) {
    spdlog::error("ebpf-kernel: {}: cannot start again after shedding: {}", FamiliesOf(served),
                  s.message());
    for (const std::string& f : all[served].families) {
      if (!options_.Enabled(f)) continue;
      v1::ProbeStatus p;
      p.set_probe("kernel/" + f);
      p.set_state("failed");
      p.set_error("cannot start again after shedding for a resource limit: " + s.message());
      failed_.push_back(std::move(p));
    }
    return FamiliesOf(served);
  }
  sources_.push_back({served, std::move(source)});
  return FamiliesOf(served);
}

std::vector<v1::ProbeStatus> KernelPlugin::Probes() const {
  std::lock_guard lock(sources_mu_);
  std::vector<v1::ProbeStatus> probes = failed_;
  for (const auto& running : sources_) {
    for (v1::ProbeStatus& p : running.source->Probes()) probes.push_back(std::move(p));
  }
  const std::vector<Served> all = Sources();
  for (const Shed& shed : shed_) {
    for (const std::string& f : all[shed.served].families) {
      if (!options_.Enabled(f)) continue;
      v1::ProbeStatus p;
      p.set_probe("kernel/" + f);
      p.set_state("shed");
      p.set_error("stopped for a resource limit: " + shed.why);
      probes.push_back(std::move(p));
    }
  }
  for (const std::string& f : kFamilies) {
    if (!options_.Enabled(f)) continue;
    const std::string why = UnservedReason(f);
    if (why.empty()) continue;
    v1::ProbeStatus p;
    p.set_probe("kernel/" + f);
    p.set_state("not_built");
    p.set_error(why);
    probes.push_back(std::move(p));
  }
  return probes;
}

}  // namespace nodescope::sensor::kernel
