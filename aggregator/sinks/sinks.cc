#include "aggregator/sinks/sinks.h"

#include <spdlog/spdlog.h>

#include <map>

#include "aggregator/clock.h"
#include "aggregator/sinks/jsonl.h"

namespace nodescope::aggregator::sinks {

namespace {
constexpr char kAccepted[] = "accepted: jsonl:- (stdout), jsonl:/path/file.jsonl";
constexpr int64_t kErrorLogInterval = 10'000'000'000;
}  // namespace

Status CheckSinkSpec(const std::string& spec) {
  size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    return Status::Error("sink '" + spec + "': expected TYPE:TARGET (" + kAccepted + ")");
  }
  std::string type = spec.substr(0, colon);
  std::string target = spec.substr(colon + 1);
  if (type != "jsonl") {
    return Status::Error("sink '" + spec + "': unknown type '" + type + "' (" + kAccepted + ")");
  }
  if (target.empty()) {
    return Status::Error("sink '" + spec + "': empty path (" + kAccepted + ")");
  }
  return Status::Ok();
}

Result<std::unique_ptr<SinkSet>> SinkSet::Open(const std::vector<std::string>& specs,
                                               Metrics* metrics) {
  std::vector<std::unique_ptr<RecordSink>> sinks;
  for (const std::string& spec : specs) {
    Status s = CheckSinkSpec(spec);
    if (!s.ok()) return s;
    auto sink = JsonlSink::Open(spec.substr(spec.find(':') + 1));
    if (!sink.ok()) return sink.status();
    sinks.push_back(std::move(sink).value());
  }
  return std::make_unique<SinkSet>(std::move(sinks), metrics);
}

SinkSet::SinkSet(std::vector<std::unique_ptr<RecordSink>> sinks, Metrics* metrics)
    : metrics_(metrics) {
  for (auto& sink : sinks) {
    auto entry = std::make_unique<Entry>();
    entry->sink = std::move(sink);
    sinks_.push_back(std::move(entry));
  }
}

void SinkSet::Write(const RecordBatch& batch) {
  if (batch.empty() || sinks_.empty()) return;
  for (auto& entry : sinks_) {
    std::lock_guard lock(entry->mu);
    Status s = entry->sink->Write(batch.records());
    if (s.ok()) continue;
    std::map<std::string, uint64_t> by_source;
    for (size_t i = 0; i < batch.size(); ++i) ++by_source[batch.source(i)];
    for (const auto& [source, n] : by_source) metrics_->Dropped(source, kDropSinkError, n);
    ++entry->errors_since_log;
    const int64_t now = NowUnixNano();
    if (now - entry->last_error_log >= kErrorLogInterval) {
      spdlog::error("{} ({} failed batch(es) since the last report)", s.message(),
                    entry->errors_since_log);
      entry->last_error_log = now;
      entry->errors_since_log = 0;
    }
  }
}

void SinkSet::Reopen() {
  for (auto& entry : sinks_) {
    std::lock_guard lock(entry->mu);
    Status s = entry->sink->Reopen();
    if (!s.ok()) {
      spdlog::error("{}", s.message());
    } else {
      spdlog::info("reopened {}", entry->sink->name());
    }
  }
}

}  // namespace nodescope::aggregator::sinks
