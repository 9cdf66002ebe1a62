#include "aggregator/kernel_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <thread>

#include "aggregator/enrich/k8s/cluster_state.h"
#include "aggregator/ingest/ingestor.h"
#include "aggregator/metrics_testing.h"
#include "common/http/server.h"

namespace nodescope::aggregator {
namespace {

using namespace testing;
using records::KernelMetricKind;

constexpr char kDropped[] = "nodescope_records_dropped_total";

v1::KernelLabels HostWide(std::initializer_list<std::pair<std::string, std::string>> extra = {}) {
  v1::KernelLabels labels;
  for (const auto& [k, v] : extra) (*labels.mutable_extra())[k] = v;
  return labels;
}

v1::KernelLabels App(const std::string& app) {
  v1::KernelLabels labels;
  labels.set_app(app);
  return labels;
}

v1::KernelLabels Cgroup(uint64_t id, const std::string& path) {
  v1::KernelLabels labels;
  labels.set_cgroup_id(id);
  labels.set_cgroup(path);
  return labels;
}

void AddCounter(v1::KernelMetricsEvent* e, const std::string& name, const v1::KernelLabels& labels,
                uint64_t delta) {
  v1::KernelCounter* c = e->add_counters();
  c->set_name(name);
  *c->mutable_labels() = labels;
  c->set_delta(delta);
}

void AddGauge(v1::KernelMetricsEvent* e, const std::string& name, const v1::KernelLabels& labels,
              double value) {
  v1::KernelGauge* g = e->add_gauges();
  g->set_name(name);
  *g->mutable_labels() = labels;
  g->set_value(value);
}

// `slots`: (slot, delta) pairs; the slots in between are sent as zeros, as the sensor does.
void AddHistogram(v1::KernelMetricsEvent* e, const std::string& name,
                  const v1::KernelLabels& labels, std::map<int, uint64_t> slots, uint64_t sum_ns) {
  v1::KernelHistogram* h = e->add_histograms();
  h->set_name(name);
  *h->mutable_labels() = labels;
  const int used = slots.empty() ? 0 : slots.rbegin()->first + 1;
  for (int i = 0; i < used; ++i) h->add_slot_deltas(slots.count(i) ? slots[i] : 0);
  h->set_sum_ns_delta(sum_ns);
}

double GaugeValue(prometheus::Registry& registry, const std::string& name, const LabelMap& labels) {
  std::optional<prometheus::ClientMetric> m = Find(registry, name, labels);
  return m ? m->gauge.value : -1;
}

// 2^exp ns in seconds, as the bucket bounds are computed.
double Pow2Ns(int exp) { return std::ldexp(1.0, exp) / 1e9; }

TEST(KernelMetrics, CounterDeltasAddUpAcrossEvents) {
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  v1::KernelMetricsEvent first;
  AddCounter(&first, "fd_open", HostWide(), 3);
  AddCounter(&first, "vfs_write_bytes", App("nginx"), 4096);
  kernel.Observe("node-1", first);
  v1::KernelMetricsEvent second;
  AddCounter(&second, "fd_open", HostWide(), 4);
  AddCounter(&second, "vfs_write_bytes", App("nginx"), 1'000'000);
  AddCounter(&second, "vfs_write_bytes", App("postgres"), 12);
  kernel.Observe("node-1", second);
  kernel.Observe("node-2", second);

  prometheus::Registry& r = metrics.registry();
  EXPECT_EQ(Value(r, "nodescope_fd_open_total", {{"host", "node-1"}}), 7);
  EXPECT_EQ(Value(r, "nodescope_fd_open_total", {{"host", "node-2"}}), 4);
  EXPECT_EQ(Value(r, "nodescope_vfs_write_bytes_total", {{"host", "node-1"}, {"app", "nginx"}}),
            1'004'096);
  EXPECT_EQ(Value(r, "nodescope_vfs_write_bytes_total", {{"host", "node-1"}, {"app", "postgres"}}),
            12);
  EXPECT_EQ(Value(r, "nodescope_vfs_write_bytes_total", {{"host", "node-2"}, {"app", "nginx"}}),
            1'000'000);
  EXPECT_EQ(kernel.series(), 6u);
  EXPECT_TRUE(metrics.DroppedByReason().empty());
}

TEST(KernelMetrics, PerCgroupSeriesOfAKnownContainerNameItsPod) {
  enrich::k8s::ClusterState state(int64_t{600} * 1'000'000'000);
  enrich::k8s::PodObject pod;
  pod.uid = "5f1c2a3b-6d7e-4f80-9a1b-2c3d4e5f6a7b";
  pod.ns = "shop";
  pod.name = "cart-7d9f-x";
  pod.containers = {{std::string(64, 'a'), "cart"}};
  state.UpsertPod(pod, 1);
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions, &state);
  const std::string path =
      "/kubepods.slice/kubepods-pod5f1c2a3b_6d7e_4f80_9a1b_2c3d4e5f6a7b.slice/cri-containerd-" +
      std::string(64, 'a') + ".scope";
  v1::KernelLabels known = Cgroup(8412, path);
  known.mutable_container()->set_id(std::string(64, 'a'));
  v1::KernelLabels unknown = Cgroup(8413, "/docker/" + std::string(64, 'b'));
  unknown.mutable_container()->set_id(std::string(64, 'b'));
  v1::KernelMetricsEvent e;
  AddCounter(&e, "fd_open", known, 5);
  AddCounter(&e, "fd_open", unknown, 2);
  kernel.Observe("node-1", e);
  prometheus::Registry& r = metrics.registry();
  EXPECT_EQ(Value(r, "nodescope_fd_open_total",
                  {{"host", "node-1"}, {"cgroup", path}, {"pod", "cart-7d9f-x"},
                   {"namespace", "shop"}}),
            5);
  EXPECT_EQ(Value(r, "nodescope_fd_open_total",
                  {{"host", "node-1"}, {"cgroup", "/docker/" + std::string(64, 'b')}}),
            2);
}

TEST(KernelMetrics, GaugesTakeTheLastValue) {
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  v1::KernelMetricsEvent first;
  AddGauge(&first, "cachestat_ratio", HostWide(), 0.9);
  AddGauge(&first, "process_zombies", HostWide(), 12);
  AddGauge(&first, "kernel_map_entries", HostWide({{"map", "fd_counts"}}), 340);
  kernel.Observe("node-1", first);
  // Only what changed is sent: process_zombies keeps 12.
  v1::KernelMetricsEvent second;
  AddGauge(&second, "cachestat_ratio", HostWide(), 0.25);
  AddGauge(&second, "kernel_map_entries", HostWide({{"map", "fd_counts"}}), 17);
  kernel.Observe("node-1", second);

  prometheus::Registry& r = metrics.registry();
  EXPECT_EQ(GaugeValue(r, "nodescope_cachestat_ratio", {{"host", "node-1"}}), 0.25);
  EXPECT_EQ(GaugeValue(r, "nodescope_process_zombies", {{"host", "node-1"}}), 12);
  EXPECT_EQ(
      GaugeValue(r, "nodescope_kernel_map_entries", {{"host", "node-1"}, {"map", "fd_counts"}}),
      17);
}

TEST(KernelMetrics, HistogramSlotsLandInTheirBuckets) {
  std::vector<double> expected;
  for (int slot = 8; slot <= 33; ++slot) expected.push_back(Pow2Ns(slot + 1));
  ASSERT_EQ(KernelHistogramBuckets(), expected);
  EXPECT_EQ(KernelHistogramBuckets().front(), 512e-9);
  EXPECT_NEAR(KernelHistogramBuckets().back(), 17.179869184, 1e-12);

  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  const v1::KernelLabels sda = HostWide({{"device", "sda"}});
  v1::KernelMetricsEvent first;
  // Slot 3 (8-15 ns), 7 and 8 (up to 511 ns) all fall in le=512ns; slot 9 in le=1024ns; slot
  // 20 in le=2^21ns; slot 33 in the last bound 2^34ns; slots 34 and 39 only in +Inf.
  AddHistogram(&first, "disk_io_latency", sda,
               {{3, 5}, {7, 1}, {8, 1}, {9, 4}, {20, 2}, {33, 1}, {34, 1}, {39, 1}}, 123'456'789);
  kernel.Observe("node-1", first);
  v1::KernelMetricsEvent second;  // deltas: added to the first
  AddHistogram(&second, "disk_io_latency", sda, {{20, 3}}, 1'000'000'000);
  kernel.Observe("node-1", second);

  std::optional<prometheus::ClientMetric> m =
      Find(metrics.registry(), "nodescope_disk_io_latency_seconds",
           {{"host", "node-1"}, {"device", "sda"}});
  ASSERT_TRUE(m.has_value());
  const prometheus::ClientMetric::Histogram& h = m->histogram;
  EXPECT_EQ(h.sample_count, 19u);
  EXPECT_NEAR(h.sample_sum, 1.123456789, 1e-12);
  ASSERT_EQ(h.bucket.size(), expected.size() + 1);
  std::vector<uint64_t> cumulative(h.bucket.size());
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    SCOPED_TRACE(i);
    if (i < expected.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, expected[i]);
    } else {
      EXPECT_TRUE(std::isinf(h.bucket[i].upper_bound));
    }
    cumulative[i] = h.bucket[i].cumulative_count;
  }
  // Index i of the bounded buckets is slot i + 8.
  EXPECT_EQ(cumulative[0], 7u);    // le=512ns: slots 3, 7, 8
  EXPECT_EQ(cumulative[1], 11u);   // le=1024ns: + slot 9
  EXPECT_EQ(cumulative[11], 11u);  // le=2^20ns
  EXPECT_EQ(cumulative[12], 16u);  // le=2^21ns: + slot 20, both events
  EXPECT_EQ(h.bucket[12].upper_bound, Pow2Ns(21));
  EXPECT_EQ(cumulative[24], 16u);  // le=2^33ns
  EXPECT_EQ(cumulative[25], 17u);  // le=2^34ns: + slot 33
  EXPECT_EQ(cumulative[26], 19u);  // +Inf: + slots 34 and 39
}

TEST(KernelMetrics, LabelSetsOfHostAppCgroupAndExtra) {
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  v1::KernelMetricsEvent e;
  AddCounter(&e, "vfs_read", HostWide(), 1);
  AddCounter(&e, "vfs_read", App("nginx"), 2);
  // A cgroup path is bytes: a bad byte becomes U+FFFD.
  AddCounter(&e, "vfs_read", Cgroup(4242, "/system.slice/w\xffrk.service"), 3);
  v1::KernelLabels both = Cgroup(77, "/kubepods/pod1/c1");
  both.set_app("api");
  AddCounter(&e, "vfs_read", both, 4);
  // cgroup_id 0: a path alone is no per-cgroup series.
  AddCounter(&e, "vfs_read", Cgroup(0, "/ignored"), 5);
  AddHistogram(&e, "filesystem_latency", HostWide({{"fstype", "ext4"}, {"op", "read"}}), {{10, 1}},
               1500);
  AddHistogram(&e, "softirq_latency", HostWide({{"vector", "net_rx"}}), {{12, 2}}, 9000);
  AddCounter(&e, "kernel_events_lost", HostWide({{"reason", "map_full"}}), 6);
  kernel.Observe("node-1", e);

  prometheus::Registry& r = metrics.registry();
  std::set<LabelMap> vfs_read;
  for (const auto& m : Series(r, "nodescope_vfs_read_total")) vfs_read.insert(Labels(m));
  EXPECT_EQ(vfs_read, (std::set<LabelMap>{
                          {{"host", "node-1"}},
                          {{"host", "node-1"}, {"app", "nginx"}},
                          {{"host", "node-1"}, {"cgroup", "/system.slice/w\xEF\xBF\xBDrk.service"}},
                          {{"host", "node-1"}, {"app", "api"}, {"cgroup", "/kubepods/pod1/c1"}},
                      }));
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-1"}}), 6);  // 1 + 5
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total",
                  {{"host", "node-1"}, {"app", "api"}, {"cgroup", "/kubepods/pod1/c1"}}),
            4);
  EXPECT_TRUE(Find(r, "nodescope_filesystem_latency_seconds",
                   {{"host", "node-1"}, {"fstype", "ext4"}, {"op", "read"}})
                  .has_value());
  EXPECT_TRUE(
      Find(r, "nodescope_softirq_latency_seconds", {{"host", "node-1"}, {"vector", "net_rx"}})
          .has_value());
  EXPECT_EQ(
      Value(r, "nodescope_kernel_events_lost_total", {{"host", "node-1"}, {"reason", "map_full"}}),
      6);
  EXPECT_TRUE(metrics.DroppedByReason().empty());
}

