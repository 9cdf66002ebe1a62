#include "aggregator/netflow_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "aggregator/aggregator.h"
#include "aggregator/ingest/ingestor.h"
#include "aggregator/metrics_testing.h"
#include "common/http/server.h"

namespace nodescope::aggregator {
namespace {

using namespace testing;

v1::NetflowEvent Flow(v1::NetflowEvent::Direction direction, uint32_t src_port, uint32_t dst_port,
                      uint64_t bytes_read, uint64_t bytes_written) {
  v1::NetflowEvent n;
  n.set_transport(v1::NetflowEvent::TCP);
  n.set_direction(direction);
  n.set_src_ip(Ip4(127, 0, 0, 1));
  n.set_dst_ip(Ip4(127, 0, 0, 1));
  n.set_src_port(src_port);
  n.set_dst_port(dst_port);
  n.set_pid(3121);
  n.set_process_name(direction == v1::NetflowEvent::OUTGOING ? "curl" : "nginx");
  n.set_bytes_read(bytes_read);
  n.set_bytes_written(bytes_written);
  return n;
}

double Total(prometheus::Registry& registry, const std::string& name) {
  double sum = 0;
  for (const auto& m : Series(registry, name)) sum += m.counter.value;
  return sum;
}

TEST(NetflowMetrics, DefaultLabelsUseTheServerPortOfEachDirection) {
  prometheus::Registry registry;
  NetflowMetrics metrics(registry, kDefaultNetflowLabels, kDefaultMaximumDimensions);
  v1::NetflowEvent client = Flow(v1::NetflowEvent::OUTGOING, 0, 80, 1'048'576 + 240, 77);
  client.set_retransmits(4);
  client.set_tcp_established(3);
  client.set_tcp_closed(2);
  client.set_dst_service_name("http");
  v1::NetflowEvent server = Flow(v1::NetflowEvent::INCOMING, 80, 0, 77, 1'048'576 + 240);
  metrics.Observe("node-1", client);
  metrics.Observe("node-1", client);
  metrics.Observe("node-1", server);
  EXPECT_EQ(metrics.series(), 2u);

  const LabelMap client_labels = {{"host", "node-1"},       {"direction", "outgoing"},
                                  {"transport", "tcp"},     {"family", "IPv4"},
                                  {"process_name", "curl"}, {"server_port", "80"}};
  const LabelMap server_labels = {{"host", "node-1"},        {"direction", "incoming"},
                                  {"transport", "tcp"},      {"family", "IPv4"},
                                  {"process_name", "nginx"}, {"server_port", "80"}};
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", client_labels), 2'097'632);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_written_total", client_labels), 154);
  EXPECT_EQ(Value(registry, "nodescope_netflow_retransmits_total", client_labels), 8);
  EXPECT_EQ(Value(registry, "nodescope_netflow_tcp_established_total", client_labels), 6);
  EXPECT_EQ(Value(registry, "nodescope_netflow_tcp_closed_total", client_labels), 4);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", server_labels), 77);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_written_total", server_labels), 1'048'816);
  EXPECT_EQ(Value(registry, "nodescope_netflow_tcp_closed_total", server_labels), 0);
  EXPECT_TRUE(Series(registry, "nodescope_netflow_series_folded_total").empty());
}

TEST(NetflowMetrics, AllowListSelectsTheLabelsAndMergesTheRest) {
  prometheus::Registry registry;
  // Listed twice and in another order: each label once, whatever the order.
  NetflowMetrics metrics(registry, {"dst_service_name", "host", "dst_service_name"}, 500);
  for (uint32_t port : {443, 8443, 9443}) {
    v1::NetflowEvent e = Flow(v1::NetflowEvent::OUTGOING, 0, port, 100, 10);
    e.set_dst_service_name("https");
    metrics.Observe("node-1", e);
  }
  v1::NetflowEvent dns = Flow(v1::NetflowEvent::OUTGOING, 0, 53, 7, 1);
  dns.set_transport(v1::NetflowEvent::UDP);
  metrics.Observe("node-1", dns);
  EXPECT_EQ(metrics.series(), 2u);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total",
                  {{"host", "node-1"}, {"dst_service_name", "https"}}),
            300);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total",
                  {{"host", "node-1"}, {"dst_service_name", ""}}),
            7);
}

