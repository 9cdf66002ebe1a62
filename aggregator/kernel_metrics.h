// Prometheus families of the ebpf-kernel plugin's KernelMetricsEvent, one per entry of
// common/records/kernel_metrics.h: counters add the sensor's deltas, gauges take the last value,
// histograms add log2 nanosecond slots into fixed buckets. Labels: host; app on per-application
// series, cgroup on per-cgroup ones; then the family's own (device, irq, vector, ...). Each metric
// holds at most `maximum_dimensions` label sets per host (bounded_series.h); the rest share the
// host's series whose app and cgroup are "other".
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aggregator/bounded_series.h"
#include "aggregator/enrich/metadata_source.h"
#include "aggregator/metrics.h"
#include "common/records/kernel_metrics.h"
#include "nodescope/v1/events.pb.h"

namespace nodescope::aggregator {

// Log2 slots with a bucket bound of their own: slot i's values are below 2^(i+1) ns, so slots 8
// to 33 give the bounds 512 ns to 2^34 ns (17.2 s): an IRQ handler's hundreds of ns up to a
// stalled disk. Slots below 8 count in the first bucket, slots above 33 only in +Inf.
inline constexpr int kKernelFirstBoundedSlot = 8;
inline constexpr int kKernelLastBoundedSlot = 33;
// Label limits: a key as the sensor's families write them, a value Prometheus stores cheaply
// (a cgroup v2 path of a Kubernetes container is about 150 bytes).
inline constexpr size_t kKernelMaxLabelKeyBytes = 32;
inline constexpr size_t kKernelMaxLabelValueBytes = 256;

// The upper bounds of every kernel histogram, in seconds: 2^(i+1) ns for the bounded slots.
const std::vector<double>& KernelHistogramBuckets();

// The Prometheus name of a catalog entry: nodescope_<name>_total for a counter,
// nodescope_<name>_seconds for a histogram, nodescope_<name> for a gauge.
std::string KernelMetricName(const records::KernelMetricInfo& info);

class KernelMetrics {
 public:
  // Registers every catalog metric in `metrics`' registry; rejected entries are counted in
  // `metrics` (Dropped, source "kernel"). `maximum_dimensions` below 1 counts as 1.
  // `metadata` (may be null) adds pod and namespace to per-cgroup series of known containers.
  KernelMetrics(Metrics& metrics, int64_t maximum_dimensions,
                const enrich::MetadataSource* metadata = nullptr);
  KernelMetrics(const KernelMetrics&) = delete;
  KernelMetrics& operator=(const KernelMetrics&) = delete;

  // Applies one event of node `host`. An entry is dropped (and counted by reason) when its name is
  // not in the catalog (kDropUnknownMetric) or is of another kind (kDropWrongKind), a label key
  // is not [a-z_]{1,32} or is reserved (host, app, cgroup, le, "__..."), a label value is empty or
  // over 256 bytes (kDropBadLabel), or a histogram has more than NS_HIST_SLOTS slots (40,
  // bpf/abi/hist.h; kDropTooManySlots); the event's other entries are applied. Thread-safe.
  void Observe(const std::string& host, const v1::KernelMetricsEvent& event);

  // Series (label sets) in use over all kernel metrics, the folded "other" ones included.
  size_t series() const;

 private:
  // One label set's metric: the one pointer of the catalog entry's kind is set.
  struct Series {
    prometheus::Counter* counter = nullptr;
    prometheus::Gauge* gauge = nullptr;
    prometheus::Histogram* histogram = nullptr;
  };
  struct Metric {
    const records::KernelMetricInfo* info;
    std::unique_ptr<BoundedSeries<Series>> series;
  };
  // Rejected entries of one event, by reason.
  struct Drops {
    uint64_t unknown_metric = 0;
    uint64_t wrong_kind = 0;
    uint64_t bad_label = 0;
    uint64_t too_many_slots = 0;
  };

  // The catalog metric of an entry, or null when the name is unknown or of another kind
  // (counted in `drops`).
  const Metric* Lookup(const std::string& name, records::KernelMetricKind kind, Drops* drops) const;
  // The series of an entry's labels on `host`, or null when a label is bad (counted in `drops`).
  const Series* SeriesOf(const Metric& metric, const std::string& host,
                         const v1::KernelLabels& labels, Drops* drops) const;

  Metrics& metrics_;
  const enrich::MetadataSource* const metadata_;
  prometheus::Family<prometheus::Counter>& folded_;
  std::vector<Metric> catalog_;                         // in kKernelMetrics order
  std::unordered_map<std::string_view, size_t> index_;  // name -> catalog_
};

}  // namespace nodescope::aggregator
