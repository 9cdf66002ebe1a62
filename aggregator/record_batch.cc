#include "aggregator/record_batch.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <charconv>
#include <cstring>

#include "common/records/record.h"
#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator {

namespace {

using google::protobuf::io::CodedOutputStream;

// Wire types and tags of the messages written here (records.proto, observer.proto). The tests
// check every byte against the generated serializer.
static_assert(v1::SubscribeResponse::kRecordsFieldNumber == 1);
static_assert(v1::Record::kSourceFieldNumber == 1 && v1::Record::kTimeUnixNanoFieldNumber == 2 &&
              v1::Record::kHostFieldNumber == 3 && v1::Record::kTagsFieldNumber == 4 &&
              v1::Record::kFieldsFieldNumber == 5);
static_assert(v1::Field::kIntValueFieldNumber == 2 && v1::Field::kFloatValueFieldNumber == 3 &&
              v1::Field::kStringValueFieldNumber == 4 && v1::Field::kBoolValueFieldNumber == 5);
constexpr uint8_t kVarint = 0;
constexpr uint8_t kFixed64 = 1;
constexpr uint8_t kLengthDelimited = 2;
constexpr uint8_t WireTag(int field, uint8_t wire_type) {
  return static_cast<uint8_t>((field << 3) | wire_type);
}
// Record lengths are reserved as two varint bytes (up to 16 KiB) and moved when they differ.
constexpr size_t kReservedLength = 2;

uint8_t* PutVarint(uint64_t value, uint8_t* p) {
  return CodedOutputStream::WriteVarint64ToArray(value, p);
}

// A string field, omitted when empty (the proto3 default).
size_t StringSize(std::string_view s) {
  return s.empty() ? 0 : 1 + CodedOutputStream::VarintSize64(s.size()) + s.size();
}
// The most a string field can take: tag, a 10-byte length, the bytes.
size_t MaxStringSize(std::string_view s) { return 1 + 10 + s.size(); }

uint8_t* PutBytes(int field, std::string_view s, uint8_t* p) {
  *p++ = WireTag(field, kLengthDelimited);
  p = PutVarint(s.size(), p);
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

uint8_t* PutString(int field, std::string_view s, uint8_t* p) {
  return s.empty() ? p : PutBytes(field, s, p);
}

// The header of a Field sub-message (tag 5, its length) and its key; `value_size` is the size
// of the oneof member that follows.
uint8_t* PutFieldHead(std::string_view key, size_t value_size, uint8_t* p) {
  *p++ = WireTag(5, kLengthDelimited);
  p = PutVarint(StringSize(key) + value_size, p);
  return PutString(1, key, p);
}

// Position and length of the body of a frame (after its tag and length varint).
std::string_view FrameBody(std::string_view frame) {
  size_t i = 1;
  uint64_t length = 0;
  for (int shift = 0; i < frame.size(); shift += 7) {
    const auto byte = static_cast<uint8_t>(frame[i++]);
    length |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  return frame.substr(i, length);
}

}  // namespace

void WireBuffer::Grow(size_t at_least) {
  const size_t capacity = std::max<size_t>({at_least, capacity_ * 2, 4096});
  auto data = std::make_unique<uint8_t[]>(capacity);  // value-initialized once per growth
  if (size_ > 0) std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

void RecordBatch::Append(std::string_view source, int64_t time) {
  times_.push_back(time);
  if (size_ < sources_.size()) {
    sources_[size_].assign(source.data(), source.size());
  } else {
    sources_.emplace_back(source);
  }
  offsets_.push_back(static_cast<uint32_t>(wire_.size()));
  ++size_;
}

void RecordBatch::AddRecord(const v1::Record& record) {
  const size_t size = record.ByteSizeLong();
  uint8_t* p = wire_.Reserve(1 + 10 + size);
  *p++ = WireTag(1, kLengthDelimited);
  p = PutVarint(size, p);
  wire_.CommitTo(record.SerializeWithCachedSizesToArray(p));
  Append(record.source(), record.time_unix_nano());
}

void RecordBatch::AppendFrom(const RecordBatch& from, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    const std::string_view frame = from.Frame(i);
    uint8_t* p = wire_.Reserve(frame.size());
    std::memcpy(p, frame.data(), frame.size());
    wire_.CommitTo(p + frame.size());
    Append(from.source(i), from.time(i));
  }
}

void RecordBatch::Clear() {
  // A batch is reused for batches of any size; one that held a large batch would keep its
  // buffer through every later use, also while a history ring holds it for a few records.
  if (wire_.capacity() > kMaxKeptWireBytes) wire_ = WireBuffer();
  wire_.clear();
  offsets_.resize(1);
  times_.clear();
  size_ = 0;
  parsed_.store(false, std::memory_order_relaxed);
}

void RecordBatch::Materialize() const {
  std::lock_guard lock(parse_mu_);
  if (parsed_.load(std::memory_order_relaxed)) return;
  // Records beyond size_ stay allocated for the next use of this batch.
  while (static_cast<size_t>(records_.size()) < size_) records_.Add();
  for (size_t i = 0; i < size_; ++i) {
    std::string_view body = FrameBody(Frame(i));
    // The frames were written here; a failure would be a bug in RecordWriter, which the tests
    // rule out byte by byte. The record is then left partial rather than aborting ingest.
    records_.Mutable(static_cast<int>(i))
        ->ParseFromArray(body.data(), static_cast<int>(body.size()));
  }
  // Parsed records beyond this use are not kept: a batch held in history for a few records
  // would otherwise keep every record object of its largest earlier use (nobody reads them:
  // records() ends at size_).
  if (static_cast<size_t>(records_.size()) > size_) {
    records_.DeleteSubrange(static_cast<int>(size_), records_.size() - static_cast<int>(size_));
  }
  parsed_.store(true, std::memory_order_release);
}

std::span<const v1::Record* const> RecordBatch::records() const {
  if (!parsed_.load(std::memory_order_acquire)) Materialize();
  return {records_.data(), size_};
}

RecordWriter::RecordWriter(RecordBatch* batch, std::string_view source, int64_t time_unix_nano,
                           std::string_view host)
    : batch_(batch), wire_(batch->wire_), start_(batch->wire_.size()) {
  uint8_t* p =
      wire_.Reserve(1 + kReservedLength + MaxStringSize(source) + 11 + MaxStringSize(host));
  *p++ = WireTag(1, kLengthDelimited);
  p += kReservedLength;
  p = PutString(1, source, p);
  if (time_unix_nano != 0) {
    *p++ = WireTag(2, kVarint);
    p = PutVarint(static_cast<uint64_t>(time_unix_nano), p);
  }
  wire_.CommitTo(PutString(3, host, p));
  batch->Append(source, time_unix_nano);  // the frame's end is set by the destructor
}

RecordWriter::~RecordWriter() {
  const size_t body_start = start_ + 1 + kReservedLength;
  const size_t body_size = wire_.size() - body_start;
  uint8_t length[10];
  const size_t length_size =
      static_cast<size_t>(CodedOutputStream::WriteVarint64ToArray(body_size, length) - length);
  if (length_size != kReservedLength) {
    // Move the body so that the length varint fits exactly (it must be minimal to be canonical).
    wire_.Reserve(length_size);  // may reallocate: take pointers after it
    uint8_t* body = wire_.at(body_start);
    std::memmove(wire_.at(start_ + 1 + length_size), body, body_size);
    wire_.CommitTo(wire_.at(start_ + 1 + length_size + body_size));
  }
  std::memcpy(wire_.at(start_ + 1), length, length_size);
  batch_->offsets_.back() = static_cast<uint32_t>(wire_.size());
}

void RecordWriter::Tag(std::string_view key, std::string_view raw) {
  std::string scratch;
  const std::string_view value = records::ValidUtf8(raw, &scratch);
  uint8_t* p = wire_.Reserve(1 + 10 + MaxStringSize(key) + MaxStringSize(value));
  *p++ = WireTag(4, kLengthDelimited);
  p = PutVarint(StringSize(key) + StringSize(value), p);
  p = PutString(1, key, p);
  wire_.CommitTo(PutString(2, value, p));
  tag_keys_.push_back(key);
}

void RecordWriter::Tag(std::string_view key, uint64_t value) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  Tag(key, std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
}

// Each Field reserves its head (tag, length, key) plus the largest oneof member it writes.
void RecordWriter::Field(std::string_view key, std::string_view raw) {
  std::string scratch;
  const std::string_view value = records::ValidUtf8(raw, &scratch);
  uint8_t* p = wire_.Reserve(1 + 10 + MaxStringSize(key) + MaxStringSize(value));
  // A oneof member is written even when it holds its default ("" here, 0 below).
  p = PutFieldHead(key, 1 + CodedOutputStream::VarintSize64(value.size()) + value.size(), p);
  wire_.CommitTo(PutBytes(4, value, p));
}

void RecordWriter::Field(std::string_view key, int64_t value) {
  const auto v = static_cast<uint64_t>(value);
  uint8_t* p = wire_.Reserve(1 + 10 + MaxStringSize(key) + 11);
  p = PutFieldHead(key, 1 + CodedOutputStream::VarintSize64(v), p);
  *p++ = WireTag(2, kVarint);
  wire_.CommitTo(PutVarint(v, p));
}

void RecordWriter::Field(std::string_view key, double value) {
  uint8_t* p = wire_.Reserve(1 + 10 + MaxStringSize(key) + 9);
  p = PutFieldHead(key, 1 + 8, p);
  *p++ = WireTag(3, kFixed64);
  wire_.CommitTo(CodedOutputStream::WriteLittleEndian64ToArray(
      google::protobuf::internal::WireFormatLite::EncodeDouble(value), p));
}

void RecordWriter::Field(std::string_view key, bool value) {
  uint8_t* p = wire_.Reserve(1 + 10 + MaxStringSize(key) + 2);
  p = PutFieldHead(key, 2, p);
  *p++ = WireTag(5, kVarint);
  *p++ = value ? 1 : 0;
  wire_.CommitTo(p);
}

bool RecordWriter::HasTag(std::string_view key) const {
  for (std::string_view k : tag_keys_) {
    if (k == key) return true;
  }
  return false;
}

RecordBatchPool::RecordBatchPool(size_t max_free_records) : shared_(std::make_shared<Shared>()) {
  shared_->max_free_records = max_free_records;
}

std::shared_ptr<RecordBatch> RecordBatchPool::Get() {
  std::unique_ptr<RecordBatch> batch;
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->free.empty()) {
      batch = std::move(shared_->free.back());
      shared_->free.pop_back();
      shared_->free_records -= batch->retained();
    }
  }
  if (!batch) batch = std::make_unique<RecordBatch>();
  // The deleter runs on whichever thread drops the last reference (ingest, subscriber, ...).
  return std::shared_ptr<RecordBatch>(batch.release(), [shared = shared_](RecordBatch* b) {
    std::unique_ptr<RecordBatch> owned(b);
    owned->Clear();
    std::lock_guard lock(shared->mu);
    if (shared->free_records + owned->retained() <= shared->max_free_records) {
      shared->free_records += owned->retained();
      shared->free.push_back(std::move(owned));
    }
  });
}

}  // namespace nodescope::aggregator
