#include "aggregator/bounded_series.h"

#include <algorithm>

namespace nodescope::aggregator {

namespace {

constexpr char kKeySeparator = '\xff';
constexpr char kHostLabel[] = "host";

// Per thread: each ingest thread (one per sensor stream) reuses its own buffer instead of
// allocating per event.
thread_local std::string tls_key;

const std::string kAllHosts;

}  // namespace

LabelSetCap::LabelSetCap(prometheus::Family<prometheus::Counter>& folded,
                         const std::vector<std::string>& accepted,
                         const std::vector<std::string>& requested, int64_t maximum_dimensions)
    : maximum_dimensions_(static_cast<size_t>(std::max<int64_t>(maximum_dimensions, 1))),
      folded_(folded) {
  for (const std::string& name : requested) {
    auto it = std::find(accepted.begin(), accepted.end(), name);
    if (it == accepted.end()) continue;
    const auto label = static_cast<size_t>(it - accepted.begin());
    if (std::find(labels_.begin(), labels_.end(), label) != labels_.end()) continue;
    labels_.push_back(label);
    names_.push_back(name);
    if (name == kHostLabel) host_label_ = true;
  }
}

const std::string& LabelSetCap::Key(const std::vector<std::string>& values) {
  tls_key.clear();
  for (const std::string& v : values) {
    tls_key += v;
    tls_key += kKeySeparator;
  }
  return tls_key;
}

const std::string& LabelSetCap::Key(const prometheus::Labels& labels) {
  tls_key.clear();
  for (const auto& [name, value] : labels) {
    tls_key += name;
    tls_key += kKeySeparator;
    tls_key += value;
    tls_key += kKeySeparator;
  }
  return tls_key;
}

const std::string& LabelSetCap::Group(const std::string& host) const {
  return host_label_ ? host : kAllHosts;
}

bool LabelSetCap::Admit(const std::string& host) {
  size_t& label_sets = label_sets_[Group(host)];
  if (label_sets < maximum_dimensions_) {
    ++label_sets;
    return true;
  }
  prometheus::Counter*& folded = folded_by_host_[host];
  if (folded == nullptr) folded = &folded_.Add({{kHostLabel, host}});
  folded->Increment();
  return false;
}

prometheus::Labels LabelSetCap::LabelsOf(const std::vector<std::string>& values) const {
  prometheus::Labels labels;
  for (size_t i = 0; i < names_.size() && i < values.size(); ++i) {
    labels.emplace(names_[i], values[i]);
  }
  return labels;
}

prometheus::Labels LabelSetCap::OtherLabels(const std::string& host) const {
  prometheus::Labels labels;
  for (const std::string& name : names_) {
    labels.emplace(name, name == kHostLabel ? host : std::string(kFoldedLabelValue));
  }
  return labels;
}

}  // namespace nodescope::aggregator
