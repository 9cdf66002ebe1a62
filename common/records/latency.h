// The latency buckets an httpflow record carries (HttpflowEvent.latency_buckets) and the
// aggregator turns into nodescope_http_request_duration_seconds: the sensor counts per bucket,
// so the aggregator's histogram is exact without each request crossing the network.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace nodescope::records {

// Upper bounds in seconds, 100 µs to 10 s in 1-2.5-5 steps: loopback answers in tens of
// microseconds, a slow backend in seconds. A last bucket counts what is above 10 s.
inline constexpr std::array<double, 16> kLatencyBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
inline constexpr size_t kLatencyBuckets = kLatencyBounds.size() + 1;

// The bucket of a latency in nanoseconds.
inline size_t LatencyBucket(uint64_t ns) {
  for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
    if (static_cast<double>(ns) <= kLatencyBounds[i] * 1e9) return i;
  }
  return kLatencyBounds.size();
}

}  // namespace nodescope::records
