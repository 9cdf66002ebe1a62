// The sensor's own counters, one list that feeds both /metrics (Prometheus text) and the status
// message the aggregator shows, so the two can never disagree.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nodescope::sensor {

struct Sample {
  std::string name;  // nodescope_...
  std::string help;
  bool counter = true;  // else a gauge
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// Prometheus text exposition (0.0.4), samples of one name grouped into one family.
std::string RenderPrometheus(const std::vector<Sample>& samples);
// name{label="value",...} -> value, the series names Prometheus shows.
std::map<std::string, uint64_t> ToCounters(const std::vector<Sample>& samples);

}  // namespace nodescope::sensor
