// Sensor events -> records. One function per event type; a plugin adds its event to events.proto,
// a ConvertX here and a case in ConvertEvent.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <string>
#include <string_view>

#include "aggregator/record_batch.h"
#include "nodescope/v1/events.pb.h"
#include "nodescope/v1/records.pb.h"

namespace nodescope::aggregator::ingest {

// What every record of one sensor batch shares.
struct BatchContext {
  const std::string& node;
  const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags;
};

// The record source an event becomes ("process", ...), or "" for an event this aggregator does
// not know (a newer sensor).
std::string_view SourceOf(const v1::Event& event);

// Appends the record(s) of `event` to `out`. False when the event is not understood.
bool ConvertEvent(const v1::Event& event, const BatchContext& context, RecordBatch* out);

// Appends the record of a process lifecycle event. False (nothing appended) when the kind is
// unspecified.
bool ConvertProcess(const v1::ProcessEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out);

// "exec", "fork", "exit"; "" for KIND_UNSPECIFIED.
std::string_view ProcessEventName(v1::ProcessEvent::Kind kind);

// Appends the sensor's configured tags except those the record already has: a configured tag
// never overrides host or a tag the event itself carries.
void AppendExtraTags(const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags,
                     RecordWriter* writer);

}  // namespace nodescope::aggregator::ingest