TEST(KernelMetrics, RejectedEntriesAreCountedAndTheRestKept) {
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  const std::string long_value(257, 'x');
  const std::string longest_value(256, 'y');
  const std::string longest_key(32, 'k');

  v1::KernelMetricsEvent e;
  AddCounter(&e, "fd_open", HostWide(), 10);                            // kept
  AddCounter(&e, "no_such_metric", HostWide(), 1);                      // unknown_metric
  AddGauge(&e, "nodescope_fd_open_total", HostWide(), 1);               // unknown_metric
  AddCounter(&e, "cachestat_ratio", HostWide(), 1);                     // wrong_kind (a gauge)
  AddGauge(&e, "fd_open", HostWide(), 1);                               // wrong_kind
  AddHistogram(&e, "fd_close", HostWide(), {{1, 1}}, 2);                // wrong_kind
  AddCounter(&e, "fd_close", HostWide({{"Device", "sda"}}), 1);         // bad_label: upper case
  AddCounter(&e, "fd_close", HostWide({{"dev1", "sda"}}), 1);           // bad_label: digit
  AddCounter(&e, "fd_close", HostWide({{"__name", "x"}}), 1);           // bad_label: reserved
  AddCounter(&e, "fd_close", HostWide({{"host", "spoofed"}}), 1);       // bad_label: ours
  AddCounter(&e, "fd_close", HostWide({{longest_key + "k", "x"}}), 1);  // bad_label: 33 bytes
  AddCounter(&e, "fd_close", HostWide({{"device", long_value}}), 1);    // bad_label: 257 bytes
  AddCounter(&e, "fd_close", HostWide({{"device", ""}}), 1);            // bad_label: empty
  AddCounter(&e, "fd_close", App(long_value), 1);                       // bad_label
  AddCounter(&e, "fd_close", Cgroup(9, ""), 1);                         // bad_label: no path
  AddHistogram(&e, "disk_io_latency", HostWide({{"le", "1"}}), {{1, 1}}, 2);  // bad_label
  AddHistogram(&e, "disk_io_latency", HostWide({{"device", "sdb"}}), {{40, 1}},
               2);  // too_many_slots: 41
  // At the limits: kept.
  AddCounter(&e, "fd_close", HostWide({{longest_key, longest_value}}), 2);
  AddGauge(&e, "dcstat_ratio", HostWide(), 0.5);
  AddHistogram(&e, "disk_io_latency", HostWide({{"device", "sda"}}), {{39, 1}}, 2);  // 40 slots
  kernel.Observe("node-1", e);

  std::map<std::string, uint64_t> expected = {
      {kDropUnknownMetric, 2}, {kDropWrongKind, 3}, {kDropBadLabel, 10}, {kDropTooManySlots, 1}};
  EXPECT_EQ(metrics.DroppedByReason(), expected);
  prometheus::Registry& r = metrics.registry();
  for (const auto& [reason, n] : expected) {
    EXPECT_EQ(Value(r, kDropped, {{"source", "kernel"}, {"reason", reason}}), n) << reason;
  }
  EXPECT_EQ(Value(r, "nodescope_fd_open_total", {{"host", "node-1"}}), 10);
  EXPECT_EQ(
      Value(r, "nodescope_fd_close_total", {{"host", "node-1"}, {longest_key, longest_value}}), 2);
  EXPECT_EQ(GaugeValue(r, "nodescope_dcstat_ratio", {{"host", "node-1"}}), 0.5);
  std::optional<prometheus::ClientMetric> sda =
      Find(r, "nodescope_disk_io_latency_seconds", {{"host", "node-1"}, {"device", "sda"}});
  ASSERT_TRUE(sda.has_value());
  EXPECT_EQ(sda->histogram.sample_count, 1u);
  // Nothing rejected made a series.
  EXPECT_EQ(kernel.series(), 4u);
  EXPECT_EQ(Series(r, "nodescope_fd_close_total").size(), 1u);
  EXPECT_EQ(Series(r, "nodescope_disk_io_latency_seconds").size(), 1u);
}

