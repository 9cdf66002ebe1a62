// Observer requests per client, as token buckets: each client address may make `per_second`
// requests a second on average and `per_second` at once after a quiet second. Keyed by address
// without the port, so opening new connections does not buy a new bucket.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace nodescope::aggregator::api {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double per_second, double burst, Clock::time_point now)
      : per_second_(per_second), burst_(burst), tokens_(burst), last_(now) {}

  // Takes one token if there is one.
  bool Take(Clock::time_point now);
  // Full again by `now` (nothing taken for burst / per_second): forgetting it changes nothing.
  bool FullAt(Clock::time_point now) const;

 private:
  double per_second_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

class RateLimiter {
 public:
  using Clock = TokenBucket::Clock;
  // per_second 0: no limit. Buckets of at most max_clients addresses are kept; beyond that
  // (after dropping full ones) new addresses share one bucket, so a flood of addresses cannot
  // grow memory.
  explicit RateLimiter(int64_t per_second, size_t max_clients = 10'000);

  bool Allow(const std::string& peer, Clock::time_point now = Clock::now());
  size_t clients() const;

 private:
  void PruneLocked(Clock::time_point now);

  const double per_second_;
  const size_t max_clients_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, TokenBucket> buckets_;
  Clock::time_point next_prune_;
};

// "ipv4:10.1.2.3:5555" -> "ipv4:10.1.2.3", "ipv6:[::1]:5555" -> "ipv6:[::1]"; anything else
// (unix:, a peer gRPC describes otherwise) is kept whole.
std::string PeerAddress(const std::string& peer);

}  // namespace nodescope::aggregator::api
