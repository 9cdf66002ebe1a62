#include "aggregator/api/rate_limit.h"

#include <algorithm>
#include <cctype>

namespace nodescope::aggregator::api {
namespace {

constexpr auto kPruneEvery = std::chrono::seconds(10);
constexpr char kOverflow[] = "(more clients than tracked)";

}  // namespace

bool TokenBucket::Take(Clock::time_point now) {
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * per_second_);
    last_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

bool TokenBucket::FullAt(Clock::time_point now) const {
  if (now <= last_) return tokens_ >= burst_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return tokens_ + elapsed * per_second_ >= burst_;
}

RateLimiter::RateLimiter(int64_t per_second, size_t max_clients)
    : per_second_(static_cast<double>(per_second)),
      max_clients_(std::max<size_t>(1, max_clients)) {}

bool RateLimiter::Allow(const std::string& peer, Clock::time_point now) {
  if (per_second_ <= 0) return true;
  const std::string address = PeerAddress(peer);
  std::lock_guard lock(mu_);
  if (now >= next_prune_) PruneLocked(now);
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_clients_) PruneLocked(now);
    const std::string& key = buckets_.size() >= max_clients_ ? kOverflow : address;
    it = buckets_.try_emplace(key, per_second_, std::max(1.0, per_second_), now).first;
  }
  return it->second.Take(now);
}

size_t RateLimiter::clients() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

void RateLimiter::PruneLocked(Clock::time_point now) {
  std::erase_if(buckets_, [now](const auto& entry) { return entry.second.FullAt(now); });
  next_prune_ = now + kPruneEvery;
}

std::string PeerAddress(const std::string& peer) {
  // "ipv4:" or "ipv6:" and at least one character before a ":port".
  if (peer.rfind("ipv4:", 0) != 0 && peer.rfind("ipv6:", 0) != 0) return peer;
  const size_t colon = peer.rfind(':');
  if (colon == std::string::npos || colon + 1 == peer.size() || colon < 5) return peer;
  const bool digits =
      std::all_of(peer.begin() + static_cast<long>(colon) + 1, peer.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  std::string address = peer.substr(0, colon);
  // "ipv6:[::1]:5555" (gRPC writes the brackets URI-escaped, "%5B::1%5D"): the port follows the
  // bracket; in "ipv6:::1" the last colon is part of the address.
  const bool bracket = address.ends_with("]") || address.ends_with("%5D");
  if (!digits || (peer.rfind("ipv6:", 0) == 0 && !bracket)) return peer;
  return address;
}

}  // namespace nodescope::aggregator::api
