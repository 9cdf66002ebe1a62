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
// Before each item of a batch: its length (u32) and 4 bytes of zeros.
constexpr uint64_t kItemHeader = 8;

// Where a ring is read from, and how far the current look at it reaches.
struct Cursor {
  uint64_t pos = 0;         // the next record's position
  uint64_t sub = 0;         // batched: bytes of that record's payload already handed out
  uint64_t limit = 0;       // the producer position of the last look
  uint64_t prefetched = 0;  // ring memory before this position was prefetched
  // The record at pos and the item at sub in it (the whole record when not batched), once Head
  // found one.
  bool has = false;
  uint32_t len = 0;       // the record's length word, flags clear
  uint64_t item_off = 0;  // where the item is in the record's payload
  uint64_t item_len = 0;
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

// Finds the committed record at or after c.pos, before c.limit, passing over discarded ones,
// and when `batched` the item at c.sub in it, passing over records handed out whole; c.has says
// whether there is one (none: the look's end, or a record still being written).
void Head(const RingView& r, Cursor& c, size_t ts_offset, bool batched) {
  c.has = false;
  while (c.pos < c.limit) {
    const std::byte* at = r.data + (c.pos & (r.size - 1));
    // Acquire: once the busy bit is clear, the record's bytes are visible.
    const uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t*>(at), __ATOMIC_ACQUIRE);
    if (word & BPF_RINGBUF_BUSY_BIT) return;
    const uint32_t len = word & ~kFlags;
    if ((word & BPF_RINGBUF_DISCARD_BIT) || (batched && c.sub >= len)) {
      c.pos += RecordBytes(len);
      c.sub = 0;
      continue;
    }
    const std::byte* payload = at + BPF_RINGBUF_HDR_SZ;
    c.item_off = 0;
    c.item_len = len;
    if (batched) {
      uint32_t item = 0;
      const uint64_t left = len - c.sub;
      if (left >= kItemHeader) std::memcpy(&item, payload + c.sub, sizeof(item));
      // An item that does not fit its batch: the rest of the batch is one item, which the
      // handler sees as malformed.
      c.item_off = std::min<uint64_t>(c.sub + kItemHeader, len);
      c.item_len = left >= kItemHeader && item <= left - kItemHeader ? item : len - c.item_off;
    }
    c.has = true;
    c.len = len;
    c.ts = 0;
    if (c.item_len >= ts_offset + sizeof(uint64_t)) {
      std::memcpy(&c.ts, payload + c.item_off + ts_offset, sizeof(c.ts));
    }
    return;
  }
}

// Past the item Head found.
void Advance(Cursor& c, bool batched) {
  if (!batched) {
    c.pos += RecordBytes(c.len);
    return;
  }
  c.sub = std::min<uint64_t>(c.item_off + ((c.item_len + 7) & ~uint64_t{7}), c.len);
}

size_t DrainOnce(std::span<const RingView> rings, size_t ts_offset, const RecordHandler& handler,
                 std::vector<Cursor>& cursors, std::vector<size_t>& heap, BatchedDrain* batched) {
  const bool items = batched != nullptr;
  // First look: the newest timestamp committed by now, among the first kLookBytes of each ring
  // (any committed record's timestamp will do for theta).
  uint64_t theta = 0;
  for (size_t i = 0; i < rings.size(); ++i) {
    Cursor& c = cursors[i];
    c.pos = *rings[i].consumer_pos;  // this reader is its only writer
    c.sub = items ? batched->resume[i] : 0;
    c.limit = __atomic_load_n(rings[i].producer_pos, __ATOMIC_ACQUIRE);
    Cursor walk = c;
    walk.limit = std::min(c.limit, c.pos + kLookBytes);
    for (Head(rings[i], walk, ts_offset, items); walk.has; Head(rings[i], walk, ts_offset, items)) {
      theta = std::max(theta, walk.ts);
      Advance(walk, items);
      PrefetchAhead(rings[i], walk, walk.pos);
    }
    c.prefetched = walk.prefetched;
  }
  if (items) theta = std::min(theta, batched->theta_cap);
  // Second look, then oldest first up to theta.
  for (size_t i = 0; i < rings.size(); ++i) {
    cursors[i].limit = __atomic_load_n(rings[i].producer_pos, __ATOMIC_ACQUIRE);
    Head(rings[i], cursors[i], ts_offset, items);
  }
  // Oldest first: a heap of the rings whose next item is at most theta, by (timestamp, ring),
  // so a machine's hundred rings cost a few comparisons an item rather than a hundred.
  const auto later = [&cursors](size_t a, size_t b) {
    return cursors[a].ts != cursors[b].ts ? cursors[a].ts > cursors[b].ts : a > b;
  };
  heap.clear();
  for (size_t i = 0; i < cursors.size(); ++i) {
    if (cursors[i].has && cursors[i].ts <= theta) heap.push_back(i);
  }
  std::make_heap(heap.begin(), heap.end(), later);
  size_t handed = 0;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const size_t i = heap.back();
    heap.pop_back();
    Cursor& oldest = cursors[i];
    const RingView& r = rings[i];
    handler(std::span<const std::byte>(
        r.data + (oldest.pos & (r.size - 1)) + BPF_RINGBUF_HDR_SZ + oldest.item_off,
        oldest.item_len));
    ++handed;
    Advance(oldest, items);
    PrefetchAhead(r, oldest, oldest.pos);
    Head(r, oldest, ts_offset, items);
    if (oldest.has && oldest.ts <= theta) {
      heap.push_back(i);
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }
  // Release: the writer may reuse the space only after the records were read. A batch handed
  // out in part stays, and the next drain resumes inside it.
  for (size_t i = 0; i < rings.size(); ++i) {
    if (items) batched->resume[i] = cursors[i].sub;
    __atomic_store_n(rings[i].consumer_pos, cursors[i].pos, __ATOMIC_RELEASE);
  }
  return handed;
}

}  // namespace

size_t DrainInTimeOrder(std::span<const RingView> rings, size_t ts_offset,
                        const RecordHandler& handler, int rounds, BatchedDrain* batched) {
  std::vector<Cursor> cursors(rings.size());
  std::vector<size_t> heap;
  heap.reserve(rings.size());
  if (batched != nullptr) batched->resume.resize(rings.size(), 0);
  size_t total = 0;
  for (int round = 0; round < rounds; ++round) {
    const size_t handed = DrainOnce(rings, ts_offset, handler, cursors, heap, batched);
    total += handed;
    if (handed == 0) break;
  }
  return total;
}

}  // namespace nodescope::sensor::bpf
