// How the CLI prints records, lost-record notices and the aggregator's status.
#pragma once

#include <cstdint>
#include <string>

#include "nodescope/v1/observer.pb.h"

namespace nodescope::cli {

// RFC 3339 in the local time zone with milliseconds: 2025-11-22T10:00:00.123+01:00.
std::string FormatTime(int64_t unix_nano);

std::string TableHeader();
// One table row: time, source, host, then every other tag and field as key=value.
void AppendTableLine(const v1::Record& record, std::string* out);

// "lost 123 process records (slow subscriber)", for stderr.
std::string LostLine(const v1::LostEvents& lost);

std::string StatusTable(const v1::StatusResponse& status);
// One line of JSON (proto3 JSON mapping, field names as in the .proto).
std::string StatusJson(const v1::StatusResponse& status);

}  // namespace nodescope::cli
