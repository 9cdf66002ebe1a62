#include "aggregator/ingest/convert.h"

namespace nodescope::aggregator::ingest {

namespace {
constexpr std::string_view kProcessSource = "process";
}  // namespace

std::string_view SourceOf(const v1::Event& event) {
  switch (event.payload_case()) {
    case v1::Event::kProcess:
      return kProcessSource;
    case v1::Event::PAYLOAD_NOT_SET:
      break;
  }
  return {};
}

std::string_view ProcessEventName(v1::ProcessEvent::Kind kind) {
  switch (kind) {
    case v1::ProcessEvent::EXEC:
      return "exec";
    case v1::ProcessEvent::FORK:
      return "fork";
    case v1::ProcessEvent::EXIT:
      return "exit";
    default:
      return {};
  }
}

void AppendExtraTags(const google::protobuf::RepeatedPtrField<v1::Tag>& extra_tags,
                     RecordWriter* writer) {
  for (const v1::Tag& extra : extra_tags) {
    if (!writer->HasTag(extra.key())) writer->Tag(extra.key(), extra.value());
  }
}

bool ConvertProcess(const v1::ProcessEvent& event, int64_t time_unix_nano,
                    const BatchContext& context, RecordBatch* out) {
  std::string_view name = ProcessEventName(event.kind());
  if (name.empty()) return false;
  RecordWriter b(out, kProcessSource, time_unix_nano, context.node);
  b.Tag("host", context.node);
  b.Tag("pid", uint64_t{event.pid()});
  b.Tag("ppid", uint64_t{event.ppid()});
  b.Tag("process_name", event.process_name());
  b.Tag("user", event.user());
  b.Tag("cgroup_id", uint64_t{event.cgroup_id()});
  AppendExtraTags(context.extra_tags, &b);

  b.Field("event", name);
  if (!event.filename().empty()) b.Field("filename", event.filename());
  if (event.kind() == v1::ProcessEvent::EXIT) {
    b.Field("exit_code", int64_t{event.exit_code()});
    if (event.signal() != 0) b.Field("signal", int64_t{event.signal()});
    // duration_ns is unsigned on the wire; a lifetime beyond int64 (292 years) is not real.
    b.Field("duration", static_cast<int64_t>(event.duration_ns()));
  }
  return true;
}

bool ConvertEvent(const v1::Event& event, const BatchContext& context, RecordBatch* out) {
  switch (event.payload_case()) {
    case v1::Event::kProcess:
      return ConvertProcess(event.process(), event.time_unix_nano(), context, out);
    case v1::Event::PAYLOAD_NOT_SET:
      break;
  }
  return false;
}

}  // namespace nodescope::aggregator::ingest
