#include "sensor/plugins/kernel/deltas.h"

#include <gtest/gtest.h>

namespace nodescope::sensor::kernel {
namespace {

TEST(CounterDeltas, OnlyWhatMoved) {
  CounterDeltas d;
  v1::KernelMetricsEvent e;
  d.Append("a", 5, "fd_open", {}, e);
  d.Append("a", 5, "fd_open", {}, e);  // no change: nothing
  d.Append("a", 12, "fd_open", ExtraLabels({{"reason", "x"}}), e);
  d.Append("b", 0, "fd_close", {}, e);
  ASSERT_EQ(e.counters_size(), 2);
  EXPECT_EQ(e.counters(0).delta(), 5u);
  EXPECT_EQ(e.counters(1).delta(), 7u);
  EXPECT_EQ(e.counters(1).labels().extra().at("reason"), "x");
}

TEST(CounterDeltas, ATotalThatWentBackCountsFromZero) {
  CounterDeltas d;
  v1::KernelMetricsEvent e;
  d.Append("a", 10, "fd_open", {}, e);
  d.Append("a", 3, "fd_open", {}, e);
  ASSERT_EQ(e.counters_size(), 2);
  EXPECT_EQ(e.counters(1).delta(), 3u);
}

TEST(HistogramDeltas, SlotDeltasWithoutTrailingZeros) {
  HistogramDeltas d;
  v1::KernelMetricsEvent e;
  ns_hist h{};
  h.slots[3] = 2;
  h.slots[10] = 1;
  h.sum_ns = 1100;
  d.Append("sda", h, "disk_io_latency", ExtraLabels({{"device", "sda"}}), e);
  h.slots[3] = 5;
  h.sum_ns = 1130;
  d.Append("sda", h, "disk_io_latency", ExtraLabels({{"device", "sda"}}), e);
  d.Append("sda", h, "disk_io_latency", ExtraLabels({{"device", "sda"}}), e);  // unchanged
  ASSERT_EQ(e.histograms_size(), 2);
  EXPECT_EQ(e.histograms(0).slot_deltas_size(), 11);
  EXPECT_EQ(e.histograms(0).slot_deltas(10), 1u);
  EXPECT_EQ(e.histograms(0).sum_ns_delta(), 1100u);
  ASSERT_EQ(e.histograms(1).slot_deltas_size(), 4);
  EXPECT_EQ(e.histograms(1).slot_deltas(3), 3u);
  EXPECT_EQ(e.histograms(1).sum_ns_delta(), 30u);
}

}  // namespace
}  // namespace nodescope::sensor::kernel
