#include "common/records/record.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace nodescope::records {

void AddTag(v1::Record* record, std::string_view key, std::string_view value) {
  v1::Tag* tag = record->add_tags();
  tag->set_key(key.data(), key.size());
  tag->set_value(value.data(), value.size());
}

void AddField(v1::Record* record, std::string_view key, int64_t value) {
  v1::Field* field = record->add_fields();
  field->set_key(key.data(), key.size());
  field->set_int_value(value);
}

void AddField(v1::Record* record, std::string_view key, double value) {
  v1::Field* field = record->add_fields();
  field->set_key(key.data(), key.size());
  field->set_float_value(value);
}

void AddField(v1::Record* record, std::string_view key, bool value) {
  v1::Field* field = record->add_fields();
  field->set_key(key.data(), key.size());
  field->set_bool_value(value);
}

void AddField(v1::Record* record, std::string_view key, std::string_view value) {
  v1::Field* field = record->add_fields();
  field->set_key(key.data(), key.size());
  field->set_string_value(value.data(), value.size());
}

const std::string* FindTag(const v1::Record& record, std::string_view key) {
  for (const v1::Tag& tag : record.tags()) {
    if (tag.key() == key) return &tag.value();
  }
  return nullptr;
}

const v1::Field* FindField(const v1::Record& record, std::string_view key) {
  for (const v1::Field& field : record.fields()) {
    if (field.key() == key) return &field;
  }
  return nullptr;
}

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[0] (s[0] >= 0x80), or 0 when invalid.
// The ranges are those of RFC 3629 section 4: no overlong forms, no surrogates, <= U+10FFFF.
size_t Utf8SequenceLength(const unsigned char* s, size_t n) {
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < n && s[i] >= lo && s[i] <= hi;
  };
  unsigned char c = s[0];
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

std::string_view ValidUtf8(std::string_view text, std::string* scratch) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = Utf8SequenceLength(s + i, n - i);
    if (len == 0) break;
    i += len;
  }
  if (i == n) return text;
  scratch->assign(text.substr(0, i));
  while (i < n) {
    size_t len = s[i] < 0x80 ? 1 : Utf8SequenceLength(s + i, n - i);
    if (len == 0) {
      scratch->append(kReplacement);
      ++i;
    } else {
      scratch->append(text.substr(i, len));
      i += len;
    }
  }
  return *scratch;
}

namespace {

void AppendEscaped(std::string_view text, std::string* out) {
  out->push_back('"');
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') ++run;
    out->append(text.data() + i, run - i);
    i = run;
    if (i == n) break;
    unsigned char c = s[i];
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(s + i, n - i);
      if (len == 0) {
        out->append(kReplacement);
        ++i;
      } else {
        out->append(text.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out->append(esc, sizeof(esc));
      }
    }
    ++i;
  }
  out->push_back('"');
}

void AppendInt(int64_t value, std::string* out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, res.ptr - buf);
}

void AppendDouble(double value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  std::string_view text(buf, res.ptr - buf);
  out->append(text);
  // The shortest form of 3.0 is "3"; keep a fraction so a reader still sees a float.
  if (text.find_first_of(".e") == std::string_view::npos) out->append(".0");
}

void AppendFieldValue(const v1::Field& field, std::string* out) {
  switch (field.value_case()) {
    case v1::Field::kIntValue:
      AppendInt(field.int_value(), out);
      break;
    case v1::Field::kFloatValue:
      AppendDouble(field.float_value(), out);
      break;
    case v1::Field::kStringValue:
      AppendEscaped(field.string_value(), out);
      break;
    case v1::Field::kBoolValue:
      out->append(field.bool_value() ? "true" : "false");
      break;
    case v1::Field::VALUE_NOT_SET:
      out->append("null");
      break;
  }
}

}  // namespace

void AppendJsonLine(const v1::Record& record, std::string* out) {
  out->append("{\"source\":");
  AppendEscaped(record.source(), out);
  out->append(",\"time\":");
  AppendInt(record.time_unix_nano(), out);
  out->append(",\"host\":");
  AppendEscaped(record.host(), out);
  out->append(",\"tags\":{");
  bool first = true;
  for (const v1::Tag& tag : record.tags()) {
    if (!first) out->push_back(',');
    first = false;
    AppendEscaped(tag.key(), out);
    out->push_back(':');
    AppendEscaped(tag.value(), out);
  }
  out->append("},\"fields\":{");
  first = true;
  for (const v1::Field& field : record.fields()) {
    if (!first) out->push_back(',');
    first = false;
    AppendEscaped(field.key(), out);
    out->push_back(':');
    AppendFieldValue(field, out);
  }
  out->append("}}\n");
}

std::string ToJsonLine(const v1::Record& record) {
  std::string out;
  out.reserve(256);
  AppendJsonLine(record, &out);
  return out;
}

Result<v1::Record> FromJsonLine(std::string_view line) {
  using Json = nlohmann::ordered_json;
  Json doc;
  try {
    doc = Json::parse(line);
  } catch (const Json::exception& e) {
    return Status::Error(std::string("record json: ") + e.what());
  }
  if (!doc.is_object()) return Status::Error("record json: not an object");
  v1::Record record;
  for (const auto& [key, value] : doc.items()) {
    if (key == "source" || key == "host") {
      if (!value.is_string()) return Status::Error("record json: '" + key + "' is not a string");
      if (key == "source") {
        record.set_source(value.get<std::string>());
      } else {
        record.set_host(value.get<std::string>());
      }
    } else if (key == "time") {
      if (value.is_number_integer() && value.is_number_unsigned() &&
          value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::Error("record json: 'time' out of range");
      }
      if (!value.is_number_integer()) {
        return Status::Error("record json: 'time' is not an integer (unix nanoseconds)");
      }
      record.set_time_unix_nano(value.get<int64_t>());
    } else if (key == "tags") {
      if (!value.is_object()) return Status::Error("record json: 'tags' is not an object");
      for (const auto& [tag_key, tag_value] : value.items()) {
        if (!tag_value.is_string()) {
          return Status::Error("record json: tag '" + tag_key + "' is not a string");
        }
        AddTag(&record, tag_key, tag_value.get<std::string>());
      }
    } else if (key == "fields") {
      if (!value.is_object()) return Status::Error("record json: 'fields' is not an object");
      for (const auto& [field_key, field_value] : value.items()) {
        if (field_value.is_boolean()) {
          AddField(&record, field_key, field_value.get<bool>());
        } else if (field_value.is_number_unsigned()) {
          uint64_t v = field_value.get<uint64_t>();
          if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            return Status::Error("record json: field '" + field_key + "' out of int64 range");
          }
          AddField(&record, field_key, static_cast<int64_t>(v));
        } else if (field_value.is_number_integer()) {
          AddField(&record, field_key, field_value.get<int64_t>());
        } else if (field_value.is_number_float()) {
          AddField(&record, field_key, field_value.get<double>());
        } else if (field_value.is_string()) {
          AddField(&record, field_key, field_value.get<std::string>());
        } else if (field_value.is_null()) {
          AddField(&record, field_key, std::numeric_limits<double>::quiet_NaN());
        } else {
          return Status::Error("record json: field '" + field_key +
                               "' is not an int, float, string or bool");
        }
      }
    } else {
      return Status::Error("record json: unknown key '" + key + "'");
    }
  }
  return record;
}

}  // namespace nodescope::records
