// Turning the kernel's running totals into the deltas KernelMetricsEvent carries: the previous
// read of every series is kept, and a series appears in the event only when it moved.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "bpf/abi/hist.h"
#include "nodescope/v1/events.pb.h"

namespace nodescope::sensor::kernel {

// Series are told apart by a key the caller builds (name plus labels); the first read of a key
// counts from zero, so totals the kernel held before the sensor started must be read once as a
// baseline before the first Collect (all of ours start at zero when loaded).
class CounterDeltas {
 public:
  // Appends a KernelCounter when `total` moved since the last call for `key`. A total below the
  // previous one (a map entry deleted and re-created) counts from zero.
  void Append(const std::string& key, uint64_t total, const std::string& name,
              const v1::KernelLabels& labels, v1::KernelMetricsEvent& out);
  void Forget(const std::string& key) { last_.erase(key); }
  size_t size() const { return last_.size(); }

 private:
  std::unordered_map<std::string, uint64_t> last_;
};

class HistogramDeltas {
 public:
  // Appends a KernelHistogram when any slot of `total` moved since the last call for `key`.
  void Append(const std::string& key, const ns_hist& total, const std::string& name,
              const v1::KernelLabels& labels, v1::KernelMetricsEvent& out);
  size_t size() const { return last_.size(); }

 private:
  std::unordered_map<std::string, ns_hist> last_;
};

inline constexpr char kEventsLost[] = "kernel_events_lost";

// kernel_events_lost{reason}: `total` events a family's probe did not measure since it loaded.
void AppendLost(CounterDeltas& deltas, const std::string& reason, uint64_t total,
                v1::KernelMetricsEvent& out);

// Labels with only the family's own extra labels (a host-wide series of a labelled family).
v1::KernelLabels ExtraLabels(std::initializer_list<std::pair<std::string, std::string>> extra);

}  // namespace nodescope::sensor::kernel
