#include "sensor/transport/backoff.h"

#include <algorithm>

namespace nodescope::sensor {

Backoff::Backoff(Duration initial, Duration max, uint64_t seed)
    : initial_(std::max(initial, Duration(1))), max_(std::max(max, initial_)), rng_(seed) {}

Backoff::Duration Backoff::Ceiling() const {
  // Doubling stops once the cap is reached, so the shift never overflows.
  Duration ceiling = initial_;
  for (int i = 0; i < attempt_ && ceiling < max_; ++i) ceiling *= 2;
  return std::min(ceiling, max_);
}

Backoff::Duration Backoff::Next() {
  const Duration ceiling = Ceiling();
  if (ceiling < max_) ++attempt_;
  std::uniform_int_distribution<int64_t> draw(0, ceiling.count());
  return Duration(draw(rng_));
}

}  // namespace nodescope::sensor
