// Where committed records go besides the history: the one interface with several
// implementations (jsonl now; http, otlp, ... later) and the test double.
#pragma once

#include <span>
#include <string>

#include "common/status.h"
#include "nodescope/v1/records.pb.h"

namespace nodescope::aggregator::sinks {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // The records of one committed batch; called from several ingest threads, one call at a time
  // per sink (SinkSet serializes). An error drops the batch for this sink only.
  virtual Status Write(std::span<const v1::Record* const> records) = 0;
  // Reopens the output (SIGHUP, after log rotation). No-op by default.
  virtual Status Reopen() { return Status::Ok(); }
  // The configuration entry, e.g. "jsonl:/var/log/nodescope.jsonl".
  virtual const std::string& name() const = 0;
};

}  // namespace nodescope::aggregator::sinks
