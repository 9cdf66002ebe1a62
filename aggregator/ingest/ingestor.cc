#include "aggregator/ingest/ingestor.h"

#include <spdlog/spdlog.h>

#include <map>

#include "aggregator/ingest/convert.h"

namespace nodescope::aggregator::ingest {

Ingestor::Ingestor(SeqStore* seqs, api::Hub* hub, sinks::SinkSet* sinks, SensorRegistry* sensors,
                   Metrics* metrics, NetflowMetrics* netflow_metrics, HttpMetrics* http_metrics,
                   DnsMetrics* dns_metrics, KernelMetrics* kernel_metrics,
                   const enrich::MetadataSource* metadata)
    : seqs_(seqs),
      hub_(hub),
      sinks_(sinks),
      sensors_(sensors),
      metrics_(metrics),
      netflow_metrics_(netflow_metrics),
      http_metrics_(http_metrics),
      dns_metrics_(dns_metrics),
      kernel_metrics_(kernel_metrics),
      metadata_(metadata) {}

namespace {
// Reasons and probes are short lower-case words; anything else from the wire is one label value,
// so a broken or hostile sensor cannot grow the label sets.
std::string LabelWord(const std::string& s) {
  if (s.size() > 32) return "invalid";
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return "invalid";
  }
  return s;
}
}  // namespace

void Ingestor::SensorLost(const std::string& node, const v1::LostEvent& lost) {
  if (lost.count() == 0) return;
  const std::string reason = lost.reason().empty() ? "invalid" : LabelWord(lost.reason());
  const std::string probe = LabelWord(lost.probe());
  metrics_->SensorLost(node, reason, probe, lost.count());
  v1::LostEvents event;
  event.set_reason(v1::LostEvents::SENSOR_DROPPED);
  event.set_count(lost.count());
  event.set_host(node);
  event.set_sensor_reason(reason);
  event.set_probe(probe);
  hub_->SensorLost(event);
}

Ingestor::Outcome Ingestor::Commit(const v1::Batch& batch, const std::string& instance,
                                   int64_t now) {
  metrics_->Batch();
  SeqStore::Guard guard = seqs_->Lock(instance, now);
  if (batch.seq() <= guard.last()) {
    std::map<std::string_view, uint64_t> by_source;
    for (const v1::Event& event : batch.events()) {
      // No record: not in the records_* counters either.
      if (event.has_kernel() || event.has_lost()) continue;
      std::string_view source = SourceOf(event);
      ++by_source[source.empty() ? std::string_view("unknown") : source];
    }
    for (const auto& [source, n] : by_source) metrics_->Deduplicated(std::string(source), n);
    sensors_->Batch(instance, batch.seq(), 0, /*duplicate=*/true, now);
    return {true, batch.seq(), 0};
  }

  std::shared_ptr<RecordBatch> records = pool_.Get();
  const BatchContext context{batch.node(), batch.extra_tags(), metadata_};
  uint64_t unknown = 0;
  uint64_t process_events[4] = {};  // by ProcessEvent::Kind
  for (const v1::Event& event : batch.events()) {
    if (event.has_kernel()) {
      // Deltas: applied once per committed batch (a resent one returned above).
      if (kernel_metrics_ != nullptr) kernel_metrics_->Observe(batch.node(), event.kernel());
      continue;
    }
    if (event.has_lost()) {
      SensorLost(batch.node(), event.lost());
      continue;
    }
    if (!ConvertEvent(event, context, records.get())) {
      ++unknown;
      continue;
    }
    switch (event.payload_case()) {
      case v1::Event::kProcess:
        ++process_events[event.process().kind() & 3];
        break;
      case v1::Event::kNetflow:
        netflow_metrics_->Observe(batch.node(), event.netflow());
        break;
      case v1::Event::kHttpflow:
        if (http_metrics_ != nullptr) http_metrics_->Observe(batch.node(), event.httpflow());
        break;
      case v1::Event::kDnsflow:
        if (dns_metrics_ != nullptr) dns_metrics_->Observe(batch.node(), event.dnsflow());
        break;
      case v1::Event::kBash:  // records only, no Prometheus family
        break;
      case v1::Event::kConntrack:  // records only
        break;
      case v1::Event::kKernel:  // handled above
      case v1::Event::kLost:
        break;
      case v1::Event::PAYLOAD_NOT_SET:
        break;
    }
  }
  if (unknown > 0) metrics_->Dropped("unknown", kDropUnknownEvent, unknown);

  // Counted per source run: a batch holds one source almost always.
  for (size_t i = 0; i < records->size();) {
    const std::string& source = records->source(i);
    size_t j = i;
    while (j < records->size() && records->source(j) == source) ++j;
    metrics_->Ingested(source, j - i);
    i = j;
  }
  for (int kind = v1::ProcessEvent::EXEC; kind <= v1::ProcessEvent::EXIT; ++kind) {
    if (process_events[kind] == 0) continue;
    metrics_->ProcessEvents(
        std::string(ProcessEventName(static_cast<v1::ProcessEvent::Kind>(kind))), batch.node(),
        process_events[kind]);
  }

  const size_t count = records->size();
  RecordBatchPtr shared = std::move(records);
  if (count > 0) {
    hub_->Publish(shared);
    sinks_->Write(*shared);
  }
  Status s = guard.Commit(batch.seq());
  if (!s.ok()) spdlog::warn("{}: a resend after a restart may be delivered twice", s.message());
  sensors_->Batch(instance, batch.seq(), count, /*duplicate=*/false, now);
  return {false, batch.seq(), count};
}

}  // namespace nodescope::aggregator::ingest
