#include "aggregator/netflow_metrics.h"

#include "aggregator/ingest/convert.h"
#include "aggregator/metrics.h"
#include "common/records/record.h"

namespace nodescope::aggregator {

namespace {

void Add(prometheus::Counter* counter, uint64_t value) {
  if (value != 0) counter->Increment(static_cast<double>(value));
}

// The label values of the event being observed, per thread: each ingest thread (one per sensor
// stream) reuses its own buffer instead of allocating per event.
thread_local std::vector<std::string> tls_values;

}  // namespace

const std::vector<double>& NetflowRttBuckets() {
  static const std::vector<double> kBuckets = {50e-6,  100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
                                               5e-3,   10e-3,  25e-3,  50e-3,  100e-3, 250e-3,
                                               500e-3, 1.0,    2.5,    5.0};
  return kBuckets;
}

NetflowMetrics::NetflowMetrics(prometheus::Registry& registry,
                               const std::vector<std::string>& labels, int64_t maximum_dimensions)
    : bytes_read_(CounterFamily(registry, "nodescope_netflow_bytes_read_total",
                                "Bytes read by local sockets (netflow bytes_read).")),
      bytes_written_(CounterFamily(registry, "nodescope_netflow_bytes_written_total",
                                   "Bytes written by local sockets (netflow bytes_written).")),
      retransmits_(CounterFamily(registry, "nodescope_netflow_retransmits_total",
                                 "TCP segments retransmitted (netflow retransmits).")),
      tcp_established_(CounterFamily(registry, "nodescope_netflow_tcp_established_total",
                                     "TCP connections established (netflow tcp_established).")),
      tcp_closed_(CounterFamily(registry, "nodescope_netflow_tcp_closed_total",
                                "TCP connections closed (netflow tcp_closed).")),
      rtt_(prometheus::BuildHistogram()
               .Name("nodescope_netflow_rtt_seconds")
               .Help("Smoothed TCP round-trip time, one observation per netflow record with "
                     "rtt > 0.")
               .Register(registry)),
      folded_(CounterFamily(registry, "nodescope_netflow_series_folded_total",
                            "Netflow records counted in the host's \"other\" series because the "
                            "host reached maximum_dimensions label sets.")),
      series_(folded_, kNetflowLabelNames, labels, maximum_dimensions,
              [this](const prometheus::Labels& l) { return MakeSeries(l); }) {}

const std::vector<std::string>& NetflowMetrics::LabelValues(const std::string& host,
                                                            const v1::NetflowEvent& event) {
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
      case Label::kTransport:
        v = ingest::TransportName(event.transport());
        break;
      case Label::kFamily:
        v = ingest::NetflowFamily(event);
        break;
      case Label::kProcessName: {
        std::string scratch;
        v = records::ValidUtf8(event.process_name(), &scratch);
        break;
      }
      case Label::kServerPort:
        v = ingest::PortText(ingest::ServerPort(event));
        break;
      case Label::kDstServiceName:
        v = event.dst_service_name();
        break;
    }
  }
  return tls_values;
}

NetflowMetrics::Series NetflowMetrics::MakeSeries(const prometheus::Labels& labels) {
  return Series{&bytes_read_.Add(labels),  &bytes_written_.Add(labels),
                &retransmits_.Add(labels), &tcp_established_.Add(labels),
                &tcp_closed_.Add(labels),  &rtt_.Add(labels, NetflowRttBuckets())};
}

void NetflowMetrics::Observe(const std::string& host, const v1::NetflowEvent& event) {
  const Series& series = series_.Get(host, LabelValues(host, event));
  Add(series.bytes_read, event.bytes_read());
  Add(series.bytes_written, event.bytes_written());
  Add(series.retransmits, event.retransmits());
  Add(series.tcp_established, event.tcp_established());
  Add(series.tcp_closed, event.tcp_closed());
  if (event.rtt_us() > 0) series.rtt->Observe(static_cast<double>(event.rtt_us()) / 1e6);
}

}  // namespace nodescope::aggregator
