#include "sensor/plugins/conntrack/translation_table.h"

#include <algorithm>

namespace nodescope::sensor::conntrack {
namespace {

// A NEW event is read some time after the kernel queued it (at the connection's first packet);
// a connection that lived shorter than that delay closes "before" its translation was read.
// Another connection on the same full tuple within this time is not possible in practice (the
// kernel hands out ephemeral ports in turn), so a translation read this long after a
// connection's end still counts as that connection's.
constexpr uint64_t kReadSlackNs = 500'000'000;

}  // namespace

bool TranslationTable::Add(uint32_t netns, uint8_t protocol, const Tuple& orig, const Tuple& reply,
                           uint32_t id, uint64_t now_ns, bool from_dump) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Translation>& list = entries_[Key{netns, protocol, orig}];
  for (Translation& t : list) {
    if (t.id == id && t.destroyed_ns == 0) {
      if (from_dump) t.listed_ns = now_ns;  // a dump confirms what an event announced
      return false;
    }
  }
  if (count_ >= options_.max_entries) {
    ++counters_.full;
    if (list.empty()) entries_.erase(Key{netns, protocol, orig});
    return false;
  }
  // The reply direction's source is where the packets really went: the NAT target.
  Translation t{.id = id,
                .target = {reply.src, reply.src_port},
                .created_ns = now_ns,
                .listed_ns = from_dump ? now_ns : 0,
                .from_dump = from_dump};
  // Events arrive in order, so this is nearly always an append.
  auto at = std::upper_bound(list.begin(), list.end(), now_ns,
                             [](uint64_t v, const Translation& x) { return v < x.created_ns; });
  list.insert(at, t);
  ++count_;
  ++counters_.added;
  return true;
}

bool TranslationTable::Destroy(uint32_t netns, uint8_t protocol, const Tuple& orig, uint32_t id,
                               uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(Key{netns, protocol, orig});
  if (it == entries_.end()) return false;
  for (Translation& t : it->second) {
    if (t.id == id && t.destroyed_ns == 0) {
      t.destroyed_ns = now_ns;
      ++counters_.destroyed;
      return true;
    }
  }
  return false;
}

size_t TranslationTable::EndDump(uint32_t netns, uint64_t dump_start_ns, uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t marked = 0;
  for (auto& [key, list] : entries_) {
    if (key.netns != netns) continue;
    for (Translation& t : list) {
      if (t.destroyed_ns == 0 && t.created_ns < dump_start_ns && t.listed_ns < dump_start_ns) {
        t.destroyed_ns = now_ns;
        ++counters_.destroyed;
        ++marked;
      }
    }
  }
  return marked;
}

// Which translation was a connection's:
//  1. the first one read at or after the connection started (its first packet created the
//     entry, which follows the socket's creation) and not after it ended. A tuple reused later,
//     for another service or another backend, thus never inherits the translation of an
//     earlier connection, even while that one's entry lingers in TIME_WAIT;
//  2. for a connection older than what the table knows (first seen mid-life by the probe, or
//     started before a dump listed the entry): the latest one alive when the connection was
//     first seen.
// A NEW event read after the connection was first folded is found at the next lookup, which
// the netflow tables make at the interval flush.
std::optional<netflow::NatTarget> TranslationTable::Lookup(const netflow::NatQuery& q) const {
  Key key;
  key.netns = q.netns;
  key.protocol = q.protocol;
  key.orig = Tuple{q.src, q.dst, q.src_port, q.dst_port};
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  const std::vector<Translation>& list = it->second;
  for (const Translation& t : list) {
    if (t.from_dump || t.created_ns < q.start_ns) continue;
    if (q.end_ns != 0 && t.created_ns > q.end_ns + kReadSlackNs) break;
    return t.target;
  }
  for (auto t = list.rbegin(); t != list.rend(); ++t) {
    const bool older = !q.handshake_seen || (t->from_dump && q.start_ns <= t->created_ns);
    if (!older) continue;
    if (!t->from_dump && t->created_ns > q.start_ns) continue;
    if (t->destroyed_ns != 0 && t->destroyed_ns < q.start_ns) continue;
    return t->target;
  }
  return std::nullopt;
}

void TranslationTable::Expire(uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    std::vector<Translation>& list = it->second;
    const size_t before = list.size();
    std::erase_if(list, [&](const Translation& t) {
      return t.destroyed_ns != 0 && now_ns > t.destroyed_ns + options_.retention_ns;
    });
    count_ -= before - list.size();
    it = list.empty() ? entries_.erase(it) : std::next(it);
  }
}

void TranslationTable::DropNetns(uint32_t netns) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.netns == netns) {
      count_ -= it->second.size();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t TranslationTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

TranslationTable::Counters TranslationTable::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace nodescope::sensor::conntrack
