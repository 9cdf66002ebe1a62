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

// The value of a tag, or nullptr.
const std::string* FindTag(const v1::Record& record, std::string_view key);
const v1::Field* FindField(const v1::Record& record, std::string_view key);

// `text` when it is valid UTF-8; otherwise a copy in `*scratch` in which every byte that does not
// start a valid sequence is replaced by U+FFFD. Kernel names and paths are bytes, and a proto3
// string or a JSON text must be UTF-8.
std::string_view ValidUtf8(std::string_view text, std::string* scratch);

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