TEST(KernelMetrics, LabelSetsBeyondMaximumDimensionsFoldIntoOther) {
  constexpr int kApps = 10;
  constexpr int kCap = 3;
  Metrics metrics;
  KernelMetrics kernel(metrics, kCap);
  // node-2 has its own budget.
  v1::KernelMetricsEvent node2;
  AddCounter(&node2, "vfs_read", App("app-0"), 1000);
  kernel.Observe("node-2", node2);
  v1::KernelMetricsEvent e;
  AddCounter(&e, "vfs_read", HostWide(), 100);  // the host-wide series takes one of the 3
  for (int i = 0; i < kApps; ++i) {
    AddCounter(&e, "vfs_read", App("app-" + std::to_string(i)), static_cast<uint64_t>(i + 1));
  }
  // Another metric has a budget of its own.
  AddCounter(&e, "vfs_write", App("app-9"), 7);
  kernel.Observe("node-1", e);
  // A label set that got a series before the cap keeps it.
  v1::KernelMetricsEvent later;
  AddCounter(&later, "vfs_read", App("app-1"), 50);
  AddCounter(&later, "vfs_read", App("app-7"), 50);
  kernel.Observe("node-1", later);

  prometheus::Registry& r = metrics.registry();
  const LabelMap other = {{"host", "node-1"}, {"app", "other"}, {"cgroup", "other"}};
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-1"}}), 100);
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-1"}, {"app", "app-0"}}), 1);
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-1"}, {"app", "app-1"}}), 52);
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-1"}, {"app", "app-2"}}), -1);
  // app-2 .. app-9 (3 + ... + 10 = 52) and the later 50 of app-7.
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", other), 102);
  EXPECT_EQ(Value(r, "nodescope_vfs_write_total", {{"host", "node-1"}, {"app", "app-9"}}), 7);
  EXPECT_EQ(Value(r, "nodescope_vfs_read_total", {{"host", "node-2"}, {"app", "app-0"}}), 1000);
  EXPECT_EQ(Value(r, "nodescope_kernel_series_folded_total", {{"host", "node-1"}}), 9);
  EXPECT_EQ(Value(r, "nodescope_kernel_series_folded_total", {{"host", "node-2"}}), -1);
  size_t node1_series = 0;
  double total = 0;
  for (const auto& m : Series(r, "nodescope_vfs_read_total")) {
    if (Labels(m)["host"] == "node-1") ++node1_series;
    total += m.counter.value;
  }
  EXPECT_EQ(node1_series, kCap + 1u);
  EXPECT_EQ(total, 100 + 55 + 100 + 1000);  // nothing lost
  EXPECT_EQ(kernel.series(), (kCap + 1u) + 1 + 1);
}

