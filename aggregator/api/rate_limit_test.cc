#include "aggregator/api/rate_limit.h"

#include <gtest/gtest.h>

namespace nodescope::aggregator::api {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

TEST(TokenBucket, BurstThenSteadyRate) {
  const Clock::time_point t0{};
  TokenBucket bucket(10, 10, t0);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(bucket.Take(t0)) << i;
  EXPECT_FALSE(bucket.Take(t0));
  // One token every 100 ms.
  EXPECT_FALSE(bucket.Take(t0 + 99ms));
  EXPECT_TRUE(bucket.Take(t0 + 100ms));
  EXPECT_FALSE(bucket.Take(t0 + 150ms));
  EXPECT_TRUE(bucket.Take(t0 + 200ms));
  // Idle time refills up to the burst, not beyond.
  const auto later = t0 + 1h;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(bucket.Take(later)) << i;
  EXPECT_FALSE(bucket.Take(later));
}

TEST(TokenBucket, OverOneSecondAllowsRatePlusBurst) {
  const Clock::time_point t0{};
  TokenBucket bucket(5, 5, t0);
  int allowed = 0;
  for (auto t = t0; t < t0 + 1s; t += 1ms) allowed += bucket.Take(t) ? 1 : 0;
  // 5 at once, then one per 200 ms: at 200, 400, 600, 800 ms.
  EXPECT_EQ(allowed, 9);
}

TEST(TokenBucket, ClockGoingBackDoesNotRefill) {
  const Clock::time_point t0 = Clock::time_point{} + 10s;
  TokenBucket bucket(1, 1, t0);
  EXPECT_TRUE(bucket.Take(t0));
  EXPECT_FALSE(bucket.Take(t0 - 5s));
  EXPECT_FALSE(bucket.Take(t0 + 500ms));
  EXPECT_TRUE(bucket.Take(t0 + 1s));
}

TEST(RateLimiter, ZeroMeansNoLimit) {
  RateLimiter limiter(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Allow("ipv4:10.0.0.1:1"));
  EXPECT_EQ(limiter.clients(), 0u);
}

TEST(RateLimiter, EachAddressHasItsOwnBucketWhateverThePort) {
  RateLimiter limiter(2);
  const Clock::time_point t0 = Clock::time_point{} + 1h;
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.0.1:40000", t0));
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.0.1:40001", t0));
  EXPECT_FALSE(limiter.Allow("ipv4:10.0.0.1:40002", t0)) << "a new port is the same client";
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.0.2:40000", t0));
  EXPECT_TRUE(limiter.Allow("ipv6:%5B::1%5D:5000", t0));
  EXPECT_TRUE(limiter.Allow("ipv6:%5B::1%5D:5001", t0));
  EXPECT_FALSE(limiter.Allow("ipv6:%5B::1%5D:5002", t0));
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.0.1:40003", t0 + 500ms));
  EXPECT_EQ(limiter.clients(), 3u);
}

TEST(RateLimiter, ForgetsQuietClientsAndBoundsTheTable) {
  RateLimiter limiter(1, /*max_clients=*/3);
  const Clock::time_point t0 = Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Allow("ipv4:10.0.0." + std::to_string(i) + ":1", t0));
  }
  // The table is full of buckets still refilling: new addresses share one bucket.
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.1.1:1", t0));
  EXPECT_FALSE(limiter.Allow("ipv4:10.0.1.2:1", t0));
  EXPECT_LE(limiter.clients(), 4u);
  // A second later every bucket is full again and is forgotten.
  EXPECT_TRUE(limiter.Allow("ipv4:10.0.2.1:1", t0 + 11s));
  EXPECT_EQ(limiter.clients(), 1u);
}

TEST(PeerAddress, DropsThePortOnly) {
  EXPECT_EQ(PeerAddress("ipv4:127.0.0.1:5555"), "ipv4:127.0.0.1");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5555"), "ipv6:[::1]");
  EXPECT_EQ(PeerAddress("ipv6:%5B::1%5D:5555"), "ipv6:%5B::1%5D");
  EXPECT_EQ(PeerAddress("ipv6:::1"), "ipv6:::1");
  EXPECT_EQ(PeerAddress("unix:/run/x.sock"), "unix:/run/x.sock");
  EXPECT_EQ(PeerAddress("ipv4:"), "ipv4:");
  EXPECT_EQ(PeerAddress("ipv4:1.2.3.4:"), "ipv4:1.2.3.4:");
}

}  // namespace
}  // namespace nodescope::aggregator::api
