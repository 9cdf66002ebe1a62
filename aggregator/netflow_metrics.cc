#include "aggregator/netflow_metrics.h"

#include <algorithm>

#include "aggregator/ingest/convert.h"
#include "common/records/record.h"

namespace nodescope::aggregator {

namespace {

constexpr char kKeySeparator = '\xff';

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

void Add(prometheus::Counter* counter, uint64_t value) {
  if (value != 0) counter->Increment(static_cast<double>(value));
}

// Label values and the series key of the event being observed, per thread: each ingest thread
// (one per sensor stream) reuses its own buffers instead of allocating per event.
thread_local std::vector<std::string> tls_values;
thread_local std::string tls_key;

}  // namespace

const std::vector<double>& NetflowRttBuckets() {
  static const std::vector<double> kBuckets = {50e-6,  100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
                                               5e-3,   10e-3,  25e-3,  50e-3,  100e-3, 250e-3,
                                               500e-3, 1.0,    2.5,    5.0};
  return kBuckets;
}

NetflowMetrics::NetflowMetrics(prometheus::Registry& registry,
                               const std::vector<std::string>& labels, int64_t maximum_dimensions)
    : maximum_dimensions_(static_cast<size_t>(std::max<int64_t>(maximum_dimensions, 1))),
      bytes_read_(CounterFamily(registry, "nodescope_netflow_bytes_read_total",
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
                            "host reached maximum_dimensions label sets.")) {
  for (const std::string& name : labels) {
    auto it = std::find(kNetflowLabelNames.begin(), kNetflowLabelNames.end(), name);
    if (it == kNetflowLabelNames.end()) continue;
    const auto label = static_cast<Label>(it - kNetflowLabelNames.begin());
    if (std::find(labels_.begin(), labels_.end(), label) != labels_.end()) continue;
    labels_.push_back(label);
    if (label == Label::kHost) host_label_ = true;
  }
}

void NetflowMetrics::LabelValues(const std::string& host, const v1::NetflowEvent& event) {
  tls_values.resize(labels_.size());
  for (size_t i = 0; i < labels_.size(); ++i) {
    std::string& v = tls_values[i];
    switch (labels_[i]) {
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
        v = ingest::PortText(event.direction() == v1::NetflowEvent::INCOMING ? event.src_port()
                                                                             : event.dst_port());
        break;
      case Label::kDstServiceName:
        v = event.dst_service_name();
        break;
    }
  }
}

NetflowMetrics::Series NetflowMetrics::MakeSeries(const prometheus::Labels& labels) {
  return Series{&bytes_read_.Add(labels),  &bytes_written_.Add(labels),
                &retransmits_.Add(labels), &tcp_established_.Add(labels),
                &tcp_closed_.Add(labels),  &rtt_.Add(labels, NetflowRttBuckets())};
}

void NetflowMetrics::Observe(const std::string& host, const v1::NetflowEvent& event) {
  LabelValues(host, event);
  tls_key.clear();
  for (const std::string& v : tls_values) {
    tls_key += v;
    tls_key += kKeySeparator;
  }

  Series* series = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = series_.find(tls_key);
    if (it != series_.end()) {
      series = &it->second;
    } else {
      Group& group = groups_[host_label_ ? host : std::string()];
      prometheus::Labels labels;
      if (group.label_sets < maximum_dimensions_) {
        for (size_t i = 0; i < labels_.size(); ++i) {
          labels.emplace(kNetflowLabelNames[static_cast<size_t>(labels_[i])], tls_values[i]);
        }
        series = &series_.emplace(tls_key, MakeSeries(labels)).first->second;
        ++group.label_sets;
      } else {
        if (group.other == nullptr) {
          for (Label label : labels_) {
            labels.emplace(kNetflowLabelNames[static_cast<size_t>(label)],
                           label == Label::kHost ? host : std::string(kFoldedLabelValue));
          }
          group.other =
              &folded_series_.emplace(host_label_ ? host : std::string(), MakeSeries(labels))
                   .first->second;
        }
        series = group.other;
        prometheus::Counter*& folded = folded_by_host_[host];
        if (folded == nullptr) folded = &folded_.Add({{"host", host}});
        folded->Increment();
      }
    }
  }

  Add(series->bytes_read, event.bytes_read());
  Add(series->bytes_written, event.bytes_written());
  Add(series->retransmits, event.retransmits());
  Add(series->tcp_established, event.tcp_established());
  Add(series->tcp_closed, event.tcp_closed());
  if (event.rtt_us() > 0) series->rtt->Observe(static_cast<double>(event.rtt_us()) / 1e6);
}

size_t NetflowMetrics::series() const {
  std::lock_guard lock(mu_);
  return series_.size() + folded_series_.size();
}

}  // namespace nodescope::aggregator
