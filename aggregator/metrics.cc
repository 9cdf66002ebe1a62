#include "aggregator/metrics.h"

namespace nodescope::aggregator {

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      ingested_(CounterFamily(*registry_, "nodescope_records_ingested_total",
                              "Records converted from sensor batches, by source.")),
      deduplicated_(CounterFamily(*registry_, "nodescope_records_deduplicated_total",
                                  "Records in batches a sensor resent after they were committed.")),
      dropped_(CounterFamily(*registry_, "nodescope_records_dropped_total",
                             "Records the aggregator could not deliver, by source and reason.")),
      history_evicted_(CounterFamily(*registry_, "nodescope_history_evicted_total",
                                     "Records overwritten in the history ring (history_size), by "
                                     "source: no longer served to since/last queries.")),
      sensor_lost_(CounterFamily(*registry_, "nodescope_sensor_lost_total",
                                 "Events sensors lost before sending them, as they reported "
                                 "them, by host, reason and probe (the sensors' "
                                 "nodescope_sensor_dropped_total, seen cluster-wide).")),
      batches_(CounterFamily(*registry_, "nodescope_batches_total",
                             "Sensor batches received, duplicates included.")
                   .Add({})),
      process_events_(CounterFamily(*registry_, "nodescope_process_events_total",
                                    "Process exec/fork/exit events, by event and host.")),
      sensors_connected_(GaugeFamily(*registry_, "nodescope_sensors_connected",
                                     "Sensor streams currently connected.")
                             .Add({})),
      subscribers_(
          GaugeFamily(*registry_, "nodescope_subscribers", "Open Subscribe streams.").Add({})),
      probe_info_(GaugeFamily(*registry_, "nodescope_probe_info",
                              "1 for each probe of each node with the attach strategy it uses.")),
      api_refused_(CounterFamily(*registry_, "nodescope_api_refused_total",
                                 "gRPC calls refused: no or a wrong bearer token, over "
                                 "max_requests_per_second, a message over max_message_size, "
                                 "over max_subscribers.")) {
  // Present at 0 from the start, so a rate() over them has a beginning.
  for (const char* reason : {kRefusedUnauthenticated, kRefusedRateLimited, kRefusedMessageTooLarge,
                             kRefusedTooManySubscribers}) {
    api_refused_.Add({{"reason", reason}});
  }
}

void Metrics::Ingested(const std::string& source, uint64_t records) {
  ingested_.Add({{"source", source}}).Increment(static_cast<double>(records));
}

void Metrics::Deduplicated(const std::string& source, uint64_t records) {
  deduplicated_.Add({{"source", source}}).Increment(static_cast<double>(records));
}

void Metrics::Dropped(const std::string& source, const std::string& reason, uint64_t records) {
  dropped_.Add({{"source", source}, {"reason", reason}}).Increment(static_cast<double>(records));
  std::lock_guard lock(mu_);
  dropped_by_reason_[reason] += records;
}

void Metrics::HistoryEvicted(const std::string& source, uint64_t records) {
  history_evicted_.Add({{"source", source}}).Increment(static_cast<double>(records));
}

void Metrics::SensorLost(const std::string& host, const std::string& reason,
                         const std::string& probe, uint64_t events) {
  sensor_lost_.Add({{"host", host}, {"reason", reason}, {"probe", probe}})
      .Increment(static_cast<double>(events));
}

void Metrics::Batch() { batches_.Increment(); }

void Metrics::ProcessEvents(const std::string& event, const std::string& host, uint64_t count) {
  process_events_.Add({{"event", event}, {"host", host}}).Increment(static_cast<double>(count));
}

void Metrics::SetSensorsConnected(int64_t n) { sensors_connected_.Set(static_cast<double>(n)); }

void Metrics::SetSubscribers(int64_t n) { subscribers_.Set(static_cast<double>(n)); }

void Metrics::SetProbes(const std::string& host, const v1::SensorStatus& status) {
  std::lock_guard lock(mu_);
  std::vector<prometheus::Gauge*>& gauges = probes_by_host_[host];
  for (prometheus::Gauge* g : gauges) probe_info_.Remove(g);
  gauges.clear();
  for (const v1::ProbeStatus& probe : status.probes()) {
    if (probe.strategy().empty()) continue;  // nothing attached: no strategy to show
    prometheus::Gauge& g =
        probe_info_.Add({{"host", host}, {"probe", probe.probe()}, {"strategy", probe.strategy()}});
    g.Set(1);
    gauges.push_back(&g);
  }
}

void Metrics::ApiRefused(const std::string& reason) {
  api_refused_.Add({{"reason", reason}}).Increment();
}

std::map<std::string, uint64_t> Metrics::DroppedByReason() const {
  std::lock_guard lock(mu_);
  return dropped_by_reason_;
}

}  // namespace nodescope::aggregator
