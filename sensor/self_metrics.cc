#include "sensor/self_metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace nodescope::sensor {

std::string RenderPrometheus(const std::vector<Sample>& samples) {
  std::vector<prometheus::MetricFamily> families;
  std::map<std::string, size_t> index;
  for (const auto& s : samples) {
    auto [it, added] = index.try_emplace(s.name, families.size());
    if (added) {
      families.push_back({s.name, s.help,
                          s.counter ? prometheus::MetricType::Counter
                                    : prometheus::MetricType::Gauge,
                          {}});
    }
    prometheus::ClientMetric metric;
    for (const auto& [k, v] : s.labels) metric.label.push_back({k, v});
    if (s.counter) {
      metric.counter.value = s.value;
    } else {
      metric.gauge.value = s.value;
    }
    families[it->second].metric.push_back(std::move(metric));
  }
  return prometheus::TextSerializer().Serialize(families);
}

std::map<std::string, uint64_t> ToCounters(const std::vector<Sample>& samples) {
  std::map<std::string, uint64_t> out;
  for (const auto& s : samples) {
    std::string key = s.name;
    if (!s.labels.empty()) {
      key += "{";
      for (size_t i = 0; i < s.labels.size(); ++i) {
        key += (i ? "," : "") + s.labels[i].first + "=\"" + s.labels[i].second + "\"";
      }
      key += "}";
    }
    out[key] = static_cast<uint64_t>(s.value);
  }
  return out;
}

}  // namespace nodescope::sensor
