#include "aggregator/api/hub.h"

#include <algorithm>

namespace nodescope::aggregator::api {

Subscription::Subscription(Hub* hub, Query query, size_t queue_capacity)
    : hub_(hub), query_(std::move(query)), capacity_(std::max<size_t>(queue_capacity, 1)) {}

Subscription::~Subscription() { hub_->Leave(this); }

void Subscription::Offer(const RecordBatchPtr& batch, Metrics* metrics) {
  LiveItem item{batch, query_.MatchesAll(), {}};
  if (!item.all) {
    for (uint32_t i = 0; i < batch->size(); ++i) {
      if (query_.Matches(*batch, i)) item.indices.push_back(i);
    }
  }
  const size_t matched = item.size();
  if (matched == 0) return;

  std::map<std::string, uint64_t> dropped;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    const size_t room = capacity_ - queued_records_;
    if (matched > room) {
      if (item.all) {
        item.indices.resize(batch->size());
        for (uint32_t i = 0; i < batch->size(); ++i) item.indices[i] = i;
        item.all = false;
      }
      for (size_t i = room; i < matched; ++i) ++dropped[batch->source(item.indices[i])];
      for (const auto& [source, n] : dropped) lost_[source] += n;
      item.indices.resize(room);
    }
    if (item.size() > 0) {
      queued_records_ += item.size();
      queue_.push_back(std::move(item));
    }
  }
  cv_.notify_one();
  for (const auto& [source, n] : dropped) metrics->Dropped(source, kDropSlowSubscriber, n);
}

void Subscription::OfferLost(const v1::LostEvents& lost) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    auto same = std::find_if(sensor_lost_.begin(), sensor_lost_.end(), [&](const auto& e) {
      return e.host() == lost.host() && e.sensor_reason() == lost.sensor_reason() &&
             e.probe() == lost.probe();
    });
    if (same != sensor_lost_.end()) {
      same->set_count(same->count() + lost.count());
    } else {
      sensor_lost_.push_back(lost);
    }
  }
  cv_.notify_one();
}

void Subscription::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool Subscription::Next(std::chrono::milliseconds wait, std::vector<LiveItem>* items,
                        std::map<std::string, uint64_t>* lost,
                        std::vector<v1::LostEvents>* sensor_lost) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] {
    return !queue_.empty() || !lost_.empty() || (sensor_lost && !sensor_lost_.empty()) || closed_;
  });
  bool had_something = !queue_.empty() || !lost_.empty();
  if (sensor_lost != nullptr) {
    had_something = had_something || !sensor_lost_.empty();
    for (v1::LostEvents& e : sensor_lost_) sensor_lost->push_back(std::move(e));
    sensor_lost_.clear();
  }
  for (LiveItem& item : queue_) items->push_back(std::move(item));
  queue_.clear();
  queued_records_ = 0;
  for (const auto& [source, n] : lost_) (*lost)[source] += n;
  lost_.clear();
  return had_something || !closed_;
}

Hub::Hub(HubOptions options, Metrics* metrics) : options_(options), metrics_(metrics) {}

Hub::~Hub() { Close(); }

HistoryRing& Hub::RingFor(const std::string& source) {
  auto it = rings_.find(source);
  if (it == rings_.end()) {
    it = rings_.emplace(source, std::make_unique<HistoryRing>(options_.history_size)).first;
  }
  return *it->second;
}

void Hub::Publish(const RecordBatchPtr& batch) {
  std::lock_guard lock(mu_);
  // Batches hold one source almost always: one ring entry per run of a source.
  for (size_t begin = 0; begin < batch->size();) {
    const std::string& source = batch->source(begin);
    size_t end = begin + 1;
    while (end < batch->size() && batch->source(end) == source) ++end;
    HistoryRing& ring = RingFor(source);
    const uint64_t evicted_before = ring.evicted();
    if (begin == 0 && end == batch->size()) {
      ring.Append(batch, 0, static_cast<uint32_t>(end));
    } else {
      // Part of a batch: the ring keeps a copy of its run, not the whole batch. A source seen
      // once per batch would otherwise hold history_size batches of the others alive.
      auto run = std::make_shared<RecordBatch>();
      run->AppendFrom(*batch, begin, end);
      ring.Append(run, 0, static_cast<uint32_t>(end - begin));
    }
    if (ring.evicted() > evicted_before) {
      metrics_->HistoryEvicted(source, ring.evicted() - evicted_before);
    }
    begin = end;
  }
  for (Subscription* s : subscriptions_) s->Offer(batch, metrics_);
}

void Hub::SensorLost(const v1::LostEvents& lost) {
  std::lock_guard lock(mu_);
  for (Subscription* s : subscriptions_) s->OfferLost(lost);
}

void Hub::SelectHistory(const HistoryRing& ring, const std::string& source, const Query& query,
                        uint64_t last, Subscription* out) const {
  if (last == 0 && query.since() == 0) return;
  uint64_t taken = 0;
  auto take = [&](const RecordBatchPtr& batch, uint32_t i) {
    if (query.Matches(*batch, i)) {
      out->history_.push_back(RecordRef{batch, i});
      ++taken;
    }
    return last == 0 || taken < last;
  };
  if (last > 0) {
    const size_t first = out->history_.size();
    ring.ForEachNewestFirst(take);
    std::reverse(out->history_.begin() + static_cast<ptrdiff_t>(first), out->history_.end());
  } else {
    ring.ForEachOldestFirst(take);
  }
  if (query.since() != 0 && (last == 0 || taken < last)) {
    uint64_t lost = ring.EvictedSince(query.since());
    if (lost > 0) {
      v1::LostEvents event;
      event.set_reason(v1::LostEvents::HISTORY_OVERWRITTEN);
      event.set_count(lost);
      event.set_source(source);
      out->history_lost_.push_back(std::move(event));
    }
  }
}

std::unique_ptr<Subscription> Hub::Subscribe(const Query& query, uint64_t last, bool follow) {
  auto subscription = std::make_unique<Subscription>(this, query, options_.subscriber_queue_size);
  {
    std::lock_guard lock(mu_);
    for (const auto& [source, ring] : rings_) {
      if (query.WantsSource(source)) {
        SelectHistory(*ring, source, query, last, subscription.get());
      }
    }
    if (follow && !closed_) {
      subscriptions_.push_back(subscription.get());
      subscription->registered_ = true;
    }
  }
  if (!subscription->registered_) subscription->Close();
  std::stable_sort(subscription->history_.begin(), subscription->history_.end(),
                   [](const RecordRef& a, const RecordRef& b) { return a.time() < b.time(); });
  return subscription;
}

void Hub::Leave(Subscription* subscription) {
  std::lock_guard lock(mu_);
  if (!subscription->registered_) return;
  subscriptions_.erase(std::find(subscriptions_.begin(), subscriptions_.end(), subscription));
  subscription->registered_ = false;
}

void Hub::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (Subscription* s : subscriptions_) s->Close();
}

std::vector<v1::SourceCounters> Hub::Sources() const {
  std::lock_guard lock(mu_);
  std::vector<v1::SourceCounters> out;
  for (const auto& [source, ring] : rings_) {
    v1::SourceCounters c;
    c.set_source(source);
    c.set_ingested(ring->appended());
    c.set_stored(ring->size());
    c.set_capacity(ring->capacity());
    out.push_back(std::move(c));
  }
  return out;
}

size_t Hub::live_subscriptions() const {
  std::lock_guard lock(mu_);
  return subscriptions_.size();
}

}  // namespace nodescope::aggregator::api
