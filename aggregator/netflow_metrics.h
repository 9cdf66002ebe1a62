// Prometheus families of netflow records (nodescope_netflow_*), with the bounded label sets of
// bounded_series.h: labels from `netflow_labels`, at most `maximum_dimensions` label sets per host.
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

// The names `netflow_labels` accepts. server_port is the listening side's port: dst_port of an
// outgoing record, src_port of an incoming one ("*" when the sensor folded it).
inline const std::vector<std::string> kNetflowLabelNames = {
    "host", "direction", "transport", "family", "process_name", "server_port", "dst_service_name"};
inline const std::vector<std::string> kDefaultNetflowLabels = {
    "host", "direction", "transport", "family", "process_name", "server_port"};

// Upper bounds of nodescope_netflow_rtt_seconds: 50 µs to 5 s in 1-2.5-5 steps, from loopback
// (tens of µs) to a congested intercontinental path.
const std::vector<double>& NetflowRttBuckets();

class NetflowMetrics {
 public:
  // `labels`: names of kNetflowLabelNames (ValidateOptions rejects others and repeats; here an
  // unknown name is ignored and a repeat counts once). `maximum_dimensions` below 1 counts as 1.
  NetflowMetrics(prometheus::Registry& registry, const std::vector<std::string>& labels,
                 int64_t maximum_dimensions);
  NetflowMetrics(const NetflowMetrics&) = delete;
  NetflowMetrics& operator=(const NetflowMetrics&) = delete;

  // Counts one converted netflow event of node `host`. Thread-safe; a lookup in a hash map under
  // a mutex for a label set seen before.
  void Observe(const std::string& host, const v1::NetflowEvent& event);

  // Series (label sets) in use, the folded "other" ones included.
  size_t series() const { return series_.size(); }

 private:
  // In kNetflowLabelNames order.
  enum class Label {
    kHost,
    kDirection,
    kTransport,
    kFamily,
    kProcessName,
    kServerPort,
    kDstServiceName
  };
  // One label set's metrics; the pointers belong to the families and live as long as they do.
  struct Series {
    prometheus::Counter* bytes_read;
    prometheus::Counter* bytes_written;
    prometheus::Counter* retransmits;
    prometheus::Counter* tcp_established;
    prometheus::Counter* tcp_closed;
    prometheus::Histogram* rtt;
  };

  Series MakeSeries(const prometheus::Labels& labels);
  // The label values of `event` in series_.labels() order, into this thread's reused buffer.
  const std::vector<std::string>& LabelValues(const std::string& host,
                                              const v1::NetflowEvent& event);

  prometheus::Family<prometheus::Counter>& bytes_read_;
  prometheus::Family<prometheus::Counter>& bytes_written_;
  prometheus::Family<prometheus::Counter>& retransmits_;
  prometheus::Family<prometheus::Counter>& tcp_established_;
  prometheus::Family<prometheus::Counter>& tcp_closed_;
  prometheus::Family<prometheus::Histogram>& rtt_;
  prometheus::Family<prometheus::Counter>& folded_;
  BoundedSeries<Series> series_;  // after the families: it makes series in them
};

}  // namespace nodescope::aggregator
