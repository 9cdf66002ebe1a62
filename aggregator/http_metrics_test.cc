#include "aggregator/http_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "aggregator/aggregator.h"
#include "aggregator/ingest/ingestor.h"
#include "aggregator/metrics_testing.h"
#include "common/http/server.h"
#include "common/records/latency.h"

namespace nodescope::aggregator {
namespace {

using namespace testing;

// `count` requests of curl to 127.0.0.1:80 (or nginx's side of them), `per_bucket` of them in
// each listed bucket of kLatencyBounds (index kLatencyBounds.size(): above the last bound).
v1::HttpflowEvent Http(v1::NetflowEvent::Direction direction, const std::string& method,
                       const std::string& path, int32_t status, uint64_t latency_ns,
                       const std::map<size_t, uint64_t>& buckets) {
  v1::HttpflowEvent h;
  h.set_transport(v1::NetflowEvent::TCP);
  h.set_direction(direction);
  h.set_src_ip(Ip4(127, 0, 0, 1));
  h.set_dst_ip(Ip4(127, 0, 0, 1));
  const bool outgoing = direction == v1::NetflowEvent::OUTGOING;
  h.set_src_port(outgoing ? 0 : 80);
  h.set_dst_port(outgoing ? 80 : 0);
  h.set_pid(outgoing ? 3121 : 880);
  h.set_process_name(outgoing ? "curl" : "nginx");
  h.set_method(method);
  h.set_path(path);
  h.set_http_version("1.1");
  h.set_status_code(status);
  uint64_t count = 0;
  for (size_t i = 0; i < records::kLatencyBuckets; ++i) {
    auto it = buckets.find(i);
    h.add_latency_buckets(it == buckets.end() ? 0 : it->second);
    count += it == buckets.end() ? 0 : it->second;
  }
  h.set_count(count);
  h.set_latency_ns(latency_ns);
  return h;
}

v1::DnsflowEvent Dns(int32_t rcode, uint64_t count, const std::string& process = "curl") {
  v1::DnsflowEvent d;
  d.set_transport(v1::NetflowEvent::UDP);
  d.set_direction(v1::NetflowEvent::OUTGOING);
  d.set_src_ip(Ip4(127, 0, 0, 1));
  d.set_dst_ip(Ip4(127, 0, 0, 53));
  d.set_dst_port(53);
  d.set_process_name(process);
  d.set_rcode(rcode);
  d.set_count(count);
  return d;
}

constexpr char kRequests[] = "nodescope_http_requests_total";
constexpr char kDuration[] = "nodescope_http_request_duration_seconds";
constexpr char kDnsRequests[] = "nodescope_dns_requests_total";

const LabelMap kCurlGet = {{"host", "node-1"},       {"direction", "outgoing"},
                           {"method", "GET"},        {"status_code", "200"},
                           {"process_name", "curl"}, {"server_port", "80"}};

TEST(HttpMetrics, CountsAndHistogramAreExact) {
  prometheus::Registry registry;
  HttpMetrics metrics(registry, kDefaultHttpLabels, kDefaultMaximumDimensions);
  const auto out = v1::NetflowEvent::OUTGOING;
  // 3 requests of 200-500 µs (mean 412 µs), then 1 of <= 100 µs and 1 above 10 s (mean 6 s).
  metrics.Observe("node-1", Http(out, "GET", "/", 200, 412'000, {{2, 3}}));
  metrics.Observe("node-1", Http(out, "GET", "/a", 200, 6'000'000'050, {{0, 1}, {16, 1}}));
  metrics.Observe("node-1", Http(out, "POST", "/", 201, 1'000'000, {{3, 1}}));
  metrics.Observe("node-1", Http(v1::NetflowEvent::INCOMING, "GET", "/", 200, 300'000, {{2, 7}}));
  EXPECT_EQ(metrics.series(), 3u);

  EXPECT_EQ(Value(registry, kRequests, kCurlGet), 5);
  LabelMap post = kCurlGet;
  post["method"] = "POST";
  post["status_code"] = "201";
  EXPECT_EQ(Value(registry, kRequests, post), 1);
  const LabelMap nginx = {{"host", "node-1"},     {"direction", "incoming"}, {"method", "GET"},
                          {"status_code", "200"}, {"process_name", "nginx"}, {"server_port", "80"}};
  EXPECT_EQ(Value(registry, kRequests, nginx), 7);

  std::optional<prometheus::ClientMetric> m = Find(registry, kDuration, kCurlGet);
  ASSERT_TRUE(m.has_value());
  const prometheus::ClientMetric::Histogram& h = m->histogram;
  EXPECT_EQ(h.sample_count, 5u);
  EXPECT_NEAR(h.sample_sum, 3 * 412e-6 + 2 * 6.00000005, 1e-12);
  ASSERT_EQ(h.bucket.size(), records::kLatencyBuckets);
  const std::vector<uint64_t> cumulative = {1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5};
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]);
    if (i < records::kLatencyBounds.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, records::kLatencyBounds[i]);
    }
  }
  EXPECT_EQ(Find(registry, kDuration, nginx)->histogram.sample_count, 7u);
  EXPECT_TRUE(Series(registry, "nodescope_http_series_folded_total").empty());
}

TEST(HttpMetrics, BucketsOfAnotherLengthCountRequestsOnly) {
  prometheus::Registry registry;
  HttpMetrics metrics(registry, kDefaultHttpLabels, 500);
  v1::HttpflowEvent e = Http(v1::NetflowEvent::OUTGOING, "GET", "/", 200, 412'000, {{2, 3}});
  e.add_latency_buckets(0);  // 18 buckets: a sensor with other bounds
  metrics.Observe("node-1", e);
  e.clear_latency_buckets();
  metrics.Observe("node-1", e);
  EXPECT_EQ(Value(registry, kRequests, kCurlGet), 6);
  EXPECT_EQ(Find(registry, kDuration, kCurlGet)->histogram.sample_count, 0u);
}

TEST(HttpMetrics, PathLabelIsTemplatedAndBytesMadeValid) {
  prometheus::Registry registry;
  HttpMetrics metrics(registry, {"path", "method", "path"}, 500);
  const auto out = v1::NetflowEvent::OUTGOING;
  for (const char* path : {"/users/42/orders", "/users/43/orders", "/users/9f1c2ab34de56f78/orders",
                           "/users/123e4567-e89b-12d3-a456-426614174000/orders"}) {
    metrics.Observe("node-1", Http(out, "GET", path, 200, 1000, {{0, 1}}));
  }
  metrics.Observe("node-1", Http(out, "GET", "/api/v2/items", 200, 1000, {{0, 2}}));
  metrics.Observe("node-1", Http(out, "G\xffT", "/a\xfe/7", 400, 1000, {{0, 1}}));
  EXPECT_EQ(metrics.series(), 3u);
  EXPECT_EQ(Value(registry, kRequests, {{"path", "/users/{id}/orders"}, {"method", "GET"}}), 4);
  EXPECT_EQ(Value(registry, kRequests, {{"path", "/api/v2/items"}, {"method", "GET"}}), 2);
  EXPECT_EQ(
      Value(registry, kRequests, {{"path", "/a\xEF\xBF\xBD/{id}"}, {"method", "G\xEF\xBF\xBDT"}}),
      1);
}

// A crawler on node-1 requesting 1,000 distinct paths: beyond the cap they share "other".
TEST(HttpMetrics, CapFoldsNewLabelSetsIntoOtherPerHost) {
  constexpr size_t kCap = 10;
  prometheus::Registry registry;
  std::vector<std::string> labels = kDefaultHttpLabels;
  labels.push_back("path");
  HttpMetrics metrics(registry, labels, kCap);
  const auto out = v1::NetflowEvent::OUTGOING;
  metrics.Observe("node-2", Http(out, "GET", "/", 200, 1000, {{0, 1}}));
  for (int i = 0; i < 1000; ++i) {
    metrics.Observe("node-1", Http(out, "GET", "/p" + std::to_string(i), 200, 2'000'000, {{5, 2}}));
  }
  metrics.Observe("node-1", Http(out, "GET", "/p0", 200, 1000, {{0, 1}}));  // has a series
  metrics.Observe("node-2", Http(out, "GET", "/x", 200, 1000, {{0, 1}}));

  EXPECT_EQ(metrics.series(), kCap + 1 + 2);
  EXPECT_EQ(Series(registry, kDuration).size(), kCap + 1 + 2);
  LabelMap p0 = kCurlGet;
  p0["path"] = "/p0";
  EXPECT_EQ(Value(registry, kRequests, p0), 3);
  LabelMap p10 = kCurlGet;
  p10["path"] = "/p10";
  EXPECT_EQ(Value(registry, kRequests, p10), -1);
  const LabelMap other = {{"host", "node-1"},        {"direction", "other"},
                          {"method", "other"},       {"status_code", "other"},
                          {"process_name", "other"}, {"server_port", "other"},
                          {"path", "other"}};
  EXPECT_EQ(Value(registry, kRequests, other), 2.0 * (1000 - kCap));
  const prometheus::ClientMetric::Histogram h = Find(registry, kDuration, other)->histogram;
  EXPECT_EQ(h.sample_count, 2 * (1000 - kCap));
  EXPECT_NEAR(h.sample_sum, 2 * (1000 - kCap) * 2e-3, 1e-9);
  EXPECT_EQ(Value(registry, "nodescope_http_series_folded_total", {{"host", "node-1"}}),
            1000 - kCap);
  EXPECT_EQ(Value(registry, "nodescope_http_series_folded_total", {{"host", "node-2"}}), -1);
}

TEST(DnsMetrics, CountsPerRcodeWithTimeoutsAsMinusOne) {
  prometheus::Registry registry;
  DnsMetrics metrics(registry, 500);
  metrics.Observe("node-1", Dns(0, 5));
  metrics.Observe("node-1", Dns(0, 2));
  metrics.Observe("node-1", Dns(3, 1));
  metrics.Observe("node-1", Dns(-1, 4));
  v1::DnsflowEvent server = Dns(0, 9, "unbound");
  server.set_direction(v1::NetflowEvent::INCOMING);
  metrics.Observe("node-1", server);
  EXPECT_EQ(metrics.series(), 4u);
  const auto labels = [](const char* direction, const char* rcode, const char* process) {
    return LabelMap{
        {"host", "node-1"}, {"direction", direction}, {"rcode", rcode}, {"process_name", process}};
  };
  EXPECT_EQ(Value(registry, kDnsRequests, labels("outgoing", "0", "curl")), 7);
  EXPECT_EQ(Value(registry, kDnsRequests, labels("outgoing", "3", "curl")), 1);
  EXPECT_EQ(Value(registry, kDnsRequests, labels("outgoing", "-1", "curl")), 4);
  EXPECT_EQ(Value(registry, kDnsRequests, labels("incoming", "0", "unbound")), 9);
}

TEST(DnsMetrics, CapFoldsIntoOtherPerHost) {
  prometheus::Registry registry;
  DnsMetrics metrics(registry, 2);
  for (const char* process : {"a", "b", "c", "d", "a"})
    metrics.Observe("node-1", Dns(0, 1, process));
  metrics.Observe("node-2", Dns(0, 1, "c"));
  EXPECT_EQ(metrics.series(), 4u);
  EXPECT_EQ(
      Value(registry, kDnsRequests,
            {{"host", "node-1"}, {"direction", "outgoing"}, {"rcode", "0"}, {"process_name", "a"}}),
      2);
  EXPECT_EQ(Value(registry, kDnsRequests,
                  {{"host", "node-1"},
                   {"direction", "other"},
                   {"rcode", "other"},
                   {"process_name", "other"}}),
            2);
  EXPECT_EQ(Value(registry, "nodescope_dns_series_folded_total", {{"host", "node-1"}}), 2);
}

TEST(HttpOptions, DefaultsAndBadValues) {
  Options options;
  config::Schema schema("nodescope-aggregator");
  RegisterOptions(&schema, &options);
  ASSERT_TRUE(schema.LoadText("", "empty.yaml").ok());
  EXPECT_EQ(options.http_labels,
            (std::vector<std::string>{"host", "direction", "method", "status_code", "process_name",
                                      "server_port"}));
  ASSERT_TRUE(schema.LoadText("http_labels: [host, path]\n", "a.yaml").ok());
  EXPECT_EQ(options.http_labels, (std::vector<std::string>{"host", "path"}));
  EXPECT_TRUE(ValidateOptions(options).ok());

  EXPECT_EQ(schema.LoadText("http_labels: [host, url]\n", "b.yaml").message(),
            "config b.yaml: key 'http_labels': \"url\" is not one of: host, direction, method, "
            "status_code, process_name, server_port, path");
  ASSERT_TRUE(schema.LoadText("http_labels: [path, method, path]\n", "c.yaml").ok());
  EXPECT_EQ(ValidateOptions(options).message(),
            "config: key 'http_labels': \"path\" is listed twice");
}

// The ingest path: httpflow and dnsflow events of a committed batch become records and reach
// the families; a malformed one is dropped as unknown and counted nowhere else.
TEST(HttpMetrics, IngestorCountsConvertedHttpAndDnsEvents) {
  Metrics metrics;
  NetflowMetrics netflow(metrics.registry(), kDefaultNetflowLabels, 500);
  HttpMetrics http(metrics.registry(), kDefaultHttpLabels, 500);
  DnsMetrics dns(metrics.registry(), 500);
  auto seqs = ingest::SeqStore::Open("");
  ASSERT_TRUE(seqs.ok()) << seqs.status().message();
  api::Hub hub({}, &metrics);
  sinks::SinkSet sinks({}, &metrics);
  ingest::SensorRegistry sensors;
  ingest::Ingestor ingestor(seqs->get(), &hub, &sinks, &sensors, &metrics, &netflow, &http, &dns);

  v1::Batch batch;
  batch.set_node("node-1");
  batch.set_seq(1);
  *batch.add_events()->mutable_httpflow() =
      Http(v1::NetflowEvent::OUTGOING, "GET", "/", 200, 412'000, {{2, 3}});
  v1::HttpflowEvent malformed = Http(v1::NetflowEvent::OUTGOING, "GET", "/", 200, 1, {{0, 1}});
  malformed.set_src_ip("\x7f");
  *batch.add_events()->mutable_httpflow() = malformed;
  *batch.add_events()->mutable_dnsflow() = Dns(-1, 2);
  ingest::Ingestor::Outcome outcome = ingestor.Commit(batch, "instance-a", 1);
  EXPECT_EQ(outcome.records, 2u);
  EXPECT_TRUE(ingestor.Commit(batch, "instance-a", 2).duplicate);

  EXPECT_EQ(metrics.DroppedByReason()[kDropUnknownEvent], 1u);
  const std::string text = http::SerializeMetrics(metrics.registry());
  EXPECT_NE(text.find("nodescope_http_requests_total{direction=\"outgoing\",host=\"node-1\","
                      "method=\"GET\",process_name=\"curl\",server_port=\"80\","
                      "status_code=\"200\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("nodescope_dns_requests_total{direction=\"outgoing\",host=\"node-1\","
                      "process_name=\"curl\",rcode=\"-1\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("nodescope_records_ingested_total{source=\"httpflow\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("nodescope_records_ingested_total{source=\"dnsflow\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace nodescope::aggregator
