#include "aggregator/record_batch.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <cstring>

#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator {

namespace {

using google::protobuf::io::CodedOutputStream;

static_assert(v1::SubscribeResponse::kRecordsFieldNumber == 1);
constexpr uint8_t kRecordsTag = (1 << 3) | 2;  // field 1, length-delimited

// A hand-written proto3 encoder for Record, byte-identical to the generated serializer
// (record_batch_test.cc checks it) but without its UTF-8 verification and its separate size pass
// over every sub-message: Seal is on the ingest path of every record.
constexpr uint8_t kLengthDelimited = 2;
constexpr uint8_t Tag(int field, uint8_t wire_type) {
  return static_cast<uint8_t>((field << 3) | wire_type);
}

size_t StringFieldSize(const std::string& s) {  // omitted when empty (proto3 default)
  return s.empty() ? 0 : 1 + CodedOutputStream::VarintSize64(s.size()) + s.size();
}

size_t TagSize(const v1::Tag& tag) {
  return StringFieldSize(tag.key()) + StringFieldSize(tag.value());
}

size_t FieldSize(const v1::Field& field) {
  size_t n = StringFieldSize(field.key());
  switch (field.value_case()) {  // a oneof member is written even when it holds its default
    case v1::Field::kIntValue:
      return n + 1 + CodedOutputStream::VarintSize64(static_cast<uint64_t>(field.int_value()));
    case v1::Field::kFloatValue:
      return n + 1 + 8;
    case v1::Field::kStringValue:
      return n + 1 + CodedOutputStream::VarintSize64(field.string_value().size()) +
             field.string_value().size();
    case v1::Field::kBoolValue:
      return n + 2;
    case v1::Field::VALUE_NOT_SET:
      break;
  }
  return n;
}

uint8_t* WriteBytes(int field, const std::string& s, uint8_t* out) {
  *out++ = Tag(field, kLengthDelimited);
  out = CodedOutputStream::WriteVarint64ToArray(s.size(), out);
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

uint8_t* WriteString(int field, const std::string& s, uint8_t* out) {
  return s.empty() ? out : WriteBytes(field, s, out);
}

size_t RecordSize(const v1::Record& r) {
  size_t n = StringFieldSize(r.source()) + StringFieldSize(r.host());
  if (r.time_unix_nano() != 0) {
    n += 1 + CodedOutputStream::VarintSize64(static_cast<uint64_t>(r.time_unix_nano()));
  }
  for (const v1::Tag& t : r.tags()) {
    const size_t size = TagSize(t);
    n += 1 + CodedOutputStream::VarintSize64(size) + size;
  }
  for (const v1::Field& f : r.fields()) {
    const size_t size = FieldSize(f);
    n += 1 + CodedOutputStream::VarintSize64(size) + size;
  }
  return n;
}

uint8_t* WriteRecord(const v1::Record& r, uint8_t* out) {
  out = WriteString(1, r.source(), out);
  if (r.time_unix_nano() != 0) {
    *out++ = Tag(2, 0);
    out = CodedOutputStream::WriteVarint64ToArray(static_cast<uint64_t>(r.time_unix_nano()), out);
  }
  out = WriteString(3, r.host(), out);
  for (const v1::Tag& t : r.tags()) {
    *out++ = Tag(4, kLengthDelimited);
    out = CodedOutputStream::WriteVarint64ToArray(TagSize(t), out);
    out = WriteString(1, t.key(), out);
    out = WriteString(2, t.value(), out);
  }
  for (const v1::Field& f : r.fields()) {
    *out++ = Tag(5, kLengthDelimited);
    out = CodedOutputStream::WriteVarint64ToArray(FieldSize(f), out);
    out = WriteString(1, f.key(), out);
    switch (f.value_case()) {
      case v1::Field::kIntValue:
        *out++ = Tag(2, 0);
        out = CodedOutputStream::WriteVarint64ToArray(static_cast<uint64_t>(f.int_value()), out);
        break;
      case v1::Field::kFloatValue: {
        *out++ = Tag(3, 1);
        out = CodedOutputStream::WriteLittleEndian64ToArray(
            google::protobuf::internal::WireFormatLite::EncodeDouble(f.float_value()), out);
        break;
      }
      case v1::Field::kStringValue:
        out = WriteBytes(4, f.string_value(), out);
        break;
      case v1::Field::kBoolValue:
        *out++ = Tag(5, 0);
        *out++ = f.bool_value() ? 1 : 0;
        break;
      case v1::Field::VALUE_NOT_SET:
        break;
    }
  }
  return out;
}

}  // namespace

void RecordBatch::Seal() {
  wire_.clear();
  offsets_.clear();
  offsets_.reserve(static_cast<size_t>(size_) + 1);
  offsets_.push_back(0);
  for (int i = 0; i < size_; ++i) {
    const v1::Record& record = records_.Get(i);
    const size_t size = RecordSize(record);
    const size_t at = wire_.size();
    wire_.resize(at + 1 + CodedOutputStream::VarintSize64(size) + size);
    auto* out = reinterpret_cast<uint8_t*>(wire_.data() + at);
    *out++ = kRecordsTag;
    out = CodedOutputStream::WriteVarint64ToArray(size, out);
    WriteRecord(record, out);
    offsets_.push_back(static_cast<uint32_t>(wire_.size()));
  }
}

RecordBatchPool::RecordBatchPool(size_t max_free) : shared_(std::make_shared<Shared>()) {
  shared_->max_free = max_free;
}

std::shared_ptr<RecordBatch> RecordBatchPool::Get() {
  std::unique_ptr<RecordBatch> batch;
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->free.empty()) {
      batch = std::move(shared_->free.back());
      shared_->free.pop_back();
    }
  }
  if (!batch) batch = std::make_unique<RecordBatch>();
  // The deleter runs on whichever thread drops the last reference (ingest, subscriber, ...).
  return std::shared_ptr<RecordBatch>(batch.release(), [shared = shared_](RecordBatch* b) {
    std::unique_ptr<RecordBatch> owned(b);
    owned->Clear();
    std::lock_guard lock(shared->mu);
    if (shared->free.size() < shared->max_free) shared->free.push_back(std::move(owned));
  });
}

}  // namespace nodescope::aggregator
