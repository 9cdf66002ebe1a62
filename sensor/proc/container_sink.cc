#include "sensor/proc/container_sink.h"

namespace nodescope::sensor::proc {
namespace {

void Set(const ContainerRef& ref, v1::Container* out) {
  out->set_id(ref.id);
  out->set_pod_uid(ref.pod_uid);
  out->set_runtime(ref.runtime);
}

template <typename Record>
void Stamp(ContainerResolver& resolver, Record* record) {
  const ContainerRef& ref = resolver.Resolve(record->cgroup_id());
  if (!ref.empty()) Set(ref, record->mutable_container());
}

void StampLabels(ContainerResolver& resolver, v1::KernelLabels* labels) {
  if (labels->cgroup_id() == 0) return;  // host-wide or per-application series
  const ContainerRef& ref = resolver.Resolve(labels->cgroup_id(), labels->cgroup());
  if (!ref.empty()) Set(ref, labels->mutable_container());
}

}  // namespace

void ContainerSink::Emit(v1::Event event) {
  {
    std::lock_guard lock(mu_);
    switch (event.payload_case()) {
      case v1::Event::kProcess:
        Stamp(resolver_, event.mutable_process());
        break;
      case v1::Event::kNetflow:
        Stamp(resolver_, event.mutable_netflow());
        break;
      case v1::Event::kHttpflow:
        Stamp(resolver_, event.mutable_httpflow());
        break;
      case v1::Event::kDnsflow:
        Stamp(resolver_, event.mutable_dnsflow());
        break;
      case v1::Event::kBash:
        Stamp(resolver_, event.mutable_bash());
        break;
      case v1::Event::kKernel: {
        v1::KernelMetricsEvent* kernel = event.mutable_kernel();
        for (auto& c : *kernel->mutable_counters()) StampLabels(resolver_, c.mutable_labels());
        for (auto& g : *kernel->mutable_gauges()) StampLabels(resolver_, g.mutable_labels());
        for (auto& h : *kernel->mutable_histograms()) StampLabels(resolver_, h.mutable_labels());
        break;
      }
      case v1::Event::kConntrack:  // a network namespace's table: no process, no cgroup
      case v1::Event::kLost:       // the sensor's own counts
      case v1::Event::PAYLOAD_NOT_SET:
        break;
    }
  }
  next_->Emit(std::move(event));
}

size_t ContainerSink::cached() const {
  std::lock_guard lock(mu_);
  return resolver_.size();
}

uint64_t ContainerSink::walks() const {
  std::lock_guard lock(mu_);
  return resolver_.walks();
}

}  // namespace nodescope::sensor::proc
