#include "sensor/bpf/merged_rings.h"

#include <linux/bpf.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace nodescope::sensor::bpf {
namespace {

constexpr uint32_t kFlags = BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT;
// The first look of a round reads this much of each ring: what a round hands out then still
// sits in this core's cache when the handler reads it, rather than having been pushed out by a
// first look over megabytes.
constexpr uint64_t kLookBytes = 64 << 10;
// How far ahead of the reader ring memory is prefetched. The writer ran on another CPU (or
// long ago): without it, the first read of each record waited for memory (perf: most of the
// reader's time went to the load of each record's header and its first payload line).
constexpr uint64_t kPrefetchBytes = 4 << 10;
constexpr uint64_t kLine = 64;

// Where a ring is read from, and how far the current look at it reaches.
struct Cursor {
  uint64_t pos = 0;         // the next record's position
  uint64_t limit = 0;       // the producer position of the last look
  uint64_t prefetched = 0;  // ring memory before this position was prefetched
  // The record at pos, once Head found one.
  bool has = false;
  uint32_t len = 0;  // its length word, flags clear
  uint64_t ts = 0;
};

uint64_t RecordBytes(uint32_t len) {
  return (uint64_t{len} + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7};
}

// Prefetches the ring's memory from where the last call stopped to kPrefetchBytes past `pos`,
// no further than the look reaches.
void PrefetchAhead(const RingView& r, Cursor& c, uint64_t pos) {
  const uint64_t end = std::min(pos + kPrefetchBytes, c.limit);
  c.prefetched = std::max(c.prefetched, pos & ~(kLine - 1));
  for (; c.prefetched < end; c.prefetched += kLine) {
    __builtin_prefetch(r.data + (c.prefetched & (r.size - 1)));
  }
}

// Finds the committed record at or after c.pos, before c.limit, passing over discarded ones;
// c.has says whether there is one (none: the look's end, or a record still being written).
void Head(const RingView& r, Cursor& c, size_t ts_offset) {
  c.has = false;
  while (c.pos < c.limit) {
    const std::byte* at = r.data + (c.pos & (r.size - 1));
    // Acquire: once the busy bit is clear, the record's bytes are visible.
    const uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t*>(at), __ATOMIC_ACQUIRE);
    if (word & BPF_RINGBUF_BUSY_BIT) return;
    const uint32_t len = word & ~kFlags;
    if (word & BPF_RINGBUF_DISCARD_BIT) {
      c.pos += RecordBytes(len);
      continue;
    }
    c.has = true;
    c.len = len;
    c.ts = 0;
    if (len >= ts_offset + sizeof(uint64_t)) {
      std::memcpy(&c.ts, at + BPF_RINGBUF_HDR_SZ + ts_offset, sizeof(c.ts));
    }
    return;
  }
}

size_t DrainOnce(std::span<const RingView> rings, size_t ts_offset, const RecordHandler& handler,
                 std::vector<Cursor>& cursors) {
  // First look: the newest timestamp committed by now, among the first kLookBytes of each ring
  // (any committed record's timestamp will do for theta).
  uint64_t theta = 0;
  for (size_t i = 0; i < rings.size(); ++i) {
    Cursor& c = cursors[i];
    c.pos = *rings[i].consumer_pos;  // this reader is its only writer
    c.limit = __atomic_load_n(rings[i].producer_pos, __ATOMIC_ACQUIRE);
    Cursor walk = c;
    walk.limit = std::min(c.limit, c.pos + kLookBytes);
    for (Head(rings[i], walk, ts_offset); walk.has; Head(rings[i], walk, ts_offset)) {
      theta = std::max(theta, walk.ts);
      walk.pos += RecordBytes(walk.len);
      PrefetchAhead(rings[i], walk, walk.pos);
    }
    c.prefetched = walk.prefetched;
  }
  // Second look, then oldest first up to theta.
  for (size_t i = 0; i < rings.size(); ++i) {
    cursors[i].limit = __atomic_load_n(rings[i].producer_pos, __ATOMIC_ACQUIRE);
    Head(rings[i], cursors[i], ts_offset);
  }
  size_t handed = 0;
  while (true) {
    Cursor* oldest = nullptr;
    for (Cursor& c : cursors) {
      if (c.has && c.ts <= theta && (oldest == nullptr || c.ts < oldest->ts)) oldest = &c;
    }
    if (oldest == nullptr) break;
    const RingView& r = rings[static_cast<size_t>(oldest - cursors.data())];
    handler(std::span<const std::byte>(r.data + (oldest->pos & (r.size - 1)) + BPF_RINGBUF_HDR_SZ,
                                       oldest->len));
    ++handed;
    oldest->pos += RecordBytes(oldest->len);
    PrefetchAhead(r, *oldest, oldest->pos);
    Head(r, *oldest, ts_offset);
  }
  // Release: the writer may reuse the space only after the records were read.
  for (size_t i = 0; i < rings.size(); ++i) {
    __atomic_store_n(rings[i].consumer_pos, cursors[i].pos, __ATOMIC_RELEASE);
  }
  return handed;
}

}  // namespace

size_t DrainInTimeOrder(std::span<const RingView> rings, size_t ts_offset,
                        const RecordHandler& handler, int rounds) {
  std::vector<Cursor> cursors(rings.size());
  size_t total = 0;
  for (int round = 0; round < rounds; ++round) {
    const size_t handed = DrainOnce(rings, ts_offset, handler, cursors);
    total += handed;
    if (handed == 0) break;
  }
  return total;
}

}  // namespace nodescope::sensor::bpf
