#include "cli/output.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "common/records/record.h"

namespace nodescope::cli {
namespace {

class WithTimeZone {
 public:
  explicit WithTimeZone(const char* tz) {
    setenv("TZ", tz, 1);
    tzset();
  }
  ~WithTimeZone() {
    unsetenv("TZ");
    tzset();
  }
};

constexpr int64_t kTime = 1'763'776'000'123'456'789;  // 2025-11-22T01:46:40.123456789Z

TEST(FormatTimeTest, LocalTimeWithMillisecondsAndOffset) {
  {
    WithTimeZone utc("UTC0");
    EXPECT_EQ(FormatTime(kTime), "2025-11-22T01:46:40.123+00:00");
  }
  {
    // POSIX TZ strings count west of Greenwich as positive: this zone is UTC+05:30.
    WithTimeZone india("IST-5:30");
    EXPECT_EQ(FormatTime(kTime), "2025-11-22T07:16:40.123+05:30");
  }
  {
    WithTimeZone west("ABC3");
    EXPECT_EQ(FormatTime(kTime), "2025-11-21T22:46:40.123-03:00");
  }
}

TEST(TableTest, RowHasTimeSourceHostThenTagsAndFields) {
  WithTimeZone utc("UTC0");
  v1::Record record;
  record.set_source("process");
  record.set_time_unix_nano(kTime);
  record.set_host("node-1");
  records::AddTag(&record, "host", "node-1");
  records::AddTag(&record, "pid", "4242");
  records::AddTag(&record, "process_name", "my proc");
  records::AddTag(&record, "user", "");
  records::AddField(&record, "event", "exit");
  records::AddField(&record, "exit_code", int64_t{137});
  records::AddField(&record, "truncated", true);
  records::AddField(&record, "ratio", 0.5);
  records::AddField(&record, "message", "say \"hi\"\n");
  std::string line;
  AppendTableLine(record, &line);
  EXPECT_EQ(line,
            "2025-11-22T01:46:40.123+00:00 process   node-1        pid=4242 "
            "process_name=\"my proc\" user=\"\" event=exit exit_code=137 truncated=true "
            "ratio=0.5 message=\"say \\\"hi\\\"\\n\"\n");
  EXPECT_EQ(TableHeader(), "TIME                          SOURCE    HOST          DETAILS\n");
}

TEST(LostLineTest, SaysHowManyAndWhy) {
  v1::LostEvents lost;
  lost.set_reason(v1::LostEvents::SLOW_SUBSCRIBER);
  lost.set_count(123);
  EXPECT_EQ(LostLine(lost), "lost 123 records (slow subscriber)");
  lost.set_reason(v1::LostEvents::HISTORY_OVERWRITTEN);
  lost.set_source("process");
  lost.set_count(7);
  EXPECT_EQ(LostLine(lost), "lost 7 process records (history overwritten)");
  lost.Clear();
  lost.set_reason(v1::LostEvents::SENSOR_DROPPED);
  lost.set_count(5);
  lost.set_host("node-2");
  lost.set_sensor_reason("ringbuf_full");
  lost.set_probe("l7");
  EXPECT_EQ(LostLine(lost), "lost 5 events on node-2 (ringbuf_full in probe l7)");
  lost.clear_probe();
  lost.set_sensor_reason("buffer_full");
  EXPECT_EQ(LostLine(lost), "lost 5 events on node-2 (buffer_full)");
}

v1::StatusResponse SampleStatus() {
  v1::StatusResponse status;
  status.set_version("0.1.0");
  status.set_subscribers(2);
  (*status.mutable_dropped())["slow_subscriber"] = 5;
  v1::SensorInfo* sensor = status.add_sensors();
  sensor->set_node("node-a");
  sensor->set_sensor_instance("0123abcd");
  sensor->set_connected(true);
  sensor->set_connected_since_unix_nano(kTime);
  sensor->set_last_seen_unix_nano(kTime + 2'000'000'000);
  sensor->set_last_seq(12);
  sensor->set_batches(13);
  sensor->set_records(6144);
  sensor->set_duplicate_batches(1);
  sensor->mutable_status()->set_version("0.1.0");
  v1::ProbeStatus* probe = sensor->mutable_status()->add_probes();
  probe->set_probe("process");
  probe->set_strategy("tracepoint");
  probe->set_state("attached");
  (*sensor->mutable_status()->mutable_counters())["events_total"] = 6144;
  (*sensor->mutable_status()->mutable_counters())["dropped_total{reason=\"buffer_full\"}"] = 0;
  v1::SourceCounters* source = status.add_sources();
  source->set_source("process");
  source->set_ingested(6144);
  source->set_stored(6144);
  source->set_capacity(65536);
  return status;
}

TEST(StatusTest, Table) {
  WithTimeZone utc("UTC0");
  EXPECT_EQ(StatusTable(SampleStatus()),
            "node-a  connected  instance 0123abcd  version 0.1.0\n"
            "  connected since 2025-11-22T01:46:40.123+00:00  last seen "
            "2025-11-22T01:46:42.123+00:00  last seq 12  batches 13  records 6144  duplicate "
            "batches 1\n"
            "  PROBE    STRATEGY    STATE     ERROR\n"
            "  process  tracepoint  attached\n"
            "  COUNTER                              VALUE\n"
            "  dropped_total{reason=\"buffer_full\"}  0\n"
            "  events_total                         6144\n"
            "\n"
            "SOURCE   INGESTED  STORED  CAPACITY\n"
            "process  6144      6144    65536\n"
            "\n"
            "aggregator version 0.1.0  subscribers 2  dropped: slow_subscriber=5\n");
}

TEST(StatusTest, TableWithoutSensors) {
  v1::StatusResponse status;
  EXPECT_EQ(StatusTable(status).rfind("no sensors have connected\n", 0), 0u);
}

TEST(StatusTest, JsonIsOneLineThatParsesBack) {
  const v1::StatusResponse status = SampleStatus();
  const std::string json = StatusJson(status);
  ASSERT_FALSE(json.empty());
  EXPECT_EQ(json.find('\n'), json.size() - 1);
  EXPECT_NE(json.find("\"sensor_instance\":\"0123abcd\""), std::string::npos) << json;
  v1::StatusResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, status));
}

}  // namespace
}  // namespace nodescope::cli
