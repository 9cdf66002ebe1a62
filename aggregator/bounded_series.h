// The bounded label sets behind the aggregator's per-record Prometheus families (netflow, http,
// dns) and the kernel metrics: labels come from an allow-list (kernel: checked sensor labels), and
// each host holds at most `maximum_dimensions` label sets (Netdata's "maximum dimensions"); the
// label sets beyond it share one series per host whose other labels are all "other", so a port
// scan or a crawler cannot grow /metrics. Full detail stays in the records.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/labels.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nodescope::aggregator {

inline constexpr int64_t kDefaultMaximumDimensions = 500;
// The value of every label but host in the series that takes the label sets beyond the cap.
inline constexpr char kFoldedLabelValue[] = "other";

// What the cap needs that does not depend on what a series holds. Not thread-safe: BoundedSeries
// calls it under its lock.
class LabelSetCap {
 public:
  // `accepted`: the label names a family knows; `requested`: the configured ones (ValidateOptions
  // rejects unknown names and repeats; here an unknown name is ignored and a repeat counts once).
  // `folded` counts, per host, the observations that went to an "other" series.
  // `maximum_dimensions` below 1 counts as 1.
  LabelSetCap(prometheus::Family<prometheus::Counter>& folded,
              const std::vector<std::string>& accepted, const std::vector<std::string>& requested,
              int64_t maximum_dimensions);

  // The labels in use, as positions in `accepted`; label values are given in this order.
  const std::vector<size_t>& labels() const { return labels_; }

  // The key of a label set: the values joined with 0xff, a byte valid UTF-8 never holds. A
  // buffer of the calling thread, valid until its next call.
  static const std::string& Key(const std::vector<std::string>& values);
  // The same for label sets whose names vary: names and values, each followed by 0xff.
  static const std::string& Key(const prometheus::Labels& labels);
  // What the cap counts: the label sets of one host, or of all hosts when host is not a label.
  const std::string& Group(const std::string& host) const;
  // For a label set without a series: true when its group has room (taken by this call); false
  // when it goes to the group's "other" series, counted in `folded` for `host`.
  bool Admit(const std::string& host);
  prometheus::Labels LabelsOf(const std::vector<std::string>& values) const;
  prometheus::Labels OtherLabels(const std::string& host) const;

 private:
  std::vector<std::string> names_;  // of labels_
  std::vector<size_t> labels_;
  bool host_label_ = false;
  size_t maximum_dimensions_;
  prometheus::Family<prometheus::Counter>& folded_;
  std::unordered_map<std::string, size_t> label_sets_;  // by group
  std::unordered_map<std::string, prometheus::Counter*> folded_by_host_;
};

// The series of a family (or of several families sharing labels: `Series` is a struct of their
// metric pointers, made by `make` for a label set) under a LabelSetCap. Thread-safe; a label set
// seen before costs one hash lookup under a mutex.
template <typename Series>
class BoundedSeries {
 public:
  using Make = std::function<Series(const prometheus::Labels&)>;

  BoundedSeries(prometheus::Family<prometheus::Counter>& folded,
                const std::vector<std::string>& accepted, const std::vector<std::string>& requested,
                int64_t maximum_dimensions, Make make)
      : cap_(folded, accepted, requested, maximum_dimensions), make_(std::move(make)) {}
  BoundedSeries(const BoundedSeries&) = delete;
  BoundedSeries& operator=(const BoundedSeries&) = delete;

  const std::vector<size_t>& labels() const { return cap_.labels(); }

  // The series of `values` (one per labels() entry) observed on `host`. The reference stays valid
  // as long as this object: series are never removed and unordered_map nodes do not move.
  const Series& Get(const std::string& host, const std::vector<std::string>& values) {
    return Find(host, LabelSetCap::Key(values), [&] { return cap_.LabelsOf(values); });
  }
  // For a family whose label names vary from one label set to another (the kernel metrics, whose
  // extra labels are the sensor's): `labels` as the series gets them, host included. labels()
  // then only names the labels of the "other" series.
  const Series& Get(const std::string& host, const prometheus::Labels& labels) {
    return Find(host, LabelSetCap::Key(labels), [&] { return labels; });
  }

  // Series (label sets) in use, the folded "other" ones included.
  size_t size() const {
    std::lock_guard lock(mu_);
    return series_.size() + other_.size();
  }

 private:
  template <typename LabelsOf>
  const Series& Find(const std::string& host, const std::string& key, const LabelsOf& labels_of) {
    std::lock_guard lock(mu_);
    auto it = series_.find(key);
    if (it != series_.end()) return it->second;
    if (cap_.Admit(host)) return series_.emplace(key, make_(labels_of())).first->second;
    const std::string& group = cap_.Group(host);
    auto other = other_.find(group);
    if (other == other_.end()) other = other_.emplace(group, make_(cap_.OtherLabels(host))).first;
    return other->second;
  }

  mutable std::mutex mu_;
  LabelSetCap cap_;
  Make make_;
  std::unordered_map<std::string, Series> series_;  // by Key
  std::unordered_map<std::string, Series> other_;   // by group
};

}  // namespace nodescope::aggregator
