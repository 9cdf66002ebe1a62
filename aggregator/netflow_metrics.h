// Prometheus families of netflow records (nodescope_netflow_*), with a bounded label set: the
// labels are an allow-list from the configuration, and each host holds at most
// `maximum_dimensions` label sets (Netdata's "maximum dimensions"); the label sets beyond it share
// one series per host whose other labels are all "other", so a port scan cannot grow /metrics.
// Full detail stays in the records.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nodescope/v1/events.pb.h"

namespace nodescope::aggregator {

// The names `netflow_labels` accepts. server_port is the listening side's port: dst_port of an
// outgoing record, src_port of an incoming one ("*" when the sensor folded it).
inline const std::vector<std::string> kNetflowLabelNames = {
    "host", "direction", "transport", "family", "process_name", "server_port", "dst_service_name"};
inline const std::vector<std::string> kDefaultNetflowLabels = {
    "host", "direction", "transport", "family", "process_name", "server_port"};
inline constexpr int64_t kDefaultMaximumDimensions = 500;
// The value of every label but host in the series that takes the label sets beyond the cap.
inline constexpr char kFoldedLabelValue[] = "other";

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
  size_t series() const;

 private:
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
  // What the cap counts: the label sets of one host (of all hosts when host is not a label).
  struct Group {
    size_t label_sets = 0;
    Series* other = nullptr;  // in folded_series_ once a label set was folded
  };

  Series MakeSeries(const prometheus::Labels& labels);
  // The label values of `event` in labels_ order, into this thread's reused buffer.
  void LabelValues(const std::string& host, const v1::NetflowEvent& event);

  std::vector<Label> labels_;
  bool host_label_ = false;
  size_t maximum_dimensions_;

  prometheus::Family<prometheus::Counter>& bytes_read_;
  prometheus::Family<prometheus::Counter>& bytes_written_;
  prometheus::Family<prometheus::Counter>& retransmits_;
  prometheus::Family<prometheus::Counter>& tcp_established_;
  prometheus::Family<prometheus::Counter>& tcp_closed_;
  prometheus::Family<prometheus::Histogram>& rtt_;
  prometheus::Family<prometheus::Counter>& folded_;

  mutable std::mutex mu_;
  // Keyed by the label values joined with 0xff, a byte valid UTF-8 never holds.
  std::unordered_map<std::string, Series> series_;
  std::unordered_map<std::string, Group> groups_;          // by host ("" when host is not a label)
  std::unordered_map<std::string, Series> folded_series_;  // by group
  std::unordered_map<std::string, prometheus::Counter*> folded_by_host_;
};

}  // namespace nodescope::aggregator
