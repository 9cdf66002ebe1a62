#include "sensor/plugins/kernel/proc_source.h"

#include <gtest/gtest.h>

#include <set>

#include "common/records/kernel_metrics.h"

namespace nodescope::sensor::kernel {
namespace {

// The BPF slots and the catalog the aggregator accepts are one list: every slot is a catalog
// counter of the same family, and every counter of these families has a slot.
TEST(ProcSourceSlots, MatchTheCatalog) {
  std::set<std::string> slot_names;
  for (const SlotInfo& slot : Slots()) {
    const records::KernelMetricInfo* info = records::FindKernelMetric(slot.name);
    ASSERT_NE(info, nullptr) << slot.name;
    EXPECT_EQ(info->kind, records::KernelMetricKind::kCounter) << slot.name;
    EXPECT_EQ(info->family, slot.family) << slot.name;
    EXPECT_TRUE(slot_names.insert(slot.name).second) << "twice: " << slot.name;
  }
  const std::set<std::string> families(kProcFamilies.begin(), kProcFamilies.end());
  // Dimensions only a kprobe gives (mark_page_accessed); this build has no kprobe variant, and
  // the family's status says they are absent.
  const std::set<std::string> need_kprobes = {"cachestat_hits"};
  for (const auto& m : records::kKernelMetrics) {
    if (m.kind != records::KernelMetricKind::kCounter) continue;
    if (!families.count(std::string(m.family))) continue;
    if (need_kprobes.count(std::string(m.name))) {
      EXPECT_FALSE(slot_names.count(std::string(m.name))) << m.name << " has a slot now";
      continue;
    }
    EXPECT_TRUE(slot_names.count(std::string(m.name))) << "no slot for " << m.name;
  }
}

}  // namespace
}  // namespace nodescope::sensor::kernel
