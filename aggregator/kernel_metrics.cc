#include "aggregator/kernel_metrics.h"

#include <cmath>

#include "bpf/abi/hist.h"
#include "common/records/record.h"

namespace nodescope::aggregator {

namespace {

using records::KernelMetricKind;

constexpr char kSource[] = "kernel";
constexpr char kHostLabel[] = "host";
constexpr char kAppLabel[] = "app";
constexpr char kCgroupLabel[] = "cgroup";
constexpr char kPodLabel[] = "pod";
constexpr char kNamespaceLabel[] = "namespace";

// The labels of the series that takes a host's label sets beyond maximum_dimensions: host, and
// app and cgroup "other" (no cgroup path is "other": they start with '/').
const std::vector<std::string> kFoldedLabels = {kHostLabel, kAppLabel, kCgroupLabel};

// Per thread, as in NetflowMetrics: each ingest thread reuses its own buffers.
thread_local prometheus::Labels tls_labels;
thread_local std::vector<double> tls_buckets;

// [a-z_]{1,32}, minus what Prometheus reserves ("__" names; le, the bucket label of every
// histogram) and the labels this class sets itself.
bool IsExtraLabelKey(const std::string& key) {
  if (key.empty() || key.size() > kKernelMaxLabelKeyBytes) return false;
  for (char c : key) {
    if ((c < 'a' || c > 'z') && c != '_') return false;
  }
  return key.rfind("__", 0) != 0 && key != "le" && key != kHostLabel && key != kAppLabel &&
         key != kCgroupLabel && key != kPodLabel && key != kNamespaceLabel;
}

// `bytes` as a label value: valid UTF-8 (U+FFFD for each bad byte, as records have it). False when
// empty (Prometheus reads an empty value as no label: the series would clash with the one
// without it) or over kKernelMaxLabelValueBytes.
bool AddLabel(const std::string& name, std::string_view bytes, prometheus::Labels* out) {
  std::string scratch;
  const std::string_view value = records::ValidUtf8(bytes, &scratch);
  if (value.empty() || value.size() > kKernelMaxLabelValueBytes) return false;
  out->emplace(name, value);
  return true;
}

// The labels of an entry of node `host`, into `out`; false when one is bad. A per-cgroup series
// of a container that enrichment knows gets its pod and namespace too.
bool LabelsOf(const std::string& host, const v1::KernelLabels& labels,
              const enrich::MetadataSource* metadata, prometheus::Labels* out) {
  out->clear();
  out->emplace(kHostLabel, host);
  if (!labels.app().empty() && !AddLabel(kAppLabel, labels.app(), out)) return false;
  if (labels.cgroup_id() != 0 && !AddLabel(kCgroupLabel, labels.cgroup(), out)) return false;
  if (labels.cgroup_id() != 0 && metadata != nullptr && labels.has_container()) {
    enrich::K8sNames names =
        metadata->ByContainer(labels.container().id(), labels.container().pod_uid());
    if (!names.pod.empty()) {
      out->emplace(kPodLabel, names.pod);
      out->emplace(kNamespaceLabel, names.ns);
    }
  }
  for (const auto& [key, value] : labels.extra()) {
    if (!IsExtraLabelKey(key) || !AddLabel(key, value, out)) return false;
  }
  return true;
}

// The bucket of log2 slot `slot` in a histogram of KernelHistogramBuckets(); the last one is +Inf.
size_t BucketOf(int slot) {
  if (slot < kKernelFirstBoundedSlot) return 0;
  if (slot > kKernelLastBoundedSlot) return kKernelLastBoundedSlot - kKernelFirstBoundedSlot + 1;
  return static_cast<size_t>(slot - kKernelFirstBoundedSlot);
}

void Report(Metrics& metrics, const char* reason, uint64_t entries) {
  if (entries > 0) metrics.Dropped(kSource, reason, entries);
}

}  // namespace

const std::vector<double>& KernelHistogramBuckets() {
  static const std::vector<double> kBuckets = [] {
    std::vector<double> bounds;
    for (int slot = kKernelFirstBoundedSlot; slot <= kKernelLastBoundedSlot; ++slot) {
      bounds.push_back(std::ldexp(1.0, slot + 1) / 1e9);
    }
    return bounds;
  }();
  return kBuckets;
}

std::string KernelMetricName(const records::KernelMetricInfo& info) {
  std::string name = "nodescope_";
  name += info.name;
  switch (info.kind) {
    case KernelMetricKind::kCounter:
      name += "_total";
      break;
    case KernelMetricKind::kHistogram:
      name += "_seconds";
      break;
    case KernelMetricKind::kGauge:
      break;
  }
  return name;
}

KernelMetrics::KernelMetrics(Metrics& metrics, int64_t maximum_dimensions,
                             const enrich::MetadataSource* metadata)
    : metrics_(metrics),
      metadata_(metadata),
      folded_(CounterFamily(metrics.registry(), "nodescope_kernel_series_folded_total",
                            "Kernel metric entries counted in the host's \"other\" series because "
                            "the metric reached maximum_dimensions label sets on the host.")) {
  prometheus::Registry& registry = metrics.registry();
  catalog_.reserve(records::kKernelMetrics.size());
  for (const records::KernelMetricInfo& info : records::kKernelMetrics) {
    const std::string name = KernelMetricName(info);
    const std::string help(info.help);
    BoundedSeries<Series>::Make make;
    switch (info.kind) {
      case KernelMetricKind::kCounter: {
        auto& family = CounterFamily(registry, name, help);
        make = [&family](const prometheus::Labels& l) { return Series{.counter = &family.Add(l)}; };
        break;
      }
      case KernelMetricKind::kGauge: {
        auto& family = GaugeFamily(registry, name, help);
        make = [&family](const prometheus::Labels& l) { return Series{.gauge = &family.Add(l)}; };
        break;
      }
      case KernelMetricKind::kHistogram: {
        auto& family = prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
        make = [&family](const prometheus::Labels& l) {
          return Series{.histogram = &family.Add(l, KernelHistogramBuckets())};
        };
        break;
      }
    }
    catalog_.push_back(
        {&info, std::make_unique<BoundedSeries<Series>>(folded_, kFoldedLabels, kFoldedLabels,
                                                        maximum_dimensions, std::move(make))});
    index_.emplace(info.name, catalog_.size() - 1);
  }
}

const KernelMetrics::Metric* KernelMetrics::Lookup(const std::string& name, KernelMetricKind kind,
                                                   Drops* drops) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    ++drops->unknown_metric;
    return nullptr;
  }
  const Metric& metric = catalog_[it->second];
  if (metric.info->kind != kind) {
    ++drops->wrong_kind;
    return nullptr;
  }
  return &metric;
}