TEST(KernelMetrics, ConcurrentObserversLoseNothing) {
  Metrics metrics;
  KernelMetrics kernel(metrics, 20);
  constexpr int kThreads = 4;
  constexpr int kEach = 5'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&kernel, t] {
      for (int i = 0; i < kEach; ++i) {
        v1::KernelMetricsEvent e;
        AddCounter(&e, "fd_open", App("app-" + std::to_string(i % 50)), 3);
        AddHistogram(&e, "hardirq_latency", HostWide({{"irq", std::to_string(i % 30)}}), {{10, 1}},
                     1024);
        kernel.Observe("node-" + std::to_string(t % 2), e);
      }
    });
  }
  for (auto& t : threads) t.join();
  double fd_open = 0;
  for (const auto& m : Series(metrics.registry(), "nodescope_fd_open_total")) {
    fd_open += m.counter.value;
  }
  EXPECT_EQ(fd_open, 3.0 * kThreads * kEach);
  uint64_t irqs = 0;
  for (const auto& m : Series(metrics.registry(), "nodescope_hardirq_latency_seconds")) {
    irqs += m.histogram.sample_count;
  }
  EXPECT_EQ(irqs, uint64_t{kThreads} * kEach);
  EXPECT_EQ(kernel.series(), 2u * 2 * 21);  // two hosts, two metrics, 20 + other
}

