#include "aggregator/api/history.h"

#include <gtest/gtest.h>

namespace nodescope::aggregator::api {
namespace {

// A batch of records with times first, first + 1, ...; appended `run` records at a time.
void AppendTimes(HistoryRing* ring, int64_t first, int64_t count, int64_t run = 1) {
  std::vector<v1::Record> records(count);
  for (int64_t i = 0; i < count; ++i) {
    records[i].set_source("s");
    records[i].set_time_unix_nano(first + i);
  }
  RecordBatchPtr batch = MakeBatch(records);
  for (int64_t i = 0; i < count; i += run) {
    ring->Append(batch, static_cast<uint32_t>(i), static_cast<uint32_t>(std::min(i + run, count)));
  }
}

std::vector<int64_t> Times(const HistoryRing& ring, bool newest_first = false) {
  std::vector<int64_t> out;
  auto add = [&](const RecordBatchPtr& batch, uint32_t i) {
    out.push_back((*batch)[i].time_unix_nano());
    return true;
  };
  if (newest_first) {
    ring.ForEachNewestFirst(add);
  } else {
    ring.ForEachOldestFirst(add);
  }
  return out;
}

TEST(HistoryRing, KeepsArrivalOrderBeforeWrapping) {
  HistoryRing ring(8);
  AppendTimes(&ring, 100, 5);
  ASSERT_EQ(ring.size(), 5u);
  EXPECT_EQ(ring.evicted(), 0u);
  EXPECT_EQ(Times(ring), (std::vector<int64_t>{100, 101, 102, 103, 104}));
  EXPECT_EQ(Times(ring, true), (std::vector<int64_t>{104, 103, 102, 101, 100}));
  EXPECT_EQ(ring.EvictedSince(0), 0u);
}

TEST(HistoryRing, WrapKeepsTheNewest) {
  HistoryRing ring(4);
  AppendTimes(&ring, 0, 10);  // times 0..9; 0..5 evicted
  ASSERT_EQ(ring.size(), 4u);
  EXPECT_EQ(ring.appended(), 10u);
  EXPECT_EQ(ring.evicted(), 6u);
  EXPECT_EQ(Times(ring), (std::vector<int64_t>{6, 7, 8, 9}));
  // capacity 4: a checkpoint per eviction, so the counts are exact.
  EXPECT_EQ(ring.EvictedSince(-5), 6u);
  EXPECT_EQ(ring.EvictedSince(0), 6u);
  EXPECT_EQ(ring.EvictedSince(3), 3u);
  EXPECT_EQ(ring.EvictedSince(5), 1u);
  EXPECT_EQ(ring.EvictedSince(6), 0u);
  EXPECT_EQ(ring.EvictedSince(100), 0u);
}

TEST(HistoryRing, RecordsStayAliveWhileHeld) {
  HistoryRing ring(2);
  std::weak_ptr<const RecordBatch> weak;
  {
    std::vector<v1::Record> records(2);
    records[0].set_time_unix_nano(1);
    records[1].set_time_unix_nano(2);
    RecordBatchPtr batch = MakeBatch(records);
    weak = batch;
    ring.Append(batch, 0, 2);
  }
  EXPECT_FALSE(weak.expired());
  AppendTimes(&ring, 10, 1);  // evicts one: the batch is still held
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(Times(ring), (std::vector<int64_t>{2, 10}));
  AppendTimes(&ring, 11, 1);  // evicts the other: the batch is freed
  EXPECT_TRUE(weak.expired());
}

TEST(HistoryRing, EvictionSplitsRuns) {
  HistoryRing ring(5);
  AppendTimes(&ring, 0, 4, 4);
  AppendTimes(&ring, 4, 3, 3);  // 0, 1 evicted from the middle of the first run
  EXPECT_EQ(Times(ring), (std::vector<int64_t>{2, 3, 4, 5, 6}));
  AppendTimes(&ring, 7, 7, 7);  // a run longer than the ring: only its newest 5 stay
  EXPECT_EQ(Times(ring), (std::vector<int64_t>{9, 10, 11, 12, 13}));
  EXPECT_EQ(ring.size(), 5u);
  EXPECT_EQ(ring.appended(), 14u);
}

TEST(HistoryRing, EvictedSinceStaysCloseOverManyEvictions) {
  constexpr int64_t kCapacity = 1024;  // a checkpoint every 4 evictions
  constexpr int64_t kTotal = 2'000'000;
  HistoryRing ring(kCapacity);
  AppendTimes(&ring, 0, kTotal, 100);
  const int64_t evicted = kTotal - kCapacity;  // times 0 .. evicted-1 are gone
  ASSERT_EQ(ring.evicted(), static_cast<uint64_t>(evicted));
  for (int64_t since : {int64_t{0}, int64_t{1}, int64_t{1000}, int64_t{500'000}, int64_t{1'500'000},
                        evicted - 100'000, evicted - 1000, evicted - 3}) {
    const uint64_t exact = static_cast<uint64_t>(evicted - since);
    const uint64_t got = ring.EvictedSince(since);
    EXPECT_GE(got, exact) << "since " << since;
    EXPECT_LE(got, exact + std::max<uint64_t>(4, exact / 50)) << "since " << since;
  }
  EXPECT_EQ(ring.EvictedSince(evicted), 0u);
}

}  // namespace
}  // namespace nodescope::aggregator::api
