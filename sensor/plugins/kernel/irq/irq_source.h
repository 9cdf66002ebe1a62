// The hardirq and softirq families of the ebpf-kernel plugin (bpf/progs/irq.bpf.c): time spent
// in each hardware interrupt handler, by IRQ number, and in each softirq vector, as latency
// histograms. Each enabled family loads its own copy of the irq object with only its programs
// and maps, so the two pick their attach strategies independently and a disabled family costs
// nothing in the kernel.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/plugins/kernel/family_probe.h"
#include "sensor/plugins/kernel/irq/irq_metrics.h"
#include "sensor/plugins/kernel/options.h"

struct irq_bpf;

namespace nodescope::sensor::kernel::irq {

class IrqSource : public FamilySource {
 public:
  static constexpr char kHardirq[] = "hardirq";
  static constexpr char kSoftirq[] = "softirq";

  // With `forced_strategy` ("tp_btf" or "tracepoint") only that strategy is tried; otherwise
  // tp_btf, then tracepoint.
  explicit IrqSource(std::string forced_strategy = {});
  ~IrqSource() override;  // Stop()
  IrqSource(const IrqSource&) = delete;
  IrqSource& operator=(const IrqSource&) = delete;

  Status Start(const KernelOptions& options) override;
  void Collect(v1::KernelMetricsEvent& out) override;
  std::vector<v1::ProbeStatus> Probes() const override;
  uint64_t RunTimeNs() const override {
    return TotalRunTimeNs(hardirq_.probe()) + TotalRunTimeNs(softirq_.probe());
  }
  void Stop() override;

 private:
  IrqTotals ReadTotals();
  // Reads the names of `irqs` (and every other line) from /proc/interrupts; an IRQ the file does
  // not list (freed meanwhile) is named "".
  void LearnNames(const std::vector<uint32_t>& irqs);

  std::string proc_root_;
  bool started_ = false;
  // Never started when the family is disabled.
  FamilyProbe<irq_bpf> hardirq_;
  FamilyProbe<irq_bpf> softirq_;
  std::map<uint32_t, std::string> names_;  // IRQ number -> name in /proc/interrupts
  IrqMetrics metrics_;
};

}  // namespace nodescope::sensor::kernel::irq
