// Reconnect delays: exponential growth capped at a maximum, with "full jitter" (a uniform draw
// between zero and the capped value) so that many sensors cut off by one aggregator restart do
// not come back in lockstep.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace nodescope::sensor {

class Backoff {
 public:
  using Duration = std::chrono::nanoseconds;

  Backoff(Duration initial, Duration max, uint64_t seed);

  // The cap for the current attempt: initial * 2^attempt, at most max.
  Duration Ceiling() const;
  // A delay drawn uniformly from [0, Ceiling()]; then the next attempt's ceiling doubles.
  Duration Next();
  // After a stream proved healthy: start again from `initial`.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Duration initial_;
  Duration max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace nodescope::sensor
