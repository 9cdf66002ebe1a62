#include "sensor/plugins/kernel/deltas.h"

namespace nodescope::sensor::kernel {

void CounterDeltas::Append(const std::string& key, uint64_t total, const std::string& name,
                           const v1::KernelLabels& labels, v1::KernelMetricsEvent& out) {
  auto [it, inserted] = last_.try_emplace(key, 0);
  const uint64_t delta = total >= it->second ? total - it->second : total;
  it->second = total;
  if (delta == 0) return;
  v1::KernelCounter* c = out.add_counters();
  c->set_name(name);
  *c->mutable_labels() = labels;
  c->set_delta(delta);
}

void HistogramDeltas::Append(const std::string& key, const ns_hist& total, const std::string& name,
                             const v1::KernelLabels& labels, v1::KernelMetricsEvent& out) {
  auto [it, inserted] = last_.try_emplace(key, ns_hist{});
  ns_hist& last = it->second;
  uint64_t deltas[NS_HIST_SLOTS];
  size_t used = 0;
  bool reset = false;
  for (size_t i = 0; i < NS_HIST_SLOTS; ++i) {
    if (total.slots[i] < last.slots[i]) reset = true;
  }
  for (size_t i = 0; i < NS_HIST_SLOTS; ++i) {
    deltas[i] = reset ? total.slots[i] : total.slots[i] - last.slots[i];
    if (deltas[i] != 0) used = i + 1;
  }
  const uint64_t sum = reset || total.sum_ns < last.sum_ns ? total.sum_ns : total.sum_ns - last.sum_ns;
  last = total;
  if (used == 0) return;
  v1::KernelHistogram* h = out.add_histograms();
  h->set_name(name);
  *h->mutable_labels() = labels;
  for (size_t i = 0; i < used; ++i) h->add_slot_deltas(deltas[i]);
  h->set_sum_ns_delta(sum);
}

v1::KernelLabels ExtraLabels(std::initializer_list<std::pair<std::string, std::string>> extra) {
  v1::KernelLabels labels;
  for (const auto& [k, v] : extra) (*labels.mutable_extra())[k] = v;
  return labels;
}

void AppendLost(CounterDeltas& deltas, const std::string& reason, uint64_t total,
                v1::KernelMetricsEvent& out) {
  deltas.Append("lost/" + reason, total, kEventsLost, ExtraLabels({{"reason", reason}}), out);
}

}  // namespace nodescope::sensor::kernel
