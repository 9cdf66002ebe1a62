#include "sensor/bpf/merged_rings.h"

#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>
#include <vector>

namespace nodescope::sensor::bpf {
namespace {

// A ring laid out as the kernel lays one out for its reader: the data area twice in a row, an
// 8-byte header (length word with the busy and discard bits, page offset) before each record,
// records rounded up to 8 bytes. The records here are a u64 timestamp and a u32 tag.
class FakeRing {
 public:
  explicit FakeRing(uint64_t size) : size_(size), data_(2 * size) {}

  RingView view() { return {data_.data(), size_, &consumer_, &producer_}; }

  // Appends a record; returns its position.
  uint64_t Append(uint64_t ts, uint32_t tag, uint32_t flags = 0) {
    std::byte payload[12];
    std::memcpy(payload, &ts, 8);
    std::memcpy(payload + 8, &tag, 4);
    return AppendRaw(payload, sizeof(payload), flags);
  }

  // Appends one record holding a batch of records (ts, tag), each behind an 8-byte item
  // header; returns its position.
  uint64_t AppendBatch(const std::vector<std::pair<uint64_t, uint32_t>>& items) {
    std::vector<std::byte> batch;
    for (const auto& [ts, tag] : items) {
      std::byte item[24] = {};  // header, then the 12-byte record padded to 16
      const uint32_t len = 12;
      std::memcpy(item, &len, 4);
      std::memcpy(item + 8, &ts, 8);
      std::memcpy(item + 16, &tag, 4);
      batch.insert(batch.end(), item, item + sizeof(item));
    }
    return AppendRaw(batch.data(), static_cast<uint32_t>(batch.size()));
  }

  uint64_t AppendRaw(const std::byte* payload, uint32_t len, uint32_t flags = 0) {
    const uint64_t pos = producer_;
    const uint32_t word = len | flags;
    Write(pos, &word, 4);
    const uint32_t pg_off = 0;
    Write(pos + 4, &pg_off, 4);
    Write(pos + BPF_RINGBUF_HDR_SZ, payload, len);
    producer_ += (len + BPF_RINGBUF_HDR_SZ + 7) & ~7u;
    EXPECT_LE(producer_ - consumer_, size_) << "the test overfilled its ring";
    return pos;
  }

  // The writer finished the record at `pos` (clears the busy bit).
  void Commit(uint64_t pos) {
    uint32_t word;
    std::memcpy(&word, data_.data() + (pos & (size_ - 1)), 4);
    word &= ~BPF_RINGBUF_BUSY_BIT;
    Write(pos, &word, 4);
  }

  unsigned long consumer() const { return consumer_; }
  unsigned long producer() const { return producer_; }

 private:
  void Write(uint64_t pos, const void* from, size_t n) {
    const auto* bytes = static_cast<const std::byte*>(from);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t at = (pos + i) & (size_ - 1);
      data_[at] = bytes[i];
      data_[at + size_] = bytes[i];
    }
  }

  uint64_t size_;
  std::vector<std::byte> data_;
  unsigned long consumer_ = 0;
  unsigned long producer_ = 0;
};

struct Seen {
  uint64_t ts;
  uint32_t tag;
  size_t size;
};

std::vector<Seen> Drain(std::vector<FakeRing*> rings, size_t* handed = nullptr,
                        BatchedDrain* batched = nullptr) {
  std::vector<RingView> views;
  for (FakeRing* r : rings) views.push_back(r->view());
  std::vector<Seen> seen;
  const size_t n = DrainInTimeOrder(
      views, 0,
      [&](std::span<const std::byte> record) {
        Seen s{0, 0, record.size()};
        if (record.size() >= 8) std::memcpy(&s.ts, record.data(), 8);
        if (record.size() >= 12) std::memcpy(&s.tag, record.data() + 8, 4);
        seen.push_back(s);
      },
      256, batched);
  if (handed) *handed = n;
  return seen;
}

std::vector<uint64_t> Timestamps(const std::vector<Seen>& seen) {
  std::vector<uint64_t> out;
  for (const Seen& s : seen) out.push_back(s.ts);
  return out;
}

// Each record (or item) handed out is the 12 bytes appended, tagged ts * 10, and every ring was
// read to its end.
void ExpectOwnBytesAndAllRead(const std::vector<Seen>& seen, std::vector<FakeRing*> rings) {
  for (const Seen& s : seen) {
    EXPECT_EQ(s.tag, s.ts * 10) << "the record's own bytes";
    EXPECT_EQ(s.size, 12u) << "the record's length, without header or padding";
  }
  for (FakeRing* r : rings) EXPECT_EQ(r->consumer(), r->producer());
}

TEST(DrainInTimeOrder, InterleavesRingsOldestFirst) {
  FakeRing a(4096), b(4096);
  for (uint64_t ts : {1, 4, 5, 9}) a.Append(ts, static_cast<uint32_t>(ts * 10));
  for (uint64_t ts : {2, 3, 6}) b.Append(ts, static_cast<uint32_t>(ts * 10));
  size_t handed = 0;
  std::vector<Seen> seen = Drain({&a, &b}, &handed);
  EXPECT_EQ(Timestamps(seen), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 9}));
  EXPECT_EQ(handed, 7u);
  ExpectOwnBytesAndAllRead(seen, {&a, &b});
  EXPECT_TRUE(Drain({&a, &b}).empty()) << "nothing is handed out twice";
}

