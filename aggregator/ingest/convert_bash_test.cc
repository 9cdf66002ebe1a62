// BashEvent -> the `bash` record of docs RECORDS.md.
#include <gtest/gtest.h>

#include "aggregator/ingest/convert.h"
#include "aggregator/ingest/convert_testing.h"
#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using namespace testing;

using records::FindField;

v1::Event BashLine(const std::string& cmd) {
  v1::Event event;
  event.set_time_unix_nano(1796048027123456789);
  v1::BashEvent* b = event.mutable_bash();
  b->set_cmd(cmd);
  b->set_pid(4321);
  b->set_ppid(4000);
  b->set_uid(1000);
  b->set_user("alice");
  b->set_tty("pts/3");
  b->set_cgroup_id(12345678901234);
  b->set_message("2026-11-30T14:13:47.123456Z alice 4321 " + cmd);
  return event;
}

TEST(ConvertBash, TheRecordOfRecordsMd) {
  Fixture f;
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(BashLine("ls -la /tmp"), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(SourceOf(BashLine("x")), "bash");
  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "bash");
  EXPECT_EQ(r.time_unix_nano(), 1796048027123456789);
  EXPECT_EQ(r.host(), "node-1");
  EXPECT_EQ(Tags(r), (std::vector<P>{{"host", "node-1"}}));
  ASSERT_EQ(r.fields_size(), 8);
  EXPECT_EQ(FindField(r, "cmd")->string_value(), "ls -la /tmp");
  EXPECT_EQ(FindField(r, "message")->string_value(),
            "2026-11-30T14:13:47.123456Z alice 4321 ls -la /tmp");
  EXPECT_EQ(FindField(r, "pid")->string_value(), "4321");
  EXPECT_EQ(FindField(r, "user")->string_value(), "alice");
  EXPECT_EQ(FindField(r, "ppid")->string_value(), "4000");
  EXPECT_EQ(FindField(r, "tty")->string_value(), "pts/3");
  EXPECT_EQ(FindField(r, "cgroup_id")->string_value(), "12345678901234");
  EXPECT_FALSE(FindField(r, "truncated")->bool_value());
}

TEST(ConvertBash, Utf8KeptInvalidBytesReplacedTruncatedMarked) {
  Fixture f;
  v1::Event utf8 = BashLine("echo h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac");
  v1::Event bad = BashLine("echo \xff\xfe!");
  bad.mutable_bash()->set_truncated(true);
  bad.mutable_bash()->clear_tty();
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(utf8, f.context(), &out));
  ASSERT_TRUE(ConvertEvent(bad, f.context(), &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(FindField(out[0], "cmd")->string_value(),
            "echo h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac");
  EXPECT_EQ(FindField(out[1], "cmd")->string_value(), "echo \xef\xbf\xbd\xef\xbf\xbd!");
  EXPECT_TRUE(FindField(out[1], "truncated")->bool_value());
  EXPECT_EQ(FindField(out[1], "tty"), nullptr);  // no controlling terminal
}

TEST(ConvertBash, ExtraTagsComeAfterHostAndNeverOverrideIt) {
  Fixture f;
  f.Extra("cluster", "c1");
  f.Extra("host", "other");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(BashLine("id"), f.context(), &out));
  EXPECT_EQ(Tags(out[0]), (std::vector<P>{{"host", "node-1"}, {"cluster", "c1"}}));
}

TEST(ConvertBash, LinesOfFourKibKeepEveryByte) {
  Fixture f;
  const std::string line = ": " + std::string(4094, 'x');
  v1::Event event = BashLine(line);
  event.mutable_bash()->set_truncated(true);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_NE(FindField(out[0], "cmd"), nullptr);
  EXPECT_EQ(FindField(out[0], "cmd")->string_value(), line);
  EXPECT_EQ(FindField(out[0], "message")->string_value(),
            "2026-11-30T14:13:47.123456Z alice 4321 " + line);
  EXPECT_EQ(records::ToJsonLine(out[0]).size() > 2 * line.size(), true);
}

TEST(ConvertBash, AnEmptyLineIsNoRecord) {
  Fixture f;
  RecordBatch out;
  EXPECT_FALSE(ConvertEvent(BashLine(""), f.context(), &out));
  EXPECT_EQ(out.size(), 0u);
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
