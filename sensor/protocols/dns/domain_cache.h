// IP -> domain learned from DNS answers seen on the node, for the dst_domain tag of netflow and
// httpflow: the name an application asked for, not the CDN name its address was served under.
// Depends on the standard library only (built into the fuzz target).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "sensor/protocols/dns/types.h"

namespace nodescope::sensor::dns {

struct DomainCacheOptions {
  // A TTL of 0 or a few seconds is common for load-balanced names, yet the connection that
  // follows the lookup, and its records, come after that: keep the name at least this long.
  uint64_t min_ttl_ns = 5'000'000'000;
  // Long TTLs (a day is common) would hold an address recycled to another tenant; cap them.
  uint64_t max_ttl_ns = 3'600'000'000'000;
  size_t max_entries = 65'536;
};

struct DomainCacheStats {
  uint64_t learned = 0;  // address -> name mappings written (new or refreshed)
  uint64_t evicted = 0;  // live entries dropped to stay within max_entries (least recently used)
  uint64_t expired = 0;  // entries found past their TTL (at lookup or as the LRU victim)
};

// Not thread-safe: one owner, or a lock around it.
class DomainCache {
 public:
  explicit DomainCache(DomainCacheOptions options = {});

  // Maps every A/AAAA address reached from the first question's name through the answer's CNAME
  // chain (www.x -> cdn.y -> 1.2.3.4) to that question name, lower-cased. The entry lives for the
  // smallest TTL along the chain (a link that expires breaks the mapping), clamped to
  // [min_ttl_ns, max_ttl_ns]. Only NOERROR responses to standard queries teach anything; records
  // off the chain are ignored, since a server may add unrelated data. An address already known
  // takes the newer name: when names share an address, the latest lookup is the likelier one.
  // Returns how many addresses were written.
  size_t Learn(const Message& answer, uint64_t now_ns);

  // `ip` is 4 or 16 bytes in network order; ::ffff:a.b.c.d is a.b.c.d. A hit counts as a use.
  std::optional<std::string> Lookup(std::span<const uint8_t> ip, uint64_t now_ns);

  size_t size() const { return index_.size(); }
  const DomainCacheStats& stats() const { return stats_; }

 private:
  using Key = std::array<uint8_t, 16>;  // IPv4 as v4-mapped IPv6
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    Key ip;
    std::string name;
    uint64_t expires_ns;
  };
  using LruIter = std::list<Entry>::iterator;

  static std::optional<Key> Normalize(std::span<const uint8_t> ip);
  void Insert(const Key& ip, const std::string& name, uint64_t expires_ns, uint64_t now_ns);

  DomainCacheOptions options_;
  DomainCacheStats stats_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<Key, LruIter, KeyHash> index_;
};

}  // namespace nodescope::sensor::dns
