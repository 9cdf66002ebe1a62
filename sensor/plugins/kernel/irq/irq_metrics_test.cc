#include "sensor/plugins/kernel/irq/irq_metrics.h"

#include <gtest/gtest.h>

#include "common/records/kernel_metrics.h"

namespace nodescope::sensor::kernel::irq {
namespace {

ns_hist Hist(std::initializer_list<std::pair<size_t, uint64_t>> slots, uint64_t sum_ns) {
  ns_hist h{};
  for (auto [slot, n] : slots) h.slots[slot] = n;
  h.sum_ns = sum_ns;
  return h;
}

const v1::KernelHistogram* Find(const v1::KernelMetricsEvent& e, const std::string& name,
                                const std::string& label, const std::string& value) {
  for (const auto& h : e.histograms()) {
    auto it = h.labels().extra().find(label);
    if (h.name() == name && it != h.labels().extra().end() && it->second == value) return &h;
  }
  return nullptr;
}

TEST(IrqMetrics, NamesAreTheContractOnes) {
  for (const char* name : {kHardirqLatency, kSoftirqLatency}) {
    const records::KernelMetricInfo* info = records::FindKernelMetric(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->kind, records::KernelMetricKind::kHistogram);
  }
  EXPECT_EQ(records::FindKernelMetric(kHardirqLatency)->family, "hardirq");
  EXPECT_EQ(records::FindKernelMetric(kSoftirqLatency)->family, "softirq");
  ASSERT_NE(records::FindKernelMetric(kEventsLost), nullptr);
  EXPECT_EQ(records::FindKernelMetric(kEventsLost)->kind, records::KernelMetricKind::kCounter);
}

TEST(IrqMetrics, LabelsAndDeltas) {
  IrqMetrics metrics;
  IrqTotals totals;
  totals.hardirq = true;
  totals.hardirq_hists[36] = Hist({{10, 3}, {12, 1}}, 9000);
  totals.hardirq_hists[99] = Hist({{8, 1}}, 300);
  totals.softirq = true;
  totals.softirq_hists[1] = Hist({{11, 5}}, 12000);  // TIMER
  totals.softirq_hists[9] = Hist({{9, 2}}, 1100);    // RCU
  totals.lost["softirq_unmatched"] = 1;
  totals.lost["hardirq_map_full"] = 0;
  const std::map<uint32_t, std::string> names = {{36, "virtio1-req.0"}};

  v1::KernelMetricsEvent first;
  metrics.Append(totals, names, first);
  ASSERT_EQ(first.histograms_size(), 4);
  const v1::KernelHistogram* disk = Find(first, kHardirqLatency, "irq", "36");
  ASSERT_NE(disk, nullptr);
  EXPECT_EQ(disk->labels().extra().at("name"), "virtio1-req.0");
  EXPECT_EQ(disk->labels().extra().size(), 2u);
  EXPECT_TRUE(disk->labels().app().empty());
  EXPECT_EQ(disk->labels().cgroup_id(), 0u);
  ASSERT_EQ(disk->slot_deltas_size(), 13);
  EXPECT_EQ(disk->slot_deltas(10), 3u);
  EXPECT_EQ(disk->slot_deltas(12), 1u);
  EXPECT_EQ(disk->sum_ns_delta(), 9000u);
  const v1::KernelHistogram* unknown = Find(first, kHardirqLatency, "irq", "99");
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->labels().extra().at("name"), "");
  const v1::KernelHistogram* timer = Find(first, kSoftirqLatency, "vector", "TIMER");
  ASSERT_NE(timer, nullptr);
  EXPECT_EQ(timer->labels().extra().size(), 1u);
  EXPECT_EQ(timer->slot_deltas(11), 5u);
  ASSERT_NE(Find(first, kSoftirqLatency, "vector", "RCU"), nullptr);
  EXPECT_EQ(Find(first, kSoftirqLatency, "vector", "HI"), nullptr);  // never moved
  ASSERT_EQ(first.counters_size(), 1);                               // map_full stayed 0
  EXPECT_EQ(first.counters(0).name(), kEventsLost);
  EXPECT_EQ(first.counters(0).labels().extra().at("reason"), "softirq_unmatched");
  EXPECT_EQ(first.counters(0).delta(), 1u);

  totals.softirq_hists[1] = Hist({{11, 7}, {20, 1}}, 12000 + 2000 + 1'500'000);
  totals.lost["softirq_unmatched"] = 1;
  v1::KernelMetricsEvent second;
  metrics.Append(totals, names, second);
  ASSERT_EQ(second.histograms_size(), 1);  // only TIMER moved
  const v1::KernelHistogram& moved = second.histograms(0);
  EXPECT_EQ(moved.labels().extra().at("vector"), "TIMER");
  ASSERT_EQ(moved.slot_deltas_size(), 21);
  EXPECT_EQ(moved.slot_deltas(11), 2u);
  EXPECT_EQ(moved.slot_deltas(20), 1u);
  EXPECT_EQ(moved.sum_ns_delta(), 1'502'000u);
  EXPECT_EQ(second.counters_size(), 0);
}

TEST(IrqMetrics, StoppedFamilySendsNothing) {
  IrqMetrics metrics;
  IrqTotals totals;
  totals.hardirq_hists[36] = Hist({{10, 3}}, 9000);  // hardirq flag false
  totals.softirq_hists[1] = Hist({{10, 3}}, 9000);   // softirq flag false
  v1::KernelMetricsEvent out;
  metrics.Append(totals, {}, out);
  EXPECT_EQ(out.histograms_size(), 0);
}

}  // namespace
}  // namespace nodescope::sensor::kernel::irq
