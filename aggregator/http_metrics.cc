#include "aggregator/http_metrics.h"

#include "aggregator/ingest/convert.h"
#include "aggregator/metrics.h"
#include "common/records/latency.h"
#include "common/records/record.h"
#include "sensor/protocols/http1/parser.h"

namespace nodescope::aggregator {

namespace {

// Bytes from the kernel or the peer as a label value (Prometheus wants UTF-8), reusing `out`.
void AssignUtf8(const std::string& bytes, std::string* out) {
  std::string scratch;
  *out = records::ValidUtf8(bytes, &scratch);
}

// Per thread, as in NetflowMetrics: each ingest thread reuses its own buffers.
thread_local std::vector<std::string> tls_values;
thread_local std::vector<double> tls_buckets;

}  // namespace

const std::vector<double>& HttpDurationBuckets() {
  static const std::vector<double> kBuckets(records::kLatencyBounds.begin(),
                                            records::kLatencyBounds.end());
  return kBuckets;
}

HttpMetrics::HttpMetrics(prometheus::Registry& registry, const std::vector<std::string>& labels,
                         int64_t maximum_dimensions)
    : requests_(CounterFamily(registry, "nodescope_http_requests_total",
                              "HTTP/1.x requests (httpflow count).")),
      duration_(prometheus::BuildHistogram()
                    .Name("nodescope_http_request_duration_seconds")
                    .Help("Time from a request's first byte to its response's first byte "
                          "(httpflow latency), as counted per bucket by the sensor.")
                    .Register(registry)),
      folded_(CounterFamily(registry, "nodescope_http_series_folded_total",
                            "Httpflow records counted in the host's \"other\" series because the "
                            "host reached maximum_dimensions label sets.")),
      series_(folded_, kHttpLabelNames, labels, maximum_dimensions,
              [this](const prometheus::Labels& l) {
                return Series{&requests_.Add(l), &duration_.Add(l, HttpDurationBuckets())};
              }) {}

const std::vector<std::string>& HttpMetrics::LabelValues(const std::string& host,
                                                         const v1::HttpflowEvent& event) {
  const std::vector<size_t>& labels = series_.labels();
  tls_values.resize(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    std::string& v = tls_values[i];
    switch (static_cast<Label>(labels[i])) {
      case Label::kHost:
        v = host;
        break;
      case Label::kDirection:
        v = ingest::DirectionName(event.direction());
        break;
      case Label::kMethod:
        AssignUtf8(event.method(), &v);
        break;
      case Label::kStatusCode:
        v = std::to_string(event.status_code());
        break;
      case Label::kProcessName:
        AssignUtf8(event.process_name(), &v);
        break;
      case Label::kServerPort:
        v = ingest::PortText(ingest::ServerPort(event));
        break;
      case Label::kPath:
        // Replacing whole segments with "{id}" keeps the text valid UTF-8.
        AssignUtf8(event.path(), &v);
        v = sensor::http1::TemplatePath(v);
        break;
    }
  }
  return tls_values;
}

void HttpMetrics::Observe(const std::string& host, const v1::HttpflowEvent& event) {
  const Series& series = series_.Get(host, LabelValues(host, event));
  if (event.count() != 0) series.requests->Increment(static_cast<double>(event.count()));
  if (static_cast<size_t>(event.latency_buckets_size()) != records::kLatencyBuckets) return;
  tls_buckets.assign(event.latency_buckets().begin(), event.latency_buckets().end());
  // In double: latency_ns * count can pass 2^64 for a long interval of slow requests.
  const double sum =
      static_cast<double>(event.latency_ns()) * static_cast<double>(event.count()) / 1e9;
  series.duration->ObserveMultiple(tls_buckets, sum);
}

DnsMetrics::DnsMetrics(prometheus::Registry& registry, int64_t maximum_dimensions)
    : requests_(CounterFamily(registry, "nodescope_dns_requests_total",
                              "DNS queries (dnsflow count); rcode -1: no answer within the "
                              "sensor's dns_timeout.")),
      folded_(CounterFamily(registry, "nodescope_dns_series_folded_total",
                            "Dnsflow records counted in the host's \"other\" series because the "
                            "host reached maximum_dimensions label sets.")),
      series_(folded_, kDnsLabelNames, kDnsLabelNames, maximum_dimensions,
              [this](const prometheus::Labels& l) { return &requests_.Add(l); }) {}

void DnsMetrics::Observe(const std::string& host, const v1::DnsflowEvent& event) {
  // In kDnsLabelNames order.
  tls_values.resize(kDnsLabelNames.size());
  tls_values[0] = host;
  tls_values[1] = ingest::DirectionName(event.direction());
  tls_values[2] = std::to_string(event.rcode());
  AssignUtf8(event.process_name(), &tls_values[3]);
  prometheus::Counter* requests = series_.Get(host, tls_values);
  if (event.count() != 0) requests->Increment(static_cast<double>(event.count()));
}

}  // namespace nodescope::aggregator
