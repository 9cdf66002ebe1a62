#include "sensor/protocols/dns/domain_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace nodescope::sensor::dns {
namespace {

// Resolvers stop following a CNAME chain after a bounded number of links (BIND: 16, and 11 since
// 9.18.29's max-query-restarts); a longer chain in one answer is a loop, not a name to learn.
constexpr int kMaxChain = 16;

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

uint64_t TtlNs(uint32_t ttl) {
  // RFC 2181 8: a TTL with the top bit set is treated as zero.
  if (ttl > 0x7fffffffU) return 0;
  return uint64_t{ttl} * 1'000'000'000ULL;
}

}  // namespace

size_t DomainCache::KeyHash::operator()(const Key& k) const {
  uint64_t hi = 0, lo = 0;
  std::memcpy(&hi, k.data(), 8);
  std::memcpy(&lo, k.data() + 8, 8);
  uint64_t h = hi * 0x9e3779b97f4a7c15ULL ^ lo;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 29);
}

DomainCache::DomainCache(DomainCacheOptions options) : options_(options) {}

std::optional<DomainCache::Key> DomainCache::Normalize(std::span<const uint8_t> ip) {
  Key key{};
  if (ip.size() == 4) {
    std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), key.begin());
    std::copy(ip.begin(), ip.end(), key.begin() + 12);
  } else if (ip.size() == 16) {
    std::copy(ip.begin(), ip.end(), key.begin());
  } else {
    return std::nullopt;
  }
  return key;
}

size_t DomainCache::Learn(const Message& answer, uint64_t now_ns) {
  if (!answer.response || answer.opcode != 0 || answer.rcode != kRcodeNoError ||
      answer.questions.empty() || options_.max_entries == 0) {
    return 0;
  }
  const std::string qname = AsciiLower(answer.questions.front().name);
  std::string_view current = answer.questions.front().name;
  uint64_t chain_ttl = std::numeric_limits<uint64_t>::max();
  size_t written = 0;
  for (int link = 0; link <= kMaxChain; ++link) {
    const Answer* cname = nullptr;
    for (const Answer& a : answer.answers) {
      if (a.klass != kClassIn || !EqualsIgnoreCase(a.name, current)) continue;
      if (a.address_len != 0) {
        uint64_t ttl = std::min({chain_ttl, TtlNs(a.ttl), options_.max_ttl_ns});
        ttl = std::max(ttl, options_.min_ttl_ns);
        const uint64_t expires = ttl > std::numeric_limits<uint64_t>::max() - now_ns
                                     ? std::numeric_limits<uint64_t>::max()
                                     : now_ns + ttl;
        // address_len is 4 or 16 by construction, so Normalize cannot fail here.
        Insert(*Normalize(a.Address()), qname, expires, now_ns);
        ++written;
      } else if (a.type == kTypeCname && cname == nullptr) {
        // A name has at most one CNAME (RFC 1034 3.6.2); a second one is ignored.
        cname = &a;
      }
    }
    if (cname == nullptr) break;
    chain_ttl = std::min(chain_ttl, TtlNs(cname->ttl));
    current = cname->target;
  }
  return written;
}

std::optional<std::string> DomainCache::Lookup(std::span<const uint8_t> ip, uint64_t now_ns) {
  const std::optional<Key> key = Normalize(ip);
  if (!key) return std::nullopt;
  auto it = index_.find(*key);
  if (it == index_.end()) return std::nullopt;
  if (it->second->expires_ns <= now_ns) {
    ++stats_.expired;
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->name;
}

void DomainCache::Insert(const Key& ip, const std::string& name, uint64_t expires_ns,
                         uint64_t now_ns) {
  ++stats_.learned;
  if (auto it = index_.find(ip); it != index_.end()) {
    it->second->name = name;
    it->second->expires_ns = expires_ns;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (index_.size() >= options_.max_entries) {
    const Entry& victim = lru_.back();
    if (victim.expires_ns <= now_ns) {
      ++stats_.expired;
    } else {
      ++stats_.evicted;
    }
    index_.erase(victim.ip);
    lru_.pop_back();
  }
  lru_.push_front(Entry{ip, name, expires_ns});
  index_.emplace(ip, lru_.begin());
}

}  // namespace nodescope::sensor::dns