const KernelMetrics::Series* KernelMetrics::SeriesOf(const Metric& metric,
                                                     const std::string& host,
                                                     const v1::KernelLabels& labels,
                                                     Drops* drops) const {
  if (!LabelsOf(host, labels, metadata_, &tls_labels)) {
    ++drops->bad_label;
    return nullptr;
  }
  return &metric.series->Get(host, tls_labels);
}

void KernelMetrics::Observe(const std::string& host, const v1::KernelMetricsEvent& event) {
  Drops drops;
  for (const v1::KernelCounter& c : event.counters()) {
    const Metric* metric = Lookup(c.name(), KernelMetricKind::kCounter, &drops);
    const Series* series = metric ? SeriesOf(*metric, host, c.labels(), &drops) : nullptr;
    if (series != nullptr && c.delta() != 0) {
      series->counter->Increment(static_cast<double>(c.delta()));
    }
  }
  for (const v1::KernelGauge& g : event.gauges()) {
    const Metric* metric = Lookup(g.name(), KernelMetricKind::kGauge, &drops);
    const Series* series = metric ? SeriesOf(*metric, host, g.labels(), &drops) : nullptr;
    if (series != nullptr) series->gauge->Set(g.value());
  }
  for (const v1::KernelHistogram& h : event.histograms()) {
    const Metric* metric = Lookup(h.name(), KernelMetricKind::kHistogram, &drops);
    if (metric == nullptr) continue;
    // More slots than the kernel keeps: not a histogram of this layout.
    if (h.slot_deltas_size() > NS_HIST_SLOTS) {
      ++drops.too_many_slots;
      continue;
    }
    const Series* series = SeriesOf(*metric, host, h.labels(), &drops);
    if (series == nullptr) continue;
    tls_buckets.assign(KernelHistogramBuckets().size() + 1, 0.0);
    for (int slot = 0; slot < h.slot_deltas_size(); ++slot) {
      tls_buckets[BucketOf(slot)] += static_cast<double>(h.slot_deltas(slot));
    }
    series->histogram->ObserveMultiple(tls_buckets, static_cast<double>(h.sum_ns_delta()) / 1e9);
  }
  Report(metrics_, kDropUnknownMetric, drops.unknown_metric);
  Report(metrics_, kDropWrongKind, drops.wrong_kind);
  Report(metrics_, kDropBadLabel, drops.bad_label);
  Report(metrics_, kDropTooManySlots, drops.too_many_slots);
}

size_t KernelMetrics::series() const {
  size_t n = 0;
  for (const Metric& metric : catalog_) n += metric.series->size();
  return n;
}

}  // namespace nodescope::aggregator
