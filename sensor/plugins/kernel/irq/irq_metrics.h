// Turning what the irq probe's maps hold (running totals since the programs loaded) into the
// hardirq_latency, softirq_latency and kernel_events_lost series of a KernelMetricsEvent.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "bpf/abi/irq.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/plugins/kernel/deltas.h"

namespace nodescope::sensor::kernel::irq {

inline constexpr char kHardirqLatency[] = "hardirq_latency";
inline constexpr char kSoftirqLatency[] = "softirq_latency";

// One read of the maps. A family that is not running has its flag false and sends nothing.
struct IrqTotals {
  bool hardirq = false;
  std::map<uint32_t, ns_hist> hardirq_hists;  // by IRQ number
  bool softirq = false;
  std::array<ns_hist, NS_SOFTIRQ_VECTORS> softirq_hists{};  // by vector, summed over CPUs
  // reason ("hardirq_map_full", ...) -> events not measured, since the programs loaded
  std::map<std::string, uint64_t> lost;
};

class IrqMetrics {
 public:
  // Appends the series that moved since the previous call: hardirq_latency labelled irq and
  // name (`names`: IRQ number -> the name /proc/interrupts shows, "" when unknown),
  // softirq_latency labelled vector (the /proc/softirqs row name), kernel_events_lost labelled
  // reason. All host-wide.
  void Append(const IrqTotals& totals, const std::map<uint32_t, std::string>& names,
              v1::KernelMetricsEvent& out);

 private:
  HistogramDeltas histograms_;
  CounterDeltas counters_;
};

}  // namespace nodescope::sensor::kernel::irq
