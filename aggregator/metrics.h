// The aggregator's self metrics (served on /metrics) and the drop totals Status reports.
// Calls are per batch, not per record: prometheus-cpp looks label sets up under a mutex.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "nodescope/v1/ingest.pb.h"

namespace nodescope::aggregator {

// Registers (or finds) a counter or gauge family: every counter and gauge family the aggregator
// exports is built this way.
prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help);
prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                   const std::string& name,
                                                   const std::string& help);

// Drop reasons (the `reason` label of nodescope_records_dropped_total).
inline constexpr char kDropSlowSubscriber[] = "slow_subscriber";
inline constexpr char kDropSinkError[] = "sink_error";
inline constexpr char kDropUnknownEvent[] = "unknown_event";
// Entries of a KernelMetricsEvent (source "kernel"; an entry is one counter, gauge or histogram):
// a name the catalog does not have, a catalog name sent as another kind, a label key or value
// that cannot be a Prometheus label, a histogram with more slots than the kernel keeps.
inline constexpr char kDropUnknownMetric[] = "unknown_metric";
inline constexpr char kDropWrongKind[] = "wrong_kind";
inline constexpr char kDropBadLabel[] = "bad_label";
inline constexpr char kDropTooManySlots[] = "too_many_slots";

// Why a gRPC call was refused (the `reason` label of nodescope_api_refused_total).
inline constexpr char kRefusedUnauthenticated[] = "unauthenticated";
inline constexpr char kRefusedRateLimited[] = "rate_limited";
inline constexpr char kRefusedMessageTooLarge[] = "message_too_large";
inline constexpr char kRefusedTooManySubscribers[] = "too_many_subscribers";

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }

  void Ingested(const std::string& source, uint64_t records);
  void Deduplicated(const std::string& source, uint64_t records);
  void Dropped(const std::string& source, const std::string& reason, uint64_t records);
  // Records pushed out of a source's history ring (history_size) by newer ones: no longer
  // available to `observe --last` or since/until, though every live subscriber got them.
  void HistoryEvicted(const std::string& source, uint64_t records);
  // Events a sensor reported lost before sending them (LostEvent), by node, reason and probe.
  void SensorLost(const std::string& host, const std::string& reason, const std::string& probe,
                  uint64_t events);
  void Batch();
  void ProcessEvents(const std::string& event, const std::string& host, uint64_t count);
  void SetSensorsConnected(int64_t n);
  void SetSubscribers(int64_t n);
  // Replaces the host's nodescope_probe_info series with the probes of `status`.
  void SetProbes(const std::string& host, const v1::SensorStatus& status);
  // A gRPC call refused before it did anything, by reason (kRefused*).
  void ApiRefused(const std::string& reason);

  std::map<std::string, uint64_t> DroppedByReason() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& ingested_;
  prometheus::Family<prometheus::Counter>& deduplicated_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Counter>& history_evicted_;
  prometheus::Family<prometheus::Counter>& sensor_lost_;
  prometheus::Counter& batches_;
  prometheus::Family<prometheus::Counter>& process_events_;
  prometheus::Gauge& sensors_connected_;
  prometheus::Gauge& subscribers_;
  prometheus::Family<prometheus::Gauge>& probe_info_;
  prometheus::Family<prometheus::Counter>& api_refused_;

  mutable std::mutex mu_;
  std::map<std::string, uint64_t> dropped_by_reason_;
  std::map<std::string, std::vector<prometheus::Gauge*>> probes_by_host_;
};

}  // namespace nodescope::aggregator
