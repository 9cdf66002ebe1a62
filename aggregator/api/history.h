// The in-memory history of one source: the newest `capacity` records in arrival order, held as
// runs of shared batches (one entry per batch, not per record; the Hub gives it a copy of a run
// that is only part of its batch, so what it holds is bounded by its own records). Not
// synchronized: the Hub guards it.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "aggregator/record_batch.h"

namespace nodescope::aggregator::api {

class HistoryRing {
 public:
  explicit HistoryRing(size_t capacity);

  // Appends records [begin, end) of `batch`, which all belong to this ring's source.
  void Append(const RecordBatchPtr& batch, uint32_t begin, uint32_t end);

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  uint64_t appended() const { return appended_; }
  uint64_t evicted() const { return appended_ - size_; }

  // Calls fn(batch, index) for every record held, oldest first / newest first; fn returns false
  // to stop.
  template <typename Fn>
  void ForEachOldestFirst(Fn&& fn) const {
    for (const Segment& s : segments_) {
      for (uint32_t i = s.begin; i < s.end; ++i) {
        if (!fn(s.batch, i)) return;
      }
    }
  }
  template <typename Fn>
  void ForEachNewestFirst(Fn&& fn) const {
    for (auto s = segments_.rbegin(); s != segments_.rend(); ++s) {
      for (uint32_t i = s->end; i-- > s->begin;) {
        if (!fn(s->batch, i)) return;
      }
    }
  }

  // How many evicted records had a time at or after `since`. Never less than the truth, and more
  // by at most capacity / 256 records or 1/64 of the answer, whichever is larger, when records
  // arrive in time order.
  uint64_t EvictedSince(int64_t since) const;

 private:
  struct Segment {
    RecordBatchPtr batch;
    uint32_t begin;
    uint32_t end;
  };
  void Evict(size_t count);
  void Compact();

  size_t capacity_;
  std::deque<Segment> segments_;
  size_t size_ = 0;
  uint64_t appended_ = 0;

  // Eviction checkpoints: (largest time evicted so far, evictions so far), one per stride_
  // evictions, the older ones thinned (Compact) so that they stay a few thousand at most.
  std::vector<std::pair<int64_t, uint64_t>> checkpoints_;
  const uint64_t stride_;
  uint64_t next_checkpoint_;
  int64_t max_evicted_time_ = INT64_MIN;
};

}  // namespace nodescope::aggregator::api
