#include "aggregator/api/hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "aggregator/metrics_testing.h"
#include "common/records/record.h"

namespace nodescope::aggregator::api {
namespace {

v1::Record Rec(const std::string& source, int64_t time, const std::string& pid = "1") {
  v1::Record r;
  r.set_source(source);
  r.set_time_unix_nano(time);
  r.set_host("node-1");
  records::AddTag(&r, "host", "node-1");
  records::AddTag(&r, "pid", pid);
  return r;
}

RecordBatchPtr Batch(const std::string& source, int64_t first_time, int count) {
  std::vector<v1::Record> records;
  for (int i = 0; i < count; ++i) records.push_back(Rec(source, first_time + i));
  return MakeBatch(records);
}

Query Compile(const v1::SubscribeRequest& request) {
  auto q = Query::Compile(request);
  EXPECT_TRUE(q.ok()) << q.status().message();
  return *q;
}

std::vector<int64_t> Times(const std::vector<RecordRef>& records) {
  std::vector<int64_t> out;
  for (const RecordRef& r : records) out.push_back(r.record().time_unix_nano());
  return out;
}

std::vector<int64_t> Drain(Subscription* s, std::map<std::string, uint64_t>* lost) {
  std::vector<LiveItem> items;
  s->Next(std::chrono::milliseconds(0), &items, lost);
  std::vector<int64_t> out;
  for (const LiveItem& item : items) {
    item.ForEach([&](uint32_t i) { out.push_back((*item.batch)[i].time_unix_nano()); });
  }
  return out;
}

class HubTest : public ::testing::Test {
 protected:
  Metrics metrics_;
};

TEST_F(HubTest, LastNPerSourceMergedInTimeOrder) {
  Hub hub({.history_size = 100, .subscriber_queue_size = 100}, &metrics_);
  // process at even times 0..18, netflow at odd times 1..19, published interleaved.
  for (int i = 0; i < 10; ++i) {
    hub.Publish(MakeBatch({Rec("process", 2 * i)}));
    hub.Publish(MakeBatch({Rec("netflow", 2 * i + 1)}));
  }
  auto s = hub.Subscribe(Compile({}), 3, /*follow=*/false);
  // Exactly 3 of each: process 14,16,18 and netflow 15,17,19.
  EXPECT_EQ(Times(s->history()), (std::vector<int64_t>{14, 15, 16, 17, 18, 19}));
  EXPECT_TRUE(s->history_lost().empty());

  v1::SubscribeRequest only_process;
  only_process.add_sources("process");
  auto p = hub.Subscribe(Compile(only_process), 2, false);
  EXPECT_EQ(Times(p->history()), (std::vector<int64_t>{16, 18}));

  auto none = hub.Subscribe(Compile({}), 0, false);  // neither last nor since: no history
  EXPECT_TRUE(none->history().empty());
}

TEST_F(HubTest, LastNCountsOnlyMatchingRecords) {
  Hub hub({.history_size = 100, .subscriber_queue_size = 100}, &metrics_);
  std::vector<v1::Record> records;
  for (int i = 0; i < 20; ++i) records.push_back(Rec("process", i, i % 2 ? "7" : "8"));
  hub.Publish(MakeBatch(records));
  v1::SubscribeRequest req;
  v1::Match* m = req.add_allow()->add_matches();
  m->set_key("pid");
  m->set_equals("7");
  auto s = hub.Subscribe(Compile(req), 3, false);
  EXPECT_EQ(Times(s->history()), (std::vector<int64_t>{15, 17, 19}));
}

TEST_F(HubTest, SinceAndUntil) {
  Hub hub({.history_size = 100, .subscriber_queue_size = 100}, &metrics_);
  hub.Publish(Batch("process", 100, 50));  // times 100..149
  v1::SubscribeRequest req;
  req.set_since_unix_nano(140);
  auto since = hub.Subscribe(Compile(req), 0, false);
  EXPECT_EQ(Times(since->history()),
            (std::vector<int64_t>{140, 141, 142, 143, 144, 145, 146, 147, 148, 149}));
  req.set_until_unix_nano(142);
  auto window = hub.Subscribe(Compile(req), 0, false);
  EXPECT_EQ(Times(window->history()), (std::vector<int64_t>{140, 141, 142}));
  // last N within a window: the newest N of the window.
  req.set_since_unix_nano(120);
  req.set_until_unix_nano(130);
  auto last = hub.Subscribe(Compile(req), 2, false);
  EXPECT_EQ(Times(last->history()), (std::vector<int64_t>{129, 130}));
  EXPECT_TRUE(last->history_lost().empty());
}

TEST_F(HubTest, HistoryOverwrittenIsReported) {
  Hub hub({.history_size = 10, .subscriber_queue_size = 100}, &metrics_);
  hub.Publish(Batch("process", 1000, 25));  // 1000..1024; 1000..1014 overwritten
  v1::SubscribeRequest req;
  req.set_since_unix_nano(1005);
  auto s = hub.Subscribe(Compile(req), 0, false);
  EXPECT_EQ(s->history().size(), 10u);
  EXPECT_EQ(s->history().front().record().time_unix_nano(), 1015);
  ASSERT_EQ(s->history_lost().size(), 1u);
  EXPECT_EQ(s->history_lost()[0].reason(), v1::LostEvents::HISTORY_OVERWRITTEN);
  EXPECT_EQ(s->history_lost()[0].count(), 10u);  // 1005..1014
  EXPECT_EQ(s->history_lost()[0].source(), "process");
  // The whole overwrite is counted for Prometheus, whatever a subscriber asked for.
  EXPECT_EQ(testing::Value(metrics_.registry(), "nodescope_history_evicted_total",
                           {{"source", "process"}}),
            15);

  req.set_since_unix_nano(1015);  // nothing asked for was overwritten
  EXPECT_TRUE(hub.Subscribe(Compile(req), 0, false)->history_lost().empty());
  // `last` satisfied from what is held: nothing lost either.
  req.set_since_unix_nano(1005);
  EXPECT_TRUE(hub.Subscribe(Compile(req), 5, false)->history_lost().empty());
  hub.Publish(Batch("process", 1025, 3));
  EXPECT_EQ(testing::Value(metrics_.registry(), "nodescope_history_evicted_total",
                           {{"source", "process"}}),
            18);
}

TEST_F(HubTest, HistoryDoesNotKeepOtherSourcesBatchesAlive) {
  Hub hub({.history_size = 100, .subscriber_queue_size = 100}, &metrics_);
  // Each batch: many process records and one dnsflow record, as a sensor sends them.
  std::weak_ptr<const RecordBatch> first;
  for (int b = 0; b < 50; ++b) {
    std::vector<v1::Record> records;
    for (int i = 0; i < 20; ++i) records.push_back(Rec("process", b * 100 + i));
    records.push_back(Rec("dnsflow", b * 100 + 50));
    RecordBatchPtr batch = MakeBatch(records);
    if (b == 0) first = batch;
    hub.Publish(batch);
  }
  // process has kept its newest 100 records: the first batch's have all left, and the dnsflow
  // ring (50 of its 100) must not be what holds that batch.
  EXPECT_TRUE(first.expired());
  v1::SubscribeRequest req;
  req.set_since_unix_nano(1);
  auto s = hub.Subscribe(Compile(req), 0, false);
  std::vector<int64_t> dns;
  for (const RecordRef& r : s->history()) {
    if (r.record().source() == "dnsflow") dns.push_back(r.record().time_unix_nano());
  }
  ASSERT_EQ(dns.size(), 50u);
  EXPECT_EQ(dns.front(), 50);
  EXPECT_EQ(dns.back(), 4950);
  EXPECT_TRUE(s->history_lost().empty() || s->history_lost()[0].source() == "process");
}

TEST_F(HubTest, LiveRecordsAfterSubscribe) {
  Hub hub({.history_size = 100, .subscriber_queue_size = 100}, &metrics_);
  hub.Publish(Batch("process", 0, 5));
  auto s = hub.Subscribe(Compile({}), 0, /*follow=*/true);
  EXPECT_TRUE(s->history().empty());
  EXPECT_EQ(hub.live_subscriptions(), 1u);
  hub.Publish(Batch("process", 5, 3));
  std::map<std::string, uint64_t> lost;
  EXPECT_EQ(Drain(s.get(), &lost), (std::vector<int64_t>{5, 6, 7}));
  EXPECT_TRUE(lost.empty());
  s.reset();
  EXPECT_EQ(hub.live_subscriptions(), 0u);
  hub.Publish(Batch("process", 8, 1));  // nobody to offer to: fine
}

TEST_F(HubTest, SlowSubscriberLosesExactlyWhatDidNotFit) {
  Hub hub({.history_size = 1000, .subscriber_queue_size = 100}, &metrics_);
  v1::SubscribeRequest netflow_only;
  netflow_only.add_sources("netflow");
  auto slow = hub.Subscribe(Compile({}), 0, true);
  auto filtered = hub.Subscribe(Compile(netflow_only), 0, true);
  for (int i = 0; i < 10; ++i) hub.Publish(Batch("process", i * 30, 30));  // 300 records
  hub.Publish(Batch("netflow", 5000, 7));

  std::map<std::string, uint64_t> lost;
  std::vector<int64_t> got = Drain(slow.get(), &lost);
  ASSERT_EQ(got.size(), 100u);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);  // the first 100 that fit
  EXPECT_EQ(lost, (std::map<std::string, uint64_t>{{"process", 200}, {"netflow", 7}}));
  // The filtered subscriber was never full: records of other sources do not count against it.
  std::map<std::string, uint64_t> lost2;
  EXPECT_EQ(Drain(filtered.get(), &lost2).size(), 7u);
  EXPECT_TRUE(lost2.empty());
  EXPECT_EQ(metrics_.DroppedByReason(),
            (std::map<std::string, uint64_t>{{kDropSlowSubscriber, 207}}));

