// Prometheus families of httpflow and dnsflow records (nodescope_http_*, nodescope_dns_*), with
// the bounded label sets of bounded_series.h: at most `maximum_dimensions` label sets per host,
// the rest in the host's "other" series.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aggregator/bounded_series.h"
#include "nodescope/v1/events.pb.h"

namespace nodescope::aggregator {

// The names `http_labels` accepts. server_port as in netflow_labels; path is templated (numeric
// segments, UUIDs and hex strings of 16+ digits become "{id}"), and is not a default because a
// service with free-form paths would spend the host's whole series budget on it.
inline const std::vector<std::string> kHttpLabelNames = {
    "host", "direction", "method", "status_code", "process_name", "server_port", "path"};
inline const std::vector<std::string> kDefaultHttpLabels = {
    "host", "direction", "method", "status_code", "process_name", "server_port"};
// The labels of nodescope_dns_requests_total (not configurable).
inline const std::vector<std::string> kDnsLabelNames = {"host", "direction", "rcode",
                                                        "process_name"};

// The upper bounds of nodescope_http_request_duration_seconds: common/records/latency.h
// kLatencyBounds, the buckets the sensor counts httpflow latencies in.
const std::vector<double>& HttpDurationBuckets();

class HttpMetrics {
 public:
  // `labels`: names of kHttpLabelNames (ValidateOptions rejects others and repeats; here an
  // unknown name is ignored and a repeat counts once). `maximum_dimensions` below 1 counts as 1.
  HttpMetrics(prometheus::Registry& registry, const std::vector<std::string>& labels,
              int64_t maximum_dimensions);
  HttpMetrics(const HttpMetrics&) = delete;
  HttpMetrics& operator=(const HttpMetrics&) = delete;

  // Counts one converted httpflow event of node `host`: `count` requests, and its latency
  // buckets in the histogram with sum latency_ns * count. An event whose latency_buckets is not
  // kLatencyBuckets long (a sensor with other bounds) counts its requests but not its latencies:
  // its buckets would mean other bounds. Thread-safe.
  void Observe(const std::string& host, const v1::HttpflowEvent& event);

  // Series (label sets) in use, the folded "other" ones included.
  size_t series() const { return series_.size(); }

 private:
  // In kHttpLabelNames order.
  enum class Label { kHost, kDirection, kMethod, kStatusCode, kProcessName, kServerPort, kPath };
  struct Series {
    prometheus::Counter* requests;
    prometheus::Histogram* duration;
  };

  const std::vector<std::string>& LabelValues(const std::string& host,
                                              const v1::HttpflowEvent& event);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& folded_;
  BoundedSeries<Series> series_;  // after the families: it makes series in them
};

class DnsMetrics {
 public:
  DnsMetrics(prometheus::Registry& registry, int64_t maximum_dimensions);
  DnsMetrics(const DnsMetrics&) = delete;
  DnsMetrics& operator=(const DnsMetrics&) = delete;

  // Counts one converted dnsflow event of node `host` (`count` queries; rcode "-1" for the ones
  // that got no answer). Thread-safe.
  void Observe(const std::string& host, const v1::DnsflowEvent& event);

  size_t series() const { return series_.size(); }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& folded_;
  BoundedSeries<prometheus::Counter*> series_;
};

}  // namespace nodescope::aggregator
