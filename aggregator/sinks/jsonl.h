// One JSON record per line (docs RECORDS.md) to stdout or appended to a file. Each batch is
// one write(2), so a crash never leaves half a batch and lines of concurrent writers never mix.
#pragma once

#include <memory>
#include <string>

#include "aggregator/sinks/sink.h"

namespace nodescope::aggregator::sinks {

class JsonlSink final : public RecordSink {
 public:
  // `path` "-" is stdout; anything else is a file opened for appending (created 0644).
  static Result<std::unique_ptr<JsonlSink>> Open(const std::string& path);
  ~JsonlSink() override;

  Status Write(std::span<const v1::Record* const> records) override;
  Status Reopen() override;
  const std::string& name() const override { return name_; }

 private:
  JsonlSink(std::string path, int fd);
  static Result<int> OpenFile(const std::string& path);

  const std::string path_;
  const std::string name_;
  int fd_;
  std::string buffer_;  // reused between batches
};

}  // namespace nodescope::aggregator::sinks
