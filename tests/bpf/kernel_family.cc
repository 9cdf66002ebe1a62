#include "tests/bpf/kernel_family.h"

#include <unistd.h>

#include "sensor/bpf/environment.h"

namespace nodescope::test {

void KernelFamilyTest::SetUpTestSuite() {
  ASSERT_EQ(geteuid(), 0u) << "the bpf tests need root";
  Status env = sensor::bpf::PrepareEnvironment();
  ASSERT_TRUE(env.ok()) << env.message();
}

void StartAttached(sensor::kernel::FamilySource& source, const std::string& family,
                   const std::string& strategy) {
  sensor::kernel::KernelOptions options;
  options.families = {family};
  ASSERT_TRUE(source.Start(options).ok());
  std::vector<v1::ProbeStatus> probes = source.Probes();
  ASSERT_EQ(probes.size(), 1u);
  ASSERT_EQ(probes[0].state(), "attached") << probes[0].error();
  EXPECT_EQ(probes[0].probe(), "kernel/" + family);
  EXPECT_EQ(probes[0].strategy(), strategy);
}

void ExpectDisabledLoadsNothing(sensor::kernel::FamilySource& source,
                                std::set<std::string> families) {
  sensor::kernel::KernelOptions options;
  options.families = std::move(families);
  ASSERT_TRUE(source.Start(options).ok());
  EXPECT_TRUE(source.Probes().empty());
  v1::KernelMetricsEvent event;
  source.Collect(event);
  EXPECT_EQ(event.histograms_size() + event.counters_size(), 0);
}

std::map<std::vector<std::string>, ns_hist> HostWideHistograms(
    const v1::KernelMetricsEvent& event, const std::string& name,
    const std::vector<std::string>& labels) {
  std::map<std::vector<std::string>, ns_hist> out;
  for (const v1::KernelHistogram& h : event.histograms()) {
    EXPECT_EQ(h.name(), name);
    EXPECT_EQ(h.labels().app(), "");
    EXPECT_EQ(h.labels().cgroup_id(), 0u);
    EXPECT_EQ(h.labels().extra().size(), labels.size()) << h.ShortDebugString();
    EXPECT_LE(h.slot_deltas_size(), NS_HIST_SLOTS);
    std::vector<std::string> key;
    for (const std::string& label : labels) {
      auto it = h.labels().extra().find(label);
      key.push_back(it == h.labels().extra().end() ? "" : it->second);
    }
    ns_hist& sum = out[key];
    for (int i = 0; i < h.slot_deltas_size() && i < NS_HIST_SLOTS; ++i) {
      sum.slots[i] += h.slot_deltas(i);
    }
    sum.sum_ns += h.sum_ns_delta();
  }
  return out;
}

uint64_t Count(const ns_hist& h) {
  uint64_t n = 0;
  for (uint64_t s : h.slots) n += s;
  return n;
}

void ExpectOnlyLosses(const v1::KernelMetricsEvent& event, const std::string& family) {
  for (const v1::KernelCounter& c : event.counters()) {
    EXPECT_EQ(c.name(), "kernel_events_lost");
    ASSERT_EQ(c.labels().extra().count("reason"), 1u);
    EXPECT_EQ(c.labels().extra().at("reason").rfind(family + "_", 0), 0u) << c.ShortDebugString();
    EXPECT_GT(c.delta(), 0u);
  }
}

}  // namespace nodescope::test