TEST(DrainInTimeOrder, ARingPerCpuOfABigMachineStillComesOutOldestFirst) {
  // 64 rings (a ring per CPU), ring r holding r, r + 64, r + 128, ... in batches of 4: each
  // timestamp once, so the whole stream is 0, 1, 2, ... in order.
  constexpr uint64_t kRings = 64, kPerRing = 20, kPerBatch = 4;
  std::vector<FakeRing> rings(kRings, FakeRing(4096));
  std::vector<FakeRing*> all;
  for (uint64_t r = 0; r < kRings; ++r) {
    all.push_back(&rings[r]);
    for (uint64_t i = 0; i < kPerRing; i += kPerBatch) {
      std::vector<std::pair<uint64_t, uint32_t>> batch;
      for (uint64_t k = i; k < i + kPerBatch; ++k) {
        const uint64_t ts = r + k * kRings;
        batch.emplace_back(ts, static_cast<uint32_t>(ts * 10));
      }
      rings[r].AppendBatch(batch);
    }
  }
  BatchedDrain batched;
  std::vector<Seen> seen = Drain(all, nullptr, &batched);
  std::vector<uint64_t> want(kRings * kPerRing);
  for (uint64_t i = 0; i < want.size(); ++i) want[i] = i;
  EXPECT_EQ(Timestamps(seen), want);
  ExpectOwnBytesAndAllRead(seen, all);
}

TEST(DrainInTimeOrder, EqualTimestampsGoRingByRing) {
  FakeRing a(4096), b(4096), c(4096);
  c.Append(7, 1);
  b.Append(7, 2);
  a.Append(7, 3);
  a.Append(8, 4);
  std::vector<Seen> seen = Drain({&a, &b, &c});
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].tag, 3u) << "the first ring's first";
  EXPECT_EQ(seen[1].tag, 2u);
  EXPECT_EQ(seen[2].tag, 1u);
  EXPECT_EQ(seen[3].tag, 4u);
}

TEST(DrainInTimeOrder, RecordBeingWrittenHoldsBackItsRingOnly) {
  FakeRing a(4096), b(4096);
  a.Append(1, 0);
  const uint64_t busy = a.Append(2, 0, BPF_RINGBUF_BUSY_BIT);
  a.Append(3, 0);
  b.Append(4, 0);
  // Record 4 cannot depend on record 2, which is not committed yet: it goes out; 3 waits
  // behind 2 in its ring.
  EXPECT_EQ(Timestamps(Drain({&a, &b})), (std::vector<uint64_t>{1, 4}));
  EXPECT_LT(a.consumer(), a.producer());
  EXPECT_EQ(b.consumer(), b.producer());
  a.Commit(busy);
  b.Append(5, 0);
  EXPECT_EQ(Timestamps(Drain({&a, &b})), (std::vector<uint64_t>{2, 3, 5}));
  EXPECT_EQ(a.consumer(), a.producer());
}

TEST(DrainInTimeOrder, PassesOverDiscardedRecords) {
  FakeRing a(4096), b(4096);
  a.Append(1, 0, BPF_RINGBUF_DISCARD_BIT);
  a.Append(3, 0);
  a.Append(4, 0, BPF_RINGBUF_DISCARD_BIT);
  b.Append(2, 0);
  EXPECT_EQ(Timestamps(Drain({&a, &b})), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(a.consumer(), a.producer()) << "the space of discarded records is given back";
}

TEST(DrainInTimeOrder, RecordTooShortForATimestampGoesFirst) {
  FakeRing a(4096), b(4096);
  a.Append(5, 0);
  const std::byte shorter[4] = {};
  b.AppendRaw(shorter, sizeof(shorter));
  std::vector<Seen> seen = Drain({&a, &b});
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].size, 4u) << "the handler sees it, and may count it as malformed";
  EXPECT_EQ(seen[1].ts, 5u);
}

