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
  for (const Served& served : Sources()) {
    if (std::none_of(served.families.begin(), served.families.end(),
                     [&](const std::string& f) { return options_.Enabled(f); })) {
      continue;
    }
    std::unique_ptr<FamilySource> source = served.make();
    Status s = source->Start(options_);
    if (s.ok()) {
      sources_.push_back(std::move(source));
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
  event.set_time_unix_nano(bpf::NowUnixNano());
  v1::KernelMetricsEvent* k = event.mutable_kernel();
  for (auto& source : sources_) source->Collect(*k);
  const auto now = std::chrono::steady_clock::now();
  k->set_interval_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_emit_).count());
  last_emit_ = now;
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
  for (auto& source : sources_) source->Stop();
}

std::vector<v1::ProbeStatus> KernelPlugin::Probes() const {
  std::vector<v1::ProbeStatus> probes = failed_;
  for (const auto& source : sources_) {
    for (v1::ProbeStatus& p : source->Probes()) probes.push_back(std::move(p));
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
