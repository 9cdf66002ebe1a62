// Summaries of a bench's repeated runs.
#pragma once

#include <utility>
#include <vector>

namespace nodescope::bench {

// The middle value (the mean of the two middle ones for an even count); 0 for none.
double Median(std::vector<double> values);

// The geometric mean of `ratios` (each > 0), and the 5th and 95th percentiles of it over
// `draws` resamplings of the ratios with replacement (a fixed seed: the same input prints the
// same interval). It says how far the machine's noise leaves the figure uncertain: an interval
// that holds the target does not show the target met or missed. {0, 0} for no ratio.
struct Interval {
  double geometric_mean = 0, low = 0, high = 0;
};
Interval BootstrapGeometricMean(const std::vector<double>& ratios, int draws = 4000);

}  // namespace nodescope::bench
