// What the tests of the per-record metric families read back: a family's series as a scrape
// sees them, by exact label set.
#pragma once

#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nodescope::aggregator::testing {

using LabelMap = std::map<std::string, std::string>;

// An IPv4 address as the events carry it: 4 bytes.
inline std::string Ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                     static_cast<char>(d)};
}

inline LabelMap Labels(const prometheus::ClientMetric& m) {
  LabelMap out;
  for (const auto& l : m.label) out[l.name] = l.value;
  return out;
}

// The series of one family as a scrape sees them.
inline std::vector<prometheus::ClientMetric> Series(prometheus::Registry& registry,
                                                    const std::string& name) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name == name) return f.metric;
  }
  return {};
}

// The series with exactly these labels; nullopt when there is none.
inline std::optional<prometheus::ClientMetric> Find(prometheus::Registry& registry,
                                                    const std::string& name,
                                                    const LabelMap& labels) {
  for (const auto& m : Series(registry, name)) {
    if (Labels(m) == labels) return m;
  }
  return std::nullopt;
}

// The counter of the series with exactly these labels; -1 when there is none.
inline double Value(prometheus::Registry& registry, const std::string& name,
                    const LabelMap& labels) {
  std::optional<prometheus::ClientMetric> m = Find(registry, name, labels);
  return m ? m->counter.value : -1;
}

}  // namespace nodescope::aggregator::testing
