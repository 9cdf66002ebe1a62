#include "sensor/bpf/clock.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace nodescope::sensor::bpf {
namespace {

TEST(MonotonicToRealtime, MapsNowToNow) {
  MonotonicToRealtime clock;
  int64_t before = ReadClockNs(CLOCK_REALTIME);
  int64_t converted = clock.ToUnixNanos(static_cast<uint64_t>(ReadClockNs(CLOCK_MONOTONIC)));
  int64_t after = ReadClockNs(CLOCK_REALTIME);
  // The conversion of a monotonic instant taken between two realtime reads lies between them,
  // give or take the calibration window (a few microseconds).
  EXPECT_GE(converted, before - 1'000'000);
  EXPECT_LE(converted, after + 1'000'000);
}

TEST(MonotonicToRealtime, PreservesDifferences) {
  MonotonicToRealtime clock;
  EXPECT_EQ(clock.ToUnixNanos(2'000'000'000) - clock.ToUnixNanos(1'000'000'000), 1'000'000'000);
}

TEST(MonotonicToRealtime, RecalibrationIsStable) {
  MonotonicToRealtime clock;
  int64_t first = clock.offset_ns();
  clock.Calibrate();
  EXPECT_LT(std::llabs(clock.offset_ns() - first), 1'000'000);
}

}  // namespace
}  // namespace nodescope::sensor::bpf