TEST(NetflowMetrics, InvalidUtf8ProcessNameIsAValidLabelValue) {
  prometheus::Registry registry;
  NetflowMetrics metrics(registry, {"process_name"}, 500);
  v1::NetflowEvent e = Flow(v1::NetflowEvent::OUTGOING, 0, 80, 5, 0);
  e.set_process_name("w\xffrk");
  metrics.Observe("node-1", e);
  EXPECT_EQ(
      Value(registry, "nodescope_netflow_bytes_read_total", {{"process_name", "w\xEF\xBF\xBDrk"}}),
      5);
}

// A port scan against node-1: 10,000 connections to distinct ports, each a new label set.
TEST(NetflowMetrics, PortScanIsFoldedIntoOneOtherSeriesPerHost) {
  constexpr int kPorts = 10'000;
  constexpr size_t kCap = 500;
  prometheus::Registry registry;
  NetflowMetrics metrics(registry, kDefaultNetflowLabels, kCap);

  // node-2 has its own budget: its series exist before and after node-1's scan.
  metrics.Observe("node-2", Flow(v1::NetflowEvent::OUTGOING, 0, 443, 1000, 100));
  uint64_t read_in = 1000;
  uint64_t written_in = 100;
  for (int i = 0; i < kPorts; ++i) {
    v1::NetflowEvent e = Flow(v1::NetflowEvent::OUTGOING, 0, 1 + static_cast<uint32_t>(i),
                              static_cast<uint64_t>(i % 7), 60);
    e.set_tcp_established(i % 2);
    e.set_rtt_us(100);
    metrics.Observe("node-1", e);
    read_in += static_cast<uint64_t>(i % 7);
    written_in += 60;
  }
  // A label set that got a series before the cap keeps it.
  metrics.Observe("node-1", Flow(v1::NetflowEvent::OUTGOING, 0, 1, 1'000'000, 0));
  read_in += 1'000'000;
  metrics.Observe("node-2", Flow(v1::NetflowEvent::INCOMING, 22, 0, 5, 5));
  read_in += 5;
  written_in += 5;

  std::map<std::string, size_t> per_host;
  for (const auto& m : Series(registry, "nodescope_netflow_bytes_read_total")) {
    ++per_host[Labels(m)["host"]];
  }
  EXPECT_EQ(per_host["node-1"], kCap + 1);
  EXPECT_EQ(per_host["node-2"], 2u);
  EXPECT_EQ(metrics.series(), kCap + 1 + 2);
  // Every series has its histogram, observed or not.
  EXPECT_EQ(Series(registry, "nodescope_netflow_rtt_seconds").size(), kCap + 1 + 2);

  // Totals are conserved: the sum over all series is the sum of what was observed.
  EXPECT_EQ(Total(registry, "nodescope_netflow_bytes_read_total"), static_cast<double>(read_in));
  EXPECT_EQ(Total(registry, "nodescope_netflow_bytes_written_total"),
            static_cast<double>(written_in));
  EXPECT_EQ(Total(registry, "nodescope_netflow_tcp_established_total"), kPorts / 2);

  const LabelMap other = {{"host", "node-1"},  {"direction", "other"},    {"transport", "other"},
                          {"family", "other"}, {"process_name", "other"}, {"server_port", "other"}};
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_written_total", other),
            60.0 * (kPorts - kCap));
  EXPECT_EQ(Value(registry, "nodescope_netflow_series_folded_total", {{"host", "node-1"}}),
            kPorts - kCap);
  EXPECT_EQ(Value(registry, "nodescope_netflow_series_folded_total", {{"host", "node-2"}}), -1);
  const LabelMap port_1 = {{"host", "node-1"}, {"direction", "outgoing"}, {"transport", "tcp"},
                           {"family", "IPv4"}, {"process_name", "curl"},  {"server_port", "1"}};
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", port_1), 1'000'000);
  const LabelMap port_501 = {{"host", "node-1"}, {"direction", "outgoing"}, {"transport", "tcp"},
                             {"family", "IPv4"}, {"process_name", "curl"},  {"server_port", "501"}};
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", port_501), -1);
}