  // Draining made room again; the loss is reported once.
  hub.Publish(Batch("process", 9000, 2));
  lost.clear();
  EXPECT_EQ(Drain(slow.get(), &lost), (std::vector<int64_t>{9000, 9001}));
  EXPECT_TRUE(lost.empty());
}

TEST_F(HubTest, CloseEndsSubscriptions) {
  Hub hub({.history_size = 10, .subscriber_queue_size = 10}, &metrics_);
  auto s = hub.Subscribe(Compile({}), 0, true);
  hub.Publish(Batch("process", 0, 2));
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    hub.Close();
  });
  std::vector<LiveItem> items;
  std::map<std::string, uint64_t> lost;
  EXPECT_TRUE(s->Next(std::chrono::milliseconds(0), &items, &lost));  // queued records first
  EXPECT_EQ(items.size(), 1u);
  items.clear();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(s->Next(std::chrono::seconds(10), &items, &lost));  // woken by Close
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  closer.join();
  auto late = hub.Subscribe(Compile({}), 0, true);
  EXPECT_FALSE(late->Next(std::chrono::milliseconds(0), &items, &lost));
}

// Subscribers join while a publisher runs; each must see every record from its first history
// record on, exactly once, in order.
TEST_F(HubTest, FollowHasNoGapAndNoDuplicate) {
  constexpr int kBatches = 2000;
  constexpr int kPerBatch = 50;
  constexpr int64_t kTotal = int64_t{kBatches} * kPerBatch;
  Hub hub({.history_size = 1'000'000, .subscriber_queue_size = 1'000'000}, &metrics_);
  std::atomic<int> published{0};
  std::thread publisher([&] {
    for (int b = 0; b < kBatches; ++b) {
      hub.Publish(Batch("process", int64_t{b} * kPerBatch, kPerBatch));
      published.store(b + 1);
    }
  });
  std::vector<std::thread> subscribers;
  std::atomic<int> checked{0};
  for (int k = 0; k < 6; ++k) {
    subscribers.emplace_back([&, k] {
      while (published.load() < k * kBatches / 6) std::this_thread::yield();
      // Everything held (last = all) or only what comes next (last = 0).
      auto s = hub.Subscribe(Compile({}), k % 2 == 0 ? kTotal : 0, true);
      std::vector<int64_t> seen = Times(s->history());
      std::map<std::string, uint64_t> lost;
      while (seen.empty() || seen.back() != kTotal - 1) {
        std::vector<LiveItem> items;
        s->Next(std::chrono::milliseconds(100), &items, &lost);
        for (const LiveItem& item : items) {
          item.ForEach([&](uint32_t i) { seen.push_back((*item.batch)[i].time_unix_nano()); });
        }
        if (published.load() == kBatches && items.empty() && !seen.empty() &&
            seen.back() != kTotal - 1) {
          break;  // would hang otherwise; the checks below report it
        }
      }
      EXPECT_TRUE(lost.empty());
      ASSERT_FALSE(seen.empty());
      if (k % 2 == 0) {
        EXPECT_EQ(seen.front(), 0) << "subscriber " << k;
      }
      EXPECT_EQ(seen.back(), kTotal - 1) << "subscriber " << k;
      EXPECT_EQ(static_cast<int64_t>(seen.size()), kTotal - seen.front()) << "subscriber " << k;
      for (size_t i = 1; i < seen.size(); ++i) {
        ASSERT_EQ(seen[i], seen[i - 1] + 1) << "subscriber " << k << " at " << i;
      }
      checked.fetch_add(1);
    });
  }
  publisher.join();
  for (auto& t : subscribers) t.join();
  EXPECT_EQ(checked.load(), 6);
}

TEST_F(HubTest, SourcesCounters) {
  Hub hub({.history_size = 10, .subscriber_queue_size = 10}, &metrics_);
  hub.Publish(Batch("process", 0, 25));
  hub.Publish(Batch("netflow", 0, 3));
  auto sources = hub.Sources();
  ASSERT_EQ(sources.size(), 2u);
  EXPECT_EQ(sources[0].source(), "netflow");
  EXPECT_EQ(sources[0].ingested(), 3u);
  EXPECT_EQ(sources[0].stored(), 3u);
  EXPECT_EQ(sources[1].source(), "process");
  EXPECT_EQ(sources[1].ingested(), 25u);
  EXPECT_EQ(sources[1].stored(), 10u);
  EXPECT_EQ(sources[1].capacity(), 10u);
}

}  // namespace
}  // namespace nodescope::aggregator::api
