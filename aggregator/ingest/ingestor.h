// Commits sensor batches: duplicate check, conversion, history and subscribers, sinks, the
// persisted sequence number, then the ack. Per batch, not per record, for every lock it takes.
#pragma once

#include <cstdint>
#include <string>

#include "aggregator/api/hub.h"
#include "aggregator/enrich/metadata_source.h"
#include "aggregator/http_metrics.h"
#include "aggregator/ingest/dedup.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/kernel_metrics.h"
#include "aggregator/metrics.h"
#include "aggregator/netflow_metrics.h"
#include "aggregator/sinks/sinks.h"
#include "nodescope/v1/ingest.pb.h"

namespace nodescope::aggregator::ingest {

class Ingestor {
 public:
  // `http_metrics`, `dns_metrics`: null leaves httpflow and dnsflow out of /metrics (tests that
  // do not look at them); their records are ingested either way. Kernel metrics events are no
  // records: they go to `kernel_metrics` only (null: nowhere).
  Ingestor(SeqStore* seqs, api::Hub* hub, sinks::SinkSet* sinks, SensorRegistry* sensors,
           Metrics* metrics, NetflowMetrics* netflow_metrics, HttpMetrics* http_metrics = nullptr,
           DnsMetrics* dns_metrics = nullptr, KernelMetrics* kernel_metrics = nullptr,
           const enrich::MetadataSource* metadata = nullptr);

  struct Outcome {
    bool duplicate = false;
    uint64_t ack = 0;  // the sequence number to acknowledge
    size_t records = 0;
  };
  // `instance` is the sender's sensor instance (the stream's, or the batch's own).
  Outcome Commit(const v1::Batch& batch, const std::string& instance, int64_t now);

 private:
  // A LostEvent of a committed batch: counted, and told to the live subscribers.
  void SensorLost(const std::string& node, const v1::LostEvent& lost);
  RecordBatchPool pool_;
  SeqStore* seqs_;
  api::Hub* hub_;
  sinks::SinkSet* sinks_;
  SensorRegistry* sensors_;
  Metrics* metrics_;
  NetflowMetrics* netflow_metrics_;
  HttpMetrics* http_metrics_;
  DnsMetrics* dns_metrics_;
  KernelMetrics* kernel_metrics_;
  const enrich::MetadataSource* metadata_;
};

}  // namespace nodescope::aggregator::ingest
