// The records converted from one sensor batch, shared read-only, never copied, by the history
// rings, every subscriber and the sinks. Batches come from a pool and go back to it when the
// last reference drops; their records are then overwritten in place (RecordBuilder), keeping
// their tags, fields and string buffers, so in steady state building a record allocates nothing.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nodescope/v1/records.pb.h"

namespace nodescope::aggregator {

class RecordBatch {
 public:
  RecordBatch() = default;
  RecordBatch(const RecordBatch&) = delete;
  RecordBatch& operator=(const RecordBatch&) = delete;

  // The next record of this batch. It may be one recycled from an earlier use of the batch,
  // still holding old content: write it whole with records::RecordBuilder (or CopyFrom).
  v1::Record* Add() {
    if (size_ < records_.size()) return records_.Mutable(size_++);
    ++size_;
    return records_.Add();
  }
  // Drops the record added last (a conversion that turned out to have nothing to say).
  void RemoveLast() { --size_; }
  // Empties the batch and keeps every record for reuse.
  void Clear() {
    size_ = 0;
    wire_.clear();
    offsets_.clear();
  }

  // Serializes every record once, while it is still in this core's cache, as a `records` entry
  // of SubscribeResponse (tag, length, Record bytes): a subscriber's response is then these
  // frames concatenated, whatever the number of subscribers. Call after the last Add. Only the
  // fields this version knows are written (records are built here, never parsed from newer
  // peers).
  void Seal();
  // Record i as a SubscribeResponse `records` entry; valid after Seal.
  std::string_view Frame(size_t i) const {
    return std::string_view(wire_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

  std::span<const v1::Record* const> records() const {
    return {records_.data(), static_cast<size_t>(size_)};
  }
  size_t size() const { return static_cast<size_t>(size_); }
  bool empty() const { return size_ == 0; }
  const v1::Record& operator[](size_t i) const { return records_.Get(static_cast<int>(i)); }

 private:
  google::protobuf::RepeatedPtrField<v1::Record> records_;
  int size_ = 0;
  std::string wire_;
  std::vector<uint32_t> offsets_;  // size_ + 1 after Seal
};

using RecordBatchPtr = std::shared_ptr<const RecordBatch>;

// One record of a shared batch (keeps the batch alive).
struct RecordRef {
  RecordBatchPtr batch;
  uint32_t index;
  const v1::Record& record() const { return (*batch)[index]; }
  std::string_view frame() const { return batch->Frame(index); }
};

class RecordBatchPool {
 public:
  // Keeps at most `max_free` batches for reuse; more are freed.
  explicit RecordBatchPool(size_t max_free = 32);

  // An empty batch that returns here when its last reference is dropped (or is freed, if the
  // pool is gone by then).
  std::shared_ptr<RecordBatch> Get();

 private:
  struct Shared {
    std::mutex mu;
    std::vector<std::unique_ptr<RecordBatch>> free;
    size_t max_free;
  };
  std::shared_ptr<Shared> shared_;
};

// For tests and tools: a sealed batch holding copies of `records`.
inline std::shared_ptr<RecordBatch> MakeBatch(const std::vector<v1::Record>& records) {
  auto batch = std::make_shared<RecordBatch>();
  for (const v1::Record& r : records) batch->Add()->CopyFrom(r);
  batch->Seal();
  return batch;
}

}  // namespace nodescope::aggregator
