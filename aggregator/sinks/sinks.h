// The configured sinks (`sinks: ["jsonl:-", "jsonl:/path/file.jsonl"]`) behind one lock each.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aggregator/metrics.h"
#include "aggregator/record_batch.h"
#include "aggregator/sinks/sink.h"

namespace nodescope::aggregator::sinks {

// Checks one `sinks` entry without opening anything; the error names what is accepted.
Status CheckSinkSpec(const std::string& spec);

class SinkSet {
 public:
  // Opens every sink; the first failure is returned ("sink jsonl:/x: cannot open: ...").
  static Result<std::unique_ptr<SinkSet>> Open(const std::vector<std::string>& specs,
                                               Metrics* metrics);
  // For tests: sinks built by the caller.
  SinkSet(std::vector<std::unique_ptr<RecordSink>> sinks, Metrics* metrics);

  // Writes the batch to every sink. A failing sink counts the batch's records as dropped
  // (reason sink_error) and is logged at most once every 10 s; the others still get it.
  void Write(const RecordBatch& batch);
  void Reopen();
  size_t size() const { return sinks_.size(); }

 private:
  struct Entry {
    std::unique_ptr<RecordSink> sink;
    std::mutex mu;
    int64_t last_error_log = 0;
    uint64_t errors_since_log = 0;
  };
  std::vector<std::unique_ptr<Entry>> sinks_;
  Metrics* metrics_;
};

}  // namespace nodescope::aggregator::sinks
