#include "aggregator/api/history.h"

#include <algorithm>

namespace nodescope::aggregator::api {

namespace {
constexpr size_t kMaxCheckpoints = 4096;
constexpr double kRelativeError = 1.0 / 64;
}  // namespace

HistoryRing::HistoryRing(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      stride_(std::max<size_t>(capacity_ / 256, 1)),
      next_checkpoint_(stride_) {}

void HistoryRing::Append(const RecordBatchPtr& batch, uint32_t begin, uint32_t end) {
  if (begin >= end) return;
  segments_.push_back(Segment{batch, begin, end});
  size_ += end - begin;
  appended_ += end - begin;
  if (size_ > capacity_) Evict(size_ - capacity_);
}

void HistoryRing::Evict(size_t count) {
  uint64_t evicted_so_far = evicted();  // before this eviction: size_ still counts them
  while (count > 0) {
    Segment& front = segments_.front();
    const uint32_t stop =
        front.begin + static_cast<uint32_t>(std::min<size_t>(count, front.end - front.begin));
    for (uint32_t i = front.begin; i < stop; ++i) {
      max_evicted_time_ = std::max(max_evicted_time_, front.batch->time(i));
      if (++evicted_so_far == next_checkpoint_) {
        checkpoints_.emplace_back(max_evicted_time_, evicted_so_far);
        next_checkpoint_ += stride_;
        if (checkpoints_.size() >= kMaxCheckpoints) Compact();
      }
    }
    count -= stop - front.begin;
    size_ -= stop - front.begin;
    front.begin = stop;
    if (front.begin == front.end) segments_.pop_front();
  }
}

void HistoryRing::Compact() {
  // Drop a checkpoint when the span it splits is small next to the evictions after it: a
  // `since` there is then answered within kRelativeError. Spacing grows geometrically with age,
  // so about log(evictions) / kRelativeError checkpoints remain.
  const uint64_t total = checkpoints_.back().second;
  size_t kept = 0;
  for (size_t i = 0; i < checkpoints_.size(); ++i) {
    const uint64_t before = kept == 0 ? 0 : checkpoints_[kept - 1].second;
    const bool last = i + 1 == checkpoints_.size();
    if (!last) {
      const uint64_t after = checkpoints_[i + 1].second;
      if (static_cast<double>(after - before) <=
          kRelativeError * static_cast<double>(total - after)) {
        continue;
      }
    }
    checkpoints_[kept++] = checkpoints_[i];
  }
  checkpoints_.resize(kept);
  if (checkpoints_.size() >= kMaxCheckpoints) {
    // Not reachable below 2^64 evictions; bounds the memory whatever happens.
    const size_t half = checkpoints_.size() / 2;
    size_t out = 0;
    for (size_t i = 1; i < half; i += 2) checkpoints_[out++] = checkpoints_[i];
    for (size_t i = half; i < checkpoints_.size(); ++i) checkpoints_[out++] = checkpoints_[i];
    checkpoints_.resize(out);
  }
}

uint64_t HistoryRing::EvictedSince(int64_t since) const {
  const uint64_t total = evicted();
  if (total == 0 || max_evicted_time_ < since) return 0;
  // Records evicted up to the last checkpoint whose running maximum is below `since` were all
  // older than `since`; everything after it may not have been.
  auto it = std::lower_bound(
      checkpoints_.begin(), checkpoints_.end(), since,
      [](const std::pair<int64_t, uint64_t>& c, int64_t t) { return c.first < t; });
  if (it == checkpoints_.begin()) return total;
  return total - std::prev(it)->second;
}

}  // namespace nodescope::aggregator::api