// Every catalog entry can be sent and is served under its Prometheus name and type.
TEST(KernelMetrics, EveryCatalogEntryIsServedWithItsNameAndType) {
  Metrics metrics;
  KernelMetrics kernel(metrics, kDefaultMaximumDimensions);
  v1::KernelMetricsEvent e;
  std::map<std::string, prometheus::MetricType> expected;
  std::set<std::string_view> names;
  int i = 0;
  for (const records::KernelMetricInfo& info : records::kKernelMetrics) {
    ++i;
    EXPECT_TRUE(names.insert(info.name).second) << info.name << " is listed twice";
    const std::string name(info.name);
    switch (info.kind) {
      case KernelMetricKind::kCounter:
        AddCounter(&e, name, App("app"), static_cast<uint64_t>(i));
        expected["nodescope_" + name + "_total"] = prometheus::MetricType::Counter;
        break;
      case KernelMetricKind::kGauge:
        AddGauge(&e, name, App("app"), i);
        expected["nodescope_" + name] = prometheus::MetricType::Gauge;
        break;
      case KernelMetricKind::kHistogram:
        AddHistogram(&e, name, App("app"), {{20, static_cast<uint64_t>(i)}}, 1'000'000);
        expected["nodescope_" + name + "_seconds"] = prometheus::MetricType::Histogram;
        break;
    }
  }
  kernel.Observe("node-1", e);
  EXPECT_TRUE(metrics.DroppedByReason().empty());
  EXPECT_EQ(kernel.series(), records::kKernelMetrics.size());

  std::map<std::string, prometheus::MetricFamily> families;
  for (prometheus::MetricFamily& f : metrics.registry().Collect()) families[f.name] = f;
  i = 0;
  for (const records::KernelMetricInfo& info : records::kKernelMetrics) {
    ++i;
    const std::string name = KernelMetricName(info);
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected.count(name));
    ASSERT_TRUE(families.count(name));
    const prometheus::MetricFamily& f = families[name];
    EXPECT_EQ(f.type, expected[name]);
    EXPECT_EQ(f.help, info.help);
    ASSERT_EQ(f.metric.size(), 1u);
    EXPECT_EQ(Labels(f.metric[0]), (LabelMap{{"host", "node-1"}, {"app", "app"}}));
    switch (info.kind) {
      case KernelMetricKind::kCounter:
        EXPECT_EQ(f.metric[0].counter.value, i);
        break;
      case KernelMetricKind::kGauge:
        EXPECT_EQ(f.metric[0].gauge.value, i);
        break;
      case KernelMetricKind::kHistogram:
        EXPECT_EQ(f.metric[0].histogram.sample_count, static_cast<uint64_t>(i));
        EXPECT_EQ(f.metric[0].histogram.sample_sum, 1e-3);
        break;
    }
  }
  // And the text a scrape gets names each with its type.
  const std::string text = http::SerializeMetrics(metrics.registry());
  for (const auto& [name, type] : expected) {
    const char* type_name = type == prometheus::MetricType::Counter ? "counter"
                            : type == prometheus::MetricType::Gauge ? "gauge"
                                                                    : "histogram";
    EXPECT_NE(text.find("# TYPE " + name + " " + type_name + "\n"), std::string::npos) << name;
  }
}

