#include "sensor/self_metrics.h"

#include <gtest/gtest.h>

namespace nodescope::sensor {
namespace {

std::vector<Sample> Samples() {
  return {{"nodescope_probe_info", "chosen strategy", false, {{"probe", "process"},
                                                             {"strategy", "tp_btf"}}, 1},
          {"nodescope_sensor_dropped_total", "drops", true, {{"reason", "buffer_full"}}, 3},
          {"nodescope_sensor_dropped_total", "drops", true, {{"reason", "stopped"}}, 0},
          {"nodescope_sensor_connected", "connected", false, {}, 1}};
}

TEST(SelfMetrics, PrometheusGroupsFamiliesWithTypes) {
  std::string text = RenderPrometheus(Samples());
  EXPECT_NE(text.find("# TYPE nodescope_probe_info gauge\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nodescope_probe_info{probe=\"process\",strategy=\"tp_btf\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE nodescope_sensor_dropped_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("nodescope_sensor_dropped_total{reason=\"buffer_full\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("nodescope_sensor_dropped_total{reason=\"stopped\"} 0\n"),
            std::string::npos);
  // One TYPE line per family, not per sample.
  EXPECT_EQ(text.find("# TYPE nodescope_sensor_dropped_total"),
            text.rfind("# TYPE nodescope_sensor_dropped_total"));
  EXPECT_NE(text.find("nodescope_sensor_connected 1\n"), std::string::npos) << text;
}

TEST(SelfMetrics, CountersUseTheSeriesNames) {
  auto counters = ToCounters(Samples());
  EXPECT_EQ(counters.at("nodescope_sensor_dropped_total{reason=\"buffer_full\"}"), 3u);
  EXPECT_EQ(counters.at("nodescope_probe_info{probe=\"process\",strategy=\"tp_btf\"}"), 1u);
  EXPECT_EQ(counters.at("nodescope_sensor_connected"), 1u);
  EXPECT_EQ(counters.size(), 4u);
}

}  // namespace
}  // namespace nodescope::sensor
