#include "sensor/plugins/kernel/irq/irq_metrics.h"

#include "sensor/plugins/kernel/irq/proc_irq.h"

namespace nodescope::sensor::kernel::irq {

void IrqMetrics::Append(const IrqTotals& totals, const std::map<uint32_t, std::string>& names,
                        v1::KernelMetricsEvent& out) {
  if (totals.hardirq) {
    for (const auto& [irq, hist] : totals.hardirq_hists) {
      const std::string number = std::to_string(irq);
      auto name = names.find(irq);
      histograms_.Append(
          "hardirq/" + number, hist, kHardirqLatency,
          ExtraLabels({{"irq", number}, {"name", name == names.end() ? "" : name->second}}), out);
    }
  }
  if (totals.softirq) {
    for (size_t v = 0; v < kSoftirqNames.size(); ++v) {
      histograms_.Append("softirq/" + std::to_string(v), totals.softirq_hists[v], kSoftirqLatency,
                         ExtraLabels({{"vector", std::string(kSoftirqNames[v])}}), out);
    }
  }
  for (const auto& [reason, total] : totals.lost) AppendLost(counters_, reason, total, out);
}

}  // namespace nodescope::sensor::kernel::irq
