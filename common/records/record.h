// Helpers to build and print nodescope::v1::Record, the record model of docs RECORDS.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "nodescope/v1/records.pb.h"

namespace nodescope::records {

void AddTag(v1::Record* record, std::string_view key, std::string_view value);
void AddField(v1::Record* record, std::string_view key, int64_t value);
void AddField(v1::Record* record, std::string_view key, double value);
void AddField(v1::Record* record, std::string_view key, bool value);
void AddField(v1::Record* record, std::string_view key, std::string_view value);
// Without these a string literal would pick the bool overload.
inline void AddField(v1::Record* record, std::string_view key, const char* value) {
  AddField(record, key, std::string_view(value));
}
inline void AddField(v1::Record* record, std::string_view key, const std::string& value) {
  AddField(record, key, std::string_view(value));
}
inline void AddField(v1::Record* record, std::string_view key, int value) {
  AddField(record, key, static_cast<int64_t>(value));
}

// Writes a record in place over whatever it held before, reusing its tags, fields and string
// buffers: records recycled from a pool are rebuilt without allocating. The record is complete
// when the builder is destroyed (tags and fields left over from the previous use are removed).
class RecordBuilder {
 public:
  RecordBuilder(v1::Record* record, std::string_view source, int64_t time_unix_nano,
                std::string_view host);
  ~RecordBuilder();
  RecordBuilder(const RecordBuilder&) = delete;
  RecordBuilder& operator=(const RecordBuilder&) = delete;

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
  // Whether a tag with this key was written through this builder.
  bool HasTag(std::string_view key) const;

 private:
  v1::Tag* NextTag();
  v1::Field* NextField();

  v1::Record* record_;
  int tags_ = 0;
  int fields_ = 0;
};

// The value of a tag, or nullptr.
const std::string* FindTag(const v1::Record& record, std::string_view key);
const v1::Field* FindField(const v1::Record& record, std::string_view key);

// Appends the record as one JSON line ending in '\n':
// {"source":..,"time":<unix ns>,"host":..,"tags":{..},"fields":{..}}
// Tags are strings, fields keep their type. Invalid UTF-8 is replaced by U+FFFD so the line is
// always valid JSON; a float that is NaN or infinite is written as null.
void AppendJsonLine(const v1::Record& record, std::string* out);
std::string ToJsonLine(const v1::Record& record);

// Parses one line written by AppendJsonLine (trailing newline allowed). JSON integers become int
// fields, numbers with a fraction or exponent float fields, null a NaN float.
Result<v1::Record> FromJsonLine(std::string_view line);

}  // namespace nodescope::records
