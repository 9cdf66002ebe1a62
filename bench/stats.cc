#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

namespace nodescope::bench {

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

Interval BootstrapGeometricMean(const std::vector<double>& ratios, int draws) {
  if (ratios.empty() || draws < 1) return {};
  std::vector<double> logs;
  logs.reserve(ratios.size());
  for (double r : ratios) logs.push_back(std::log(r));
  double sum = 0;
  for (double l : logs) sum += l;
  Interval out;
  out.geometric_mean = std::exp(sum / logs.size());
  std::mt19937_64 rng(20261201);
  std::uniform_int_distribution<size_t> pick(0, logs.size() - 1);
  std::vector<double> means;
  means.reserve(draws);
  for (int d = 0; d < draws; ++d) {
    double s = 0;
    for (size_t i = 0; i < logs.size(); ++i) s += logs[pick(rng)];
    means.push_back(s / logs.size());
  }
  std::sort(means.begin(), means.end());
  const auto at = [&](double q) {
    return std::exp(means[std::min(means.size() - 1, static_cast<size_t>(q * means.size()))]);
  };
  out.low = at(0.05);
  out.high = at(0.95);
  return out;
}

}  // namespace nodescope::bench
