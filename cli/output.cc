#include "cli/output.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <ctime>
#include <vector>

namespace nodescope::cli {
namespace {

constexpr char kRowFormat[] = "{:<29} {:<9} {:<13} ";

// Values with spaces, quotes or '=' are quoted so that a row still splits into key=value pairs.
void AppendValue(std::string_view value, std::string* out) {
  const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
    return c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
  if (plain) {
    out->append(value);
    return;
  }
  out->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out->append(fmt::format("\\x{:02x}", static_cast<unsigned char>(c)));
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

std::string FieldValue(const v1::Field& field) {
  switch (field.value_case()) {
    case v1::Field::kIntValue:
      return std::to_string(field.int_value());
    case v1::Field::kFloatValue:
      return fmt::format("{}", field.float_value());
    case v1::Field::kBoolValue:
      return field.bool_value() ? "true" : "false";
    case v1::Field::kStringValue:
      return field.string_value();
    case v1::Field::VALUE_NOT_SET:
      break;
  }
  return "";
}

// Rows of cells printed with every column as wide as its widest cell.
class Columns {
 public:
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void AppendTo(std::string* out, const std::string& indent) const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out->append(line).push_back('\n');
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string TimeOrDash(int64_t unix_nano) { return unix_nano == 0 ? "-" : FormatTime(unix_nano); }

}  // namespace

std::string FormatTime(int64_t unix_nano) {
  const time_t seconds = static_cast<time_t>(unix_nano / 1'000'000'000);
  const int millis = static_cast<int>((unix_nano % 1'000'000'000) / 1'000'000);
  struct tm local;
  if (localtime_r(&seconds, &local) == nullptr) return std::to_string(unix_nano);
  char date[32];
  strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &local);
  const long offset_minutes = local.tm_gmtoff / 60;
  const char sign = offset_minutes < 0 ? '-' : '+';
  const long magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  return fmt::format("{}.{:03d}{}{:02d}:{:02d}", date, millis, sign, magnitude / 60,
                     magnitude % 60);
}

std::string TableHeader() {
  std::string header = fmt::format(kRowFormat, "TIME", "SOURCE", "HOST");
  return header + "DETAILS\n";
}

void AppendTableLine(const v1::Record& record, std::string* out) {
  fmt::format_to(std::back_inserter(*out), kRowFormat, FormatTime(record.time_unix_nano()),
                 record.source(), record.host());
  bool first = true;
  const auto pair = [&](const std::string& key, std::string_view value) {
    if (!first) out->push_back(' ');
    first = false;
    out->append(key).push_back('=');
    AppendValue(value, out);
  };
  for (const v1::Tag& tag : record.tags()) {
    if (tag.key() != "host") pair(tag.key(), tag.value());
  }
  for (const v1::Field& field : record.fields()) pair(field.key(), FieldValue(field));
  out->push_back('\n');
}

std::string LostLine(const v1::LostEvents& lost) {
  std::string reason;
  switch (lost.reason()) {
    case v1::LostEvents::SLOW_SUBSCRIBER:
      reason = "slow subscriber";
      break;
    case v1::LostEvents::HISTORY_OVERWRITTEN:
      reason = "history overwritten";
      break;
    case v1::LostEvents::SENSOR_DROPPED:
      // The sensor lost events before they were records: say where and why.
      return fmt::format("lost {} events on {} ({}{}{})", lost.count(), lost.host(),
                         lost.sensor_reason(), lost.probe().empty() ? "" : " in probe ",
                         lost.probe());
    default:
      reason = "reason unknown";
      break;
  }
  const std::string what = lost.source().empty() ? "records" : lost.source() + " records";
  return fmt::format("lost {} {} ({})", lost.count(), what, reason);
}

std::string StatusTable(const v1::StatusResponse& status) {
  std::string out;
  if (status.sensors().empty()) out += "no sensors have connected\n";
  for (const v1::SensorInfo& sensor : status.sensors()) {
    out += fmt::format("{}  {}  instance {}  version {}\n", sensor.node(),
                       sensor.connected() ? "connected" : "disconnected", sensor.sensor_instance(),
                       sensor.status().version().empty() ? "-" : sensor.status().version());
    out += fmt::format(
        "  connected since {}  last seen {}  last seq {}  batches {}  records {}  "
        "duplicate batches {}\n",
        TimeOrDash(sensor.connected_since_unix_nano()), TimeOrDash(sensor.last_seen_unix_nano()),
        sensor.last_seq(), sensor.batches(), sensor.records(), sensor.duplicate_batches());
    Columns probes;
    probes.Row({"PROBE", "STRATEGY", "STATE", "ERROR"});
    for (const v1::ProbeStatus& probe : sensor.status().probes()) {
      probes.Row({probe.probe(), probe.strategy().empty() ? "-" : probe.strategy(), probe.state(),
                  probe.error()});
    }
    probes.AppendTo(&out, "  ");
    // Sorted: protobuf maps iterate in no particular order.
    std::vector<std::pair<std::string, uint64_t>> counters(sensor.status().counters().begin(),
                                                           sensor.status().counters().end());
    std::sort(counters.begin(), counters.end());
    if (!counters.empty()) {
      Columns table;
      table.Row({"COUNTER", "VALUE"});
      for (const auto& [name, value] : counters) table.Row({name, std::to_string(value)});
      table.AppendTo(&out, "  ");
    }
  }
  Columns sources;
  sources.Row({"SOURCE", "INGESTED", "STORED", "CAPACITY"});
  for (const v1::SourceCounters& source : status.sources()) {
    sources.Row({source.source(), std::to_string(source.ingested()),
                 std::to_string(source.stored()), std::to_string(source.capacity())});
  }
  out += '\n';
  sources.AppendTo(&out, "");
  std::vector<std::pair<std::string, uint64_t>> dropped(status.dropped().begin(),
                                                        status.dropped().end());
  std::sort(dropped.begin(), dropped.end());
  std::string drops;
  for (const auto& [reason, count] : dropped) drops += fmt::format(" {}={}", reason, count);
  out += fmt::format("\naggregator version {}  subscribers {}  dropped:{}\n",
                     status.version().empty() ? "-" : status.version(), status.subscribers(),
                     drops.empty() ? " none" : drops);
  return out;
}

std::string StatusJson(const v1::StatusResponse& status) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto result = google::protobuf::util::MessageToJsonString(status, &json, options);
  if (!result.ok()) return "{\"error\":\"cannot print status as JSON\"}\n";
  return json + "\n";
}

}  // namespace nodescope::cli