TEST(NetflowMetrics, WithoutHostLabelTheCapIsSharedByAllHosts) {
  prometheus::Registry registry;
  NetflowMetrics metrics(registry, {"server_port"}, 3);
  for (uint32_t port = 1; port <= 5; ++port) {
    metrics.Observe("node-1", Flow(v1::NetflowEvent::OUTGOING, 0, port, 1, 0));
    metrics.Observe("node-2", Flow(v1::NetflowEvent::OUTGOING, 0, port + 100, 1, 0));
  }
  // node-1's 1, node-2's 101, node-1's 2 get series; the 7 later label sets share "other".
  EXPECT_EQ(metrics.series(), 4u);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", {{"server_port", "other"}}), 7);
  EXPECT_EQ(Value(registry, "nodescope_netflow_bytes_read_total", {{"server_port", "2"}}), 1);
  EXPECT_EQ(Value(registry, "nodescope_netflow_series_folded_total", {{"host", "node-1"}}), 3);
  EXPECT_EQ(Value(registry, "nodescope_netflow_series_folded_total", {{"host", "node-2"}}), 4);
}

TEST(NetflowMetrics, RttHistogramBucketsInSeconds) {
  const std::vector<double> expected = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3, 10e-3,
                                        25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1.0,    2.5,  5.0};
  EXPECT_EQ(NetflowRttBuckets(), expected);

  prometheus::Registry registry;
  NetflowMetrics metrics(registry, {"host"}, 500);
  // rtt 0 (UDP, or no sample yet) is not an observation.
  for (uint64_t rtt_us : {0, 30, 50, 51, 412, 3'000'000, 7'000'000}) {
    v1::NetflowEvent e = Flow(v1::NetflowEvent::OUTGOING, 0, 80, 1, 1);
    e.set_rtt_us(rtt_us);
    metrics.Observe("node-1", e);
  }
  std::vector<prometheus::ClientMetric> series = Series(registry, "nodescope_netflow_rtt_seconds");
  ASSERT_EQ(series.size(), 1u);
  const prometheus::ClientMetric::Histogram& h = series[0].histogram;
  EXPECT_EQ(h.sample_count, 6u);
  EXPECT_NEAR(h.sample_sum, 10.000543, 1e-9);
  ASSERT_EQ(h.bucket.size(), expected.size() + 1);  // + the +Inf bucket
  // Cumulative: le=50µs holds 30 and 50 (bounds are inclusive), le=100µs adds 51, le=500µs
  // 412; 3 s is in le=5, 7 s only in +Inf.
  const std::vector<uint64_t> cumulative = {2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6};
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]);
    if (i < expected.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, expected[i]);
    }
  }
}

TEST(NetflowMetrics, ConcurrentObserversLoseNothing) {
  prometheus::Registry registry;
  NetflowMetrics metrics(registry, kDefaultNetflowLabels, 50);
  constexpr int kThreads = 4;
  constexpr int kEach = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < kEach; ++i) {
        metrics.Observe("node-" + std::to_string(t % 2),
                        Flow(v1::NetflowEvent::OUTGOING, 0, static_cast<uint32_t>(i % 200), 3, 1));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Total(registry, "nodescope_netflow_bytes_read_total"), 3.0 * kThreads * kEach);
  EXPECT_EQ(metrics.series(), 2u * 51);
}

