// libFuzzer target for what a sensor stream hands the aggregator (registered with nodescope_fuzz
// in aggregator/CMakeLists.txt; aggregator_ingest_fuzz_test links this file too and replays
// testdata/fuzz/ through CheckIngestInput()).
//
// One input is the bytes of one v1::SensorMessage as the stream reads it. A message that parses
// goes where SensorService sends it: its status to the sensor registry and the probe gauges, its
// batch through Ingestor::Commit (conversion, the Prometheus families, history), then once more
// as a resend. Every input gets fresh state, with a label-set cap of kCap per host.
// Invariants: no crash, leak or sanitizer report; each event of a batch is either converted to
// records or counted as an unknown event (kernel metrics events are neither); the records are
// well-formed wire frames (valid UTF-8, the source its event names); a resend adds nothing; no
// record-derived Prometheus family holds more than kCap + 1 series for one host.
#include <google/protobuf/stubs/logging.h>
#include <prometheus/metric_family.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "aggregator/api/hub.h"
#include "aggregator/http_metrics.h"
#include "aggregator/ingest/convert.h"
#include "aggregator/ingest/dedup.h"
#include "aggregator/ingest/ingestor.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/kernel_metrics.h"
#include "aggregator/metrics.h"
#include "aggregator/netflow_metrics.h"
#include "aggregator/sinks/sinks.h"
#include "nodescope/v1/ingest.pb.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator::ingest {

std::string CheckIngestInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr int64_t kCap = 3;

// The probe gauges follow the sensor's own probe list (one per probe), not records.
bool RecordDerived(const std::string& family) { return family != "nodescope_probe_info"; }

std::string CheckSeries(prometheus::Registry& registry) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (!RecordDerived(family.name)) continue;
    std::map<std::string, int64_t> per_host;
    for (const prometheus::ClientMetric& metric : family.metric) {
      const std::string* host = nullptr;  // families without it have fixed label values
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "host") host = &label.value;
      }
      if (host != nullptr && ++per_host[*host] > kCap + 1) {
        return family.name + " holds more than " + std::to_string(kCap + 1) + " series for host " +
               *host;
      }
    }
  }
  return "";
}

// The frames of a batch, concatenated, are a SubscribeResponse: parsing them checks the wire
// form and the UTF-8 of every string.
std::string CheckRecords(const RecordBatch& batch) {
  std::string wire;
  for (size_t i = 0; i < batch.size(); ++i) wire.append(batch.Frame(i));
  v1::SubscribeResponse response;
  if (!response.ParseFromString(wire)) return "records that do not parse (wire form or UTF-8)";
  if (static_cast<size_t>(response.records_size()) != batch.size()) return "frames run together";
  for (size_t i = 0; i < batch.size(); ++i) {
    const v1::Record& record = response.records(static_cast<int>(i));
    if (record.source() != batch.source(i) || record.time_unix_nano() != batch.time(i)) {
      return "a frame whose source or time is not the batch's";
    }
    if (record.source().empty()) return "a record without a source";
  }
  return "";
}

// What the Ingestor is expected to do with `batch`: records per event, and the unknown ones.
std::string Expect(const v1::Batch& batch, size_t* records, uint64_t* unknown) {
  RecordBatch scratch;
  const BatchContext context{batch.node(), batch.extra_tags(), nullptr};
  for (const v1::Event& event : batch.events()) {
    if (event.has_kernel() || event.has_lost()) continue;
    const size_t before = scratch.size();
    const bool converted = ConvertEvent(event, context, &scratch);
    if (!converted && scratch.size() != before) return "a refused event left records behind";
    if (converted && scratch.size() == before) return "a converted event made no record";
    for (size_t i = before; i < scratch.size(); ++i) {
      if (scratch.source(i) != SourceOf(event)) return "a record of another source than its event";
    }
    if (!converted) ++*unknown;
  }
  *records = scratch.size();
  return CheckRecords(scratch);
}

}  // namespace

std::string CheckIngestInput(const uint8_t* data, size_t size) {
  v1::SensorMessage message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return "";

  Metrics metrics;
  NetflowMetrics netflow(metrics.registry(), kNetflowLabelNames, kCap);
  HttpMetrics http(metrics.registry(), kHttpLabelNames, kCap);
  DnsMetrics dns(metrics.registry(), kCap);
  KernelMetrics kernel(metrics, kCap);
  auto seqs = SeqStore::Open("");
  if (!seqs.ok()) return "no in-memory sequence store: " + seqs.status().message();
  api::Hub hub({}, &metrics);
  sinks::SinkSet sinks({}, &metrics);
  SensorRegistry sensors;
  Ingestor ingestor(seqs->get(), &hub, &sinks, &sensors, &metrics, &netflow, &http, &dns, &kernel);

  // As SensorService: the stream's identity from the message, else from its batch.
  const std::string node = !message.node().empty() ? message.node() : message.batch().node();
  std::string instance = !message.sensor_instance().empty() ? message.sensor_instance()
                                                            : message.batch().sensor_instance();
  if (instance.empty()) instance = "fuzz";
  sensors.StreamOpened(node, instance, 1);
  if (message.has_status()) {
    sensors.SetStatus(instance, message.status(), 2);
    metrics.SetProbes(node, message.status());
  }
  if (message.has_batch()) {
    const v1::Batch& batch = message.batch();
    size_t records = 0;
    uint64_t unknown = 0;
    if (std::string why = Expect(batch, &records, &unknown); !why.empty()) return why;
    Ingestor::Outcome first = ingestor.Commit(batch, instance, 3);
    // Sequence 0 is never above the last one committed (0): a duplicate from the start.
    if (first.duplicate != (batch.seq() == 0)) return "a first batch taken for a resend";
    if (!first.duplicate) {
      if (first.records != records) {
        return "committed " + std::to_string(first.records) + " records, converted " +
               std::to_string(records);
      }
      if (metrics.DroppedByReason()[kDropUnknownEvent] != unknown) {
        return "unknown events counted " +
               std::to_string(metrics.DroppedByReason()[kDropUnknownEvent]) + ", expected " +
               std::to_string(unknown);
      }
    }
    Ingestor::Outcome again = ingestor.Commit(batch, instance, 4);
    if (!again.duplicate || again.records != 0) return "a resend committed again";
  }
  sensors.StreamClosed(instance, 5);
  return CheckSeries(metrics.registry());
}

}  // namespace nodescope::aggregator::ingest

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in a string field is refused with a log line per input: noise here.
  static const bool quiet = [] { return google::protobuf::SetLogHandler(nullptr), true; }();
  (void)quiet;
  const std::string why = nodescope::aggregator::ingest::CheckIngestInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
