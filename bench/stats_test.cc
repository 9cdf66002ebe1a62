#include "bench/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace nodescope::bench {
namespace {

TEST(BenchStats, Median) {
  EXPECT_EQ(Median({}), 0);
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
}

TEST(BenchStats, OneRatioRepeatedHasNoSpread) {
  const Interval i = BootstrapGeometricMean({0.9, 0.9, 0.9, 0.9});
  EXPECT_NEAR(i.geometric_mean, 0.9, 1e-12);
  EXPECT_NEAR(i.low, 0.9, 1e-12);
  EXPECT_NEAR(i.high, 0.9, 1e-12);
}

TEST(BenchStats, TheIntervalHoldsTheMeanAndNarrowsWithMorePairs) {
  // Pair ratios scattered as on the shared 2-core machine (0.83 to 1.06).
  const std::vector<double> few = {0.83, 0.97, 1.06, 0.91, 0.95, 0.88, 1.01, 0.93};
  std::vector<double> many;
  for (int i = 0; i < 8; ++i) many.insert(many.end(), few.begin(), few.end());
  const Interval a = BootstrapGeometricMean(few), b = BootstrapGeometricMean(many);
  double logs = 0;
  for (double r : few) logs += std::log(r);
  EXPECT_NEAR(a.geometric_mean, std::exp(logs / few.size()), 1e-12);
  EXPECT_NEAR(b.geometric_mean, a.geometric_mean, 1e-12);
  EXPECT_LT(a.low, a.geometric_mean);
  EXPECT_GT(a.high, a.geometric_mean);
  // Eight times the pairs: about a third of the width (1 / sqrt(8)).
  const double wide = a.high - a.low, narrow = b.high - b.low;
  EXPECT_GT(wide, 0.04);
  EXPECT_LT(narrow, wide / 2);
  EXPECT_GT(narrow, wide / 5);
}

TEST(BenchStats, NothingToResample) {
  const Interval i = BootstrapGeometricMean({});
  EXPECT_EQ(i.geometric_mean, 0);
  EXPECT_EQ(i.low, 0);
}

}  // namespace
}  // namespace nodescope::bench