TEST(NetflowOptions, DefaultsAndBadValues) {
  Options options;
  config::Schema schema("nodescope-aggregator");
  RegisterOptions(&schema, &options);
  ASSERT_TRUE(schema.LoadText("", "empty.yaml").ok());
  EXPECT_EQ(options.netflow_labels,
            (std::vector<std::string>{"host", "direction", "transport", "family", "process_name",
                                      "server_port"}));
  EXPECT_EQ(options.maximum_dimensions, 500);

  ASSERT_TRUE(
      schema
          .LoadText("netflow_labels: [host, dst_service_name]\nmaximum_dimensions: 20\n", "a.yaml")
          .ok());
  EXPECT_EQ(options.netflow_labels, (std::vector<std::string>{"host", "dst_service_name"}));
  EXPECT_EQ(options.maximum_dimensions, 20);
  EXPECT_TRUE(ValidateOptions(options).ok());

  Status bad = schema.LoadText("netflow_labels: [host, dst_port]\n", "b.yaml");
  EXPECT_EQ(bad.message(),
            "config b.yaml: key 'netflow_labels': \"dst_port\" is not one of: host, direction, "
            "transport, family, process_name, server_port, dst_service_name");
  EXPECT_EQ(options.netflow_labels, (std::vector<std::string>{"host", "dst_service_name"}));
  EXPECT_FALSE(schema.LoadText("maximum_dimensions: 0\n", "c.yaml").ok());
  EXPECT_FALSE(schema.LoadText("maximum_dimensions: many\n", "c.yaml").ok());
  EXPECT_FALSE(schema.LoadText("netflow_labels: host\n", "d.yaml").ok());
  EXPECT_EQ(options.maximum_dimensions, 20);

  std::map<std::string, std::string> env = {{"NODESCOPE_NETFLOW_LABELS", "host,family,host"}};
  ASSERT_TRUE(schema
                  .LoadEnv([&](const char* name) -> const char* {
                    auto it = env.find(name);
                    return it == env.end() ? nullptr : it->second.c_str();
                  })
                  .ok());
  EXPECT_EQ(ValidateOptions(options).message(),
            "config: key 'netflow_labels': \"host\" is listed twice");
}

// The ingest path: a committed batch's netflow events reach the families; an event that is not
// converted (malformed address) is counted as dropped and not in the netflow metrics.
TEST(NetflowMetrics, IngestorCountsConvertedNetflowEvents) {
  Metrics metrics;
  NetflowMetrics netflow(metrics.registry(), kDefaultNetflowLabels, 500);
  auto seqs = ingest::SeqStore::Open("");
  ASSERT_TRUE(seqs.ok()) << seqs.status().message();
  api::Hub hub({}, &metrics);
  sinks::SinkSet sinks({}, &metrics);
  ingest::SensorRegistry sensors;
  ingest::Ingestor ingestor(seqs->get(), &hub, &sinks, &sensors, &metrics, &netflow);

  v1::Batch batch;
  batch.set_node("node-1");
  batch.set_seq(1);
  *batch.add_events()->mutable_netflow() = Flow(v1::NetflowEvent::OUTGOING, 0, 80, 1000, 10);
  *batch.add_events()->mutable_netflow() = Flow(v1::NetflowEvent::INCOMING, 80, 0, 10, 1000);
  v1::NetflowEvent malformed = Flow(v1::NetflowEvent::OUTGOING, 0, 80, 5, 5);
  malformed.set_dst_ip("\x7f\x00\x00");
  *batch.add_events()->mutable_netflow() = malformed;
  ingest::Ingestor::Outcome outcome = ingestor.Commit(batch, "instance-a", 1);
  EXPECT_EQ(outcome.records, 2u);
  // Resent: a duplicate, not counted again.
  EXPECT_TRUE(ingestor.Commit(batch, "instance-a", 2).duplicate);

  EXPECT_EQ(Total(metrics.registry(), "nodescope_netflow_bytes_read_total"), 1010);
  EXPECT_EQ(Total(metrics.registry(), "nodescope_netflow_bytes_written_total"), 1010);
  EXPECT_EQ(metrics.DroppedByReason()[kDropUnknownEvent], 1u);
  const std::string text = http::SerializeMetrics(metrics.registry());
  EXPECT_NE(text.find("nodescope_netflow_bytes_read_total{direction=\"outgoing\",family=\"IPv4\","
                      "host=\"node-1\",process_name=\"curl\",server_port=\"80\",transport=\"tcp\"}"
                      " 1000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("nodescope_records_ingested_total{source=\"netflow\"} 2\n"),
            std::string::npos);
}

}  // namespace
}  // namespace nodescope::aggregator
