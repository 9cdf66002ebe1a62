// Where committed records meet their readers: a history ring per source, and the live
// subscriptions, each with a bounded queue. A subscription's history snapshot and its
// registration for live records happen under one lock, so a follower sees every record exactly
// once. Batches are shared, never copied per subscriber.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aggregator/api/filter.h"
#include "aggregator/api/history.h"
#include "aggregator/metrics.h"
#include "aggregator/record_batch.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator::api {

class Hub;

// Records of one published batch that matched a subscription.
struct LiveItem {
  RecordBatchPtr batch;
  bool all = false;               // every record of the batch matched: `indices` is empty
  std::vector<uint32_t> indices;  // otherwise, the matching records

  size_t size() const { return all ? batch->size() : indices.size(); }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    if (all) {
      for (uint32_t i = 0; i < batch->size(); ++i) fn(i);
    } else {
      for (uint32_t i : indices) fn(i);
    }
  }
};

class Subscription {
 public:
  Subscription(Hub* hub, Query query, size_t queue_capacity);
  ~Subscription();  // leaves the hub
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // What the history held for the request, oldest first, and what it no longer held.
  const std::vector<RecordRef>& history() const { return history_; }
  const std::vector<v1::LostEvents>& history_lost() const { return history_lost_; }

  // Waits up to `wait` for live records and moves them (and the per-source counts of records
  // dropped because the queue was full, and the sensors' losses when `sensor_lost`) out. False
  // once the hub is closed and nothing is left.
  bool Next(std::chrono::milliseconds wait, std::vector<LiveItem>* items,
            std::map<std::string, uint64_t>* lost,
            std::vector<v1::LostEvents>* sensor_lost = nullptr);

 private:
  friend class Hub;
  // Called by the hub, under its lock, for each published batch.
  void Offer(const RecordBatchPtr& batch, Metrics* metrics);
  void OfferLost(const v1::LostEvents& lost);
  void Close();

  Hub* const hub_;
  const Query query_;
  const size_t capacity_;
  std::vector<RecordRef> history_;
  std::vector<v1::LostEvents> history_lost_;
  bool registered_ = false;  // guarded by the hub's lock

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<LiveItem> queue_;
  size_t queued_records_ = 0;
  std::map<std::string, uint64_t> lost_;
  // Sensors' losses not yet sent, one entry per host, reason and probe (so bounded by them).
  std::vector<v1::LostEvents> sensor_lost_;
  bool closed_ = false;
};

struct HubOptions {
  size_t history_size = 65536;          // records per source
  size_t subscriber_queue_size = 8192;  // records per subscription
};

class Hub {
 public:
  Hub(HubOptions options, Metrics* metrics);
  ~Hub();

  void Publish(const RecordBatchPtr& batch);
  // A sensor lost events (LostEvents SENSOR_DROPPED): told to every live subscription, whatever
  // its filters, since nobody can tell which records they would have been.
  void SensorLost(const v1::LostEvents& lost);

  // Selects the history the request asks for (`last` newest per source, or all since `since`,
  // within the query's window and filters) and, with `follow`, registers for live records.
  std::unique_ptr<Subscription> Subscribe(const Query& query, uint64_t last, bool follow);

  // Ends every subscription (their Next returns false once drained) and refuses new live ones.
  void Close();

  std::vector<v1::SourceCounters> Sources() const;
  size_t live_subscriptions() const;

 private:
  friend class Subscription;
  void Leave(Subscription* subscription);
  HistoryRing& RingFor(const std::string& source);
  void SelectHistory(const HistoryRing& ring, const std::string& source, const Query& query,
                     uint64_t last, Subscription* out) const;

  const HubOptions options_;
  Metrics* const metrics_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<HistoryRing>, std::less<>> rings_;
  std::vector<Subscription*> subscriptions_;
  bool closed_ = false;
};

}  // namespace nodescope::aggregator::api
