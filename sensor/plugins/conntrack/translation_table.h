// DNAT translations per connection tuple, with the time each was valid, for the join that puts
// dst_nat_ip/dst_nat_port on outgoing netflow and httpflow records. The netflow tables fold the
// client's ephemeral port when they aggregate, after which a record may mix connections that
// reached different backends; so each connection is looked up here by its full tuple and its
// lifetime before it is folded (sensor/plugins/netflow/flow_table.cc, http_table.cc).
// Thread-safe: the conntrack reader writes, the netflow thread reads.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "common/net/ip.h"
#include "sensor/plugins/netflow/flow_tuple.h"

namespace nodescope::sensor::conntrack {

// One direction of a conntrack entry.
struct Tuple {
  net::IpAddress src, dst;
  uint16_t src_port = 0, dst_port = 0;
  auto operator<=>(const Tuple&) const = default;
};

class TranslationTable {
 public:
  struct Options {
    // Destroyed translations are kept this long: a connection that closed is looked up again
    // at the next interval flush (sensor/plugins/netflow/flow_table.cc), so at least one
    // netflow interval.
    uint64_t retention_ns = 120'000'000'000ull;
    size_t max_entries = 262144;  // beyond it new translations are dropped (counted)
  };

  struct Counters {
    uint64_t added = 0;
    uint64_t destroyed = 0;
    uint64_t full = 0;  // translations dropped because max_entries was reached
  };

  explicit TranslationTable(Options options) : options_(options) {}

  // A DNAT'ed entry (orig -> reply) of namespace `netns` read at `now_ns` (CLOCK_MONOTONIC).
  // `from_dump`: it came from a dump, so it existed at now_ns but was created at some unknown
  // earlier time. False when it was known already (same conntrack id) or the table is full.
  bool Add(uint32_t netns, uint8_t protocol, const Tuple& orig, const Tuple& reply, uint32_t id,
           uint64_t now_ns, bool from_dump);
  // The entry with this tuple and id is gone since `now_ns`. False when it was not known.
  bool Destroy(uint32_t netns, uint8_t protocol, const Tuple& orig, uint32_t id, uint64_t now_ns);
  // A resync dump of `netns` that started at `dump_start_ns` has ended: entries alive then that
  // the dump did not list (Add with from_dump since dump_start_ns) were destroyed while events
  // were lost. Returns how many were marked.
  size_t EndDump(uint32_t netns, uint64_t dump_start_ns, uint64_t now_ns);

  // The translation of one connection (see the .cc for the rule), or nullopt.
  std::optional<netflow::NatTarget> Lookup(const netflow::NatQuery& query) const;

  // Forgets translations destroyed more than retention_ns before now_ns.
  void Expire(uint64_t now_ns);
  // Forgets every translation of a namespace that no longer exists.
  void DropNetns(uint32_t netns);

  size_t size() const;
  Counters counters() const;

 private:
  struct Key {
    uint32_t netns = 0;
    uint8_t protocol = 0;
    Tuple orig;
    auto operator<=>(const Key&) const = default;
  };
  struct Translation {
    uint32_t id = 0;
    netflow::NatTarget target;
    uint64_t created_ns = 0;    // when read; for a dump: when the dump listed it
    uint64_t destroyed_ns = 0;  // 0: alive
    uint64_t listed_ns = 0;     // the last dump that listed it
    bool from_dump = false;
  };

  Options options_;
  mutable std::mutex mu_;
  std::map<Key, std::vector<Translation>> entries_;  // each vector in order of created_ns
  size_t count_ = 0;
  Counters counters_;
};

}  // namespace nodescope::sensor::conntrack