TEST(DrainInTimeOrder, RecordsThatWrapAroundTheRingEndArriveWhole) {
  // 64 bytes hold two 24-byte records at a time; the third starts at 48 and wraps.
  FakeRing a(64), b(64);
  uint64_t ts = 1;
  for (int round = 0; round < 20; ++round) {
    a.Append(ts, static_cast<uint32_t>(ts));
    b.Append(ts + 1, static_cast<uint32_t>(ts + 1));
    a.Append(ts + 2, static_cast<uint32_t>(ts + 2));
    std::vector<Seen> seen = Drain({&a, &b});
    ASSERT_EQ(Timestamps(seen), (std::vector<uint64_t>{ts, ts + 1, ts + 2})) << "round " << round;
    for (const Seen& s : seen) EXPECT_EQ(s.tag, s.ts);
    ts += 3;
    // Only two fit in `a`: the reader gave the space back.
    ASSERT_EQ(a.consumer(), a.producer());
  }
}

TEST(DrainInTimeOrder, EmptyRingsHandNothing) {
  FakeRing a(4096);
  size_t handed = 1;
  EXPECT_TRUE(Drain({&a}, &handed).empty());
  EXPECT_EQ(handed, 0u);
  EXPECT_EQ(a.consumer(), 0u);
}

TEST(DrainInTimeOrder, BatchesInterleaveItemByItem) {
  FakeRing a(4096), b(4096);
  a.AppendBatch({{1, 10}, {4, 40}, {5, 50}});
  b.AppendBatch({{2, 20}, {3, 30}, {6, 60}});
  a.AppendBatch({{7, 70}});
  BatchedDrain batched;
  size_t handed = 0;
  std::vector<Seen> seen = Drain({&a, &b}, &handed, &batched);
  EXPECT_EQ(Timestamps(seen), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(handed, 7u);
  ExpectOwnBytesAndAllRead(seen, {&a, &b});
  EXPECT_EQ(batched.resume, (std::vector<uint64_t>{0, 0}));
}

TEST(DrainInTimeOrder, ItemsNewerThanTheCapWaitAndTheNextDrainResumesInsideTheirBatch) {
  FakeRing a(4096), b(4096);
  const uint64_t first = a.AppendBatch({{1, 0}, {5, 0}, {9, 0}});
  b.AppendBatch({{2, 0}, {6, 0}});
  BatchedDrain batched;
  batched.theta_cap = 5;
  EXPECT_EQ(Timestamps(Drain({&a, &b}, nullptr, &batched)), (std::vector<uint64_t>{1, 2, 5}));
  EXPECT_EQ(a.consumer(), first) << "a batch handed out in part keeps its space";
  EXPECT_EQ(b.consumer(), 0u);
  EXPECT_EQ(batched.resume, (std::vector<uint64_t>{48, 24}));
  EXPECT_TRUE(Drain({&a, &b}, nullptr, &batched).empty()) << "nothing is handed out twice";
  a.AppendBatch({{10, 0}});
  batched.theta_cap = UINT64_MAX;
  EXPECT_EQ(Timestamps(Drain({&a, &b}, nullptr, &batched)), (std::vector<uint64_t>{6, 9, 10}));
  EXPECT_EQ(a.consumer(), a.producer());
  EXPECT_EQ(b.consumer(), b.producer());
  EXPECT_EQ(batched.resume, (std::vector<uint64_t>{0, 0}));
}

TEST(DrainInTimeOrder, AnItemThatDoesNotFitItsBatchMakesTheRestOneItem) {
  FakeRing a(4096);
  std::byte batch[40] = {};
  const uint32_t fits = 12, too_long = 100;
  const uint64_t ts = 3;
  std::memcpy(batch, &fits, 4);
  std::memcpy(batch + 8, &ts, 8);
  std::memcpy(batch + 24, &too_long, 4);  // the second item claims more than is left
  a.AppendRaw(batch, sizeof(batch));
  a.AppendBatch({{4, 0}});
  BatchedDrain batched;
  std::vector<Seen> seen = Drain({&a}, nullptr, &batched);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].ts, 3u);
  EXPECT_EQ(seen[0].size, 12u);
  EXPECT_EQ(seen[1].size, 8u) << "the rest of the batch after the bad item's header";
  EXPECT_EQ(seen[2].ts, 4u) << "the next batch is read as before";
  EXPECT_EQ(a.consumer(), a.producer());
}

TEST(DrainInTimeOrder, BatchesThatWrapAroundTheRingEndArriveWhole) {
  // 128 bytes hold two 56-byte batch records (two items each) at a time.
  FakeRing a(128);
  uint64_t ts = 1;
  for (int round = 0; round < 20; ++round) {
    a.AppendBatch({{ts, static_cast<uint32_t>(ts)}, {ts + 1, static_cast<uint32_t>(ts + 1)}});
    BatchedDrain batched;
    std::vector<Seen> seen = Drain({&a}, nullptr, &batched);
    ASSERT_EQ(Timestamps(seen), (std::vector<uint64_t>{ts, ts + 1})) << "round " << round;
    for (const Seen& s : seen) EXPECT_EQ(s.tag, s.ts);
    ts += 2;
    ASSERT_EQ(a.consumer(), a.producer());
  }
}

}  // namespace
}  // namespace nodescope::sensor::bpf