// The ingest path: a kernel event is no record (not in history, sinks or records counters), is
// not an unknown event, and a resent batch does not count its deltas twice.
TEST(KernelMetrics, IngestorAppliesKernelEventsOncePerCommittedBatch) {
  Metrics metrics;
  NetflowMetrics netflow(metrics.registry(), kDefaultNetflowLabels, 500);
  KernelMetrics kernel(metrics, 500);
  auto seqs = ingest::SeqStore::Open("");
  ASSERT_TRUE(seqs.ok()) << seqs.status().message();
  api::Hub hub({}, &metrics);
  sinks::SinkSet sinks({}, &metrics);
  ingest::SensorRegistry sensors;
  ingest::Ingestor ingestor(seqs->get(), &hub, &sinks, &sensors, &metrics, &netflow, nullptr,
                            nullptr, &kernel);

  v1::Batch batch;
  batch.set_node("node-1");
  batch.set_seq(1);
  v1::Event* process = batch.add_events();
  process->set_time_unix_nano(5);
  process->mutable_process()->set_kind(v1::ProcessEvent::EXEC);
  process->mutable_process()->set_pid(42);
  v1::KernelMetricsEvent* k = batch.add_events()->mutable_kernel();
  k->set_interval_ns(1'000'000'000);
  AddCounter(k, "process_create", HostWide(), 17);
  AddCounter(k, "process_create", App("bash"), 5);
  AddHistogram(k, "disk_io_latency", HostWide({{"device", "nvme0n1"}}), {{20, 4}}, 8'000'000);
  AddCounter(k, "bogus", HostWide(), 1);
  ingest::Ingestor::Outcome outcome = ingestor.Commit(batch, "instance-a", 1);
  EXPECT_FALSE(outcome.duplicate);
  EXPECT_EQ(outcome.records, 1u);  // the process event only
  EXPECT_TRUE(ingestor.Commit(batch, "instance-a", 2).duplicate);

  // The next interval's deltas add up.
  v1::Batch next;
  next.set_node("node-1");
  next.set_seq(2);
  AddCounter(next.add_events()->mutable_kernel(), "process_create", HostWide(), 3);
  outcome = ingestor.Commit(next, "instance-a", 3);
  EXPECT_EQ(outcome.records, 0u);

  const std::map<std::string, uint64_t> dropped = {{kDropUnknownMetric, 1}};
  EXPECT_EQ(metrics.DroppedByReason(), dropped);  // no unknown_event
  const std::string text = http::SerializeMetrics(metrics.registry());
  for (const char* line : {
           "nodescope_process_create_total{host=\"node-1\"} 20\n",
           "nodescope_process_create_total{app=\"bash\",host=\"node-1\"} 5\n",
           "nodescope_disk_io_latency_seconds_count{device=\"nvme0n1\",host=\"node-1\"} 4\n",
           "nodescope_disk_io_latency_seconds_sum{device=\"nvme0n1\",host=\"node-1\"} 0.008\n",
           "nodescope_records_ingested_total{source=\"process\"} 1\n",
           "nodescope_records_deduplicated_total{source=\"process\"} 1\n",
           "nodescope_records_dropped_total{reason=\"unknown_metric\",source=\"kernel\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  // Kernel events are in no records counter, under no source.
  EXPECT_EQ(Series(metrics.registry(), "nodescope_records_ingested_total").size(), 1u);
  EXPECT_EQ(Series(metrics.registry(), "nodescope_records_deduplicated_total").size(), 1u);
}

}  // namespace
}  // namespace nodescope::aggregator
