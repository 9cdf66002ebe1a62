#include "sensor/transport/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace nodescope::sensor {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, CeilingDoublesUpToTheMaximum) {
  Backoff backoff(milliseconds(100), milliseconds(5000), 1);
  const std::vector<int64_t> expected = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
  for (int64_t want : expected) {
    EXPECT_EQ(backoff.Ceiling(), milliseconds(want)) << "attempt " << backoff.attempt();
    (void)backoff.Next();
  }
}

TEST(BackoffTest, DrawsStayWithinTheCeilingAndSpreadOut) {
  Backoff backoff(milliseconds(100), milliseconds(5000), 42);
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    const auto ceiling = backoff.Ceiling();
    const auto delay = backoff.Next();
    EXPECT_GE(delay.count(), 0);
    EXPECT_LE(delay, ceiling);
    seen.insert(delay.count());
  }
  // Full jitter: the delays are not one repeated value.
  EXPECT_GT(seen.size(), 150u);
}

TEST(BackoffTest, ResetStartsOverFromInitial) {
  Backoff backoff(milliseconds(100), milliseconds(5000), 7);
  for (int i = 0; i < 10; ++i) (void)backoff.Next();
  EXPECT_EQ(backoff.Ceiling(), milliseconds(5000));
  backoff.Reset();
  EXPECT_EQ(backoff.Ceiling(), milliseconds(100));
  EXPECT_LE(backoff.Next(), milliseconds(100));
}

}  // namespace
}  // namespace nodescope::sensor
