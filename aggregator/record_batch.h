// The records converted from one sensor batch, shared read-only, never copied, by the history
// rings, every subscriber and the sinks.
//
// A record is written once, straight from its event, in wire form: a `records` entry of
// SubscribeResponse (RecordWriter). A subscriber's response is then these frames concatenated,
// whatever the number of subscribers, and nothing is built per record that nobody reads. The
// parsed v1::Record objects, which filters on tags and the sinks need, are made on first use.
//
// Batches come from a pool and go back to it when the last reference drops, keeping their
// buffers (and parsed records) for the next batch.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nodescope/v1/records.pb.h"

namespace nodescope::aggregator {

class RecordWriter;

// Bytes written through raw pointers: room is reserved, written, then committed, without the
// per-append checks and zero-filling of std::string (RecordWriter writes a few dozen small
// pieces per record).
class WireBuffer {
 public:
  // Room for `n` more bytes; valid until the next Reserve.
  uint8_t* Reserve(size_t n) {
    if (size_ + n > capacity_) Grow(size_ + n);
    return data_.get() + size_;
  }
  void CommitTo(const uint8_t* end) { size_ = static_cast<size_t>(end - data_.get()); }
  uint8_t* at(size_t offset) { return data_.get() + offset; }
  std::string_view view(size_t offset, size_t length) const {
    return {reinterpret_cast<const char*>(data_.get()) + offset, length};
  }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  void clear() { size_ = 0; }

 private:
  void Grow(size_t at_least);
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

class RecordBatch {
 public:
  RecordBatch() = default;
  RecordBatch(const RecordBatch&) = delete;
  RecordBatch& operator=(const RecordBatch&) = delete;

  // Appends a copy of `record` (tests and tools; the ingest path uses RecordWriter).
  void AddRecord(const v1::Record& record);
  // Appends copies of records [begin, end) of `from`, as frames (nothing is parsed).
  void AppendFrom(const RecordBatch& from, size_t begin, size_t end);
  // Empties the batch, keeping its buffers for reuse.
  void Clear();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Record i as a SubscribeResponse `records` entry (tag, length, Record bytes).
  std::string_view Frame(size_t i) const {
    return wire_.view(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }
  int64_t time(size_t i) const { return times_[i]; }
  // How many records' worth of buffers this batch keeps for reuse.
  size_t retained() const {
    return std::max(sources_.size(), static_cast<size_t>(records_.size()));
  }
  const std::string& source(size_t i) const { return sources_[i]; }

  // The records parsed from their frames, on first use (thread-safe); kept until Clear.
  std::span<const v1::Record* const> records() const;
  const v1::Record& operator[](size_t i) const { return *records()[i]; }

 private:
  friend class RecordWriter;
  // Records a new frame ending at the current end of wire_.
  void Append(std::string_view source, int64_t time);
  void Materialize() const;

  // Wire buffers larger than this are freed on Clear rather than kept for the next use.
  static constexpr size_t kMaxKeptWireBytes = 32 << 10;

  WireBuffer wire_;
  std::vector<uint32_t> offsets_ = {0};  // frame i is [offsets_[i], offsets_[i + 1])
  std::vector<int64_t> times_;
  std::vector<std::string> sources_;  // entries beyond size_ are kept for reuse
  size_t size_ = 0;

  mutable std::mutex parse_mu_;
  mutable std::atomic<bool> parsed_{false};
  mutable google::protobuf::RepeatedPtrField<v1::Record> records_;  // reused across batches
};

// Writes one record into a batch, in wire form, straight from what the converter knows. Tags
// come before fields (the order the generated serializer uses, so the bytes are canonical). The
// record is complete when the writer is destroyed.
class RecordWriter {
 public:
  RecordWriter(RecordBatch* batch, std::string_view source, int64_t time_unix_nano,
               std::string_view host);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  void Tag(std::string_view key, std::string_view value);
  void Tag(std::string_view key, uint64_t value);  // as decimal text
  void Field(std::string_view key, std::string_view value);
  void Field(std::string_view key, int64_t value);
  void Field(std::string_view key, double value);
  void Field(std::string_view key, bool value);
  // Without these a string literal would pick the bool overload.
  void Field(std::string_view key, const char* value) { Field(key, std::string_view(value)); }
  void Field(std::string_view key, const std::string& value) {
    Field(key, std::string_view(value));
  }
  // Whether a tag with this key was written through this writer.
  bool HasTag(std::string_view key) const;

 private:
  RecordBatch* const batch_;
  WireBuffer& wire_;
  const size_t start_;  // of the frame
  std::vector<std::string_view> tag_keys_;
};

using RecordBatchPtr = std::shared_ptr<const RecordBatch>;

// One record of a shared batch (keeps the batch alive).
struct RecordRef {
  RecordBatchPtr batch;
  uint32_t index;
  int64_t time() const { return batch->time(index); }
  const v1::Record& record() const { return (*batch)[index]; }
  std::string_view frame() const { return batch->Frame(index); }
};

class RecordBatchPool {
 public:
  // Keeps free batches for reuse while they hold at most `max_free_records` records in all;
  // more are freed.
  explicit RecordBatchPool(size_t max_free_records = 131072);

  // An empty batch that returns here when its last reference is dropped (or is freed, if the
  // pool is gone by then).
  std::shared_ptr<RecordBatch> Get();

 private:
  struct Shared {
    std::mutex mu;
    std::vector<std::unique_ptr<RecordBatch>> free;
    size_t free_records = 0;
    size_t max_free_records;
  };
  std::shared_ptr<Shared> shared_;
};

// For tests and tools: a batch holding copies of `records`.
inline std::shared_ptr<RecordBatch> MakeBatch(const std::vector<v1::Record>& records) {
  auto batch = std::make_shared<RecordBatch>();
  for (const v1::Record& r : records) batch->AddRecord(r);
  return batch;
}

}  // namespace nodescope::aggregator
