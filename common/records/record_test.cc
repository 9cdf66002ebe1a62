#include "common/records/record.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace nodescope::records {
namespace {

v1::Record ProcessRecord() {
  v1::Record r;
  r.set_source("process");
  r.set_time_unix_nano(1763776000123456789);
  r.set_host("node-1");
  AddTag(&r, "host", "node-1");
  AddTag(&r, "pid", "4242");
  AddTag(&r, "process_name", "true");
  AddField(&r, "event", "exit");
  AddField(&r, "exit_code", 0);
  AddField(&r, "duration", int64_t{1500000});
  AddField(&r, "truncated", false);
  AddField(&r, "ratio", 0.25);
  return r;
}

TEST(RecordJson, ExactForm) {
  EXPECT_EQ(ToJsonLine(ProcessRecord()),
            R"({"source":"process","time":1763776000123456789,"host":"node-1",)"
            R"("tags":{"host":"node-1","pid":"4242","process_name":"true"},)"
            R"("fields":{"event":"exit","exit_code":0,"duration":1500000,"truncated":false,)"
            R"("ratio":0.25}})"
            "\n");
}

TEST(RecordJson, EmptyTagsAndFields) {
  v1::Record r;
  r.set_source("x");
  EXPECT_EQ(ToJsonLine(r), R"({"source":"x","time":0,"host":"","tags":{},"fields":{}})"
                           "\n");
}

TEST(RecordJson, EscapesQuotesBackslashesAndControls) {
  v1::Record r;
  r.set_source("s");
  AddTag(&r, "path",
         "a\"b\\c\nd\te\x01"
         "f");
  EXPECT_EQ(ToJsonLine(r),
            R"({"source":"s","time":0,"host":"","tags":{"path":"a\"b\\c\nd\te\u0001f"},)"
            R"("fields":{}})"
            "\n");
}

TEST(RecordJson, KeepsValidUtf8AndReplacesInvalidBytes) {
  v1::Record r;
  r.set_source("s");
  AddTag(&r, "ok", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  // A lone continuation byte, a truncated 3-byte sequence, an overlong '/' and a surrogate.
  AddTag(&r, "bad",
         "a\x80"
         "b\xE2\x82"
         "c\xC0\xAF"
         "d\xED\xA0\x80");
  std::string line = ToJsonLine(r);
  EXPECT_NE(line.find("\"ok\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""), std::string::npos);
  const std::string r3 = "\xEF\xBF\xBD";
  EXPECT_NE(
      line.find("\"bad\":\"a" + r3 + "b" + r3 + r3 + "c" + r3 + r3 + "d" + r3 + r3 + r3 + "\""),
      std::string::npos)
      << line;
  // Whatever the input, the line parses as JSON.
  auto back = FromJsonLine(line);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*FindTag(*back, "ok"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(RecordJson, FloatsStayFloats) {
  v1::Record r;
  r.set_source("s");
  AddField(&r, "whole", 3.0);
  AddField(&r, "tiny", 1e-300);
  AddField(&r, "nan", std::numeric_limits<double>::quiet_NaN());
  AddField(&r, "neg", int64_t{-7});
  std::string line = ToJsonLine(r);
  EXPECT_NE(line.find(R"("whole":3.0,"tiny":1e-300,"nan":null,"neg":-7)"), std::string::npos)
      << line;
  auto back = FromJsonLine(line);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(FindField(*back, "whole")->value_case(), v1::Field::kFloatValue);
  EXPECT_EQ(FindField(*back, "whole")->float_value(), 3.0);
  EXPECT_EQ(FindField(*back, "tiny")->float_value(), 1e-300);
  EXPECT_TRUE(std::isnan(FindField(*back, "nan")->float_value()));
  EXPECT_EQ(FindField(*back, "neg")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(*back, "neg")->int_value(), -7);
}

TEST(RecordJson, RoundTripKeepsOrderAndTypes) {
  v1::Record r = ProcessRecord();
  AddField(&r, "big", std::numeric_limits<int64_t>::max());
  AddField(&r, "small", std::numeric_limits<int64_t>::min());
  AddField(&r, "pi", 3.141592653589793);
  auto back = FromJsonLine(ToJsonLine(r));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString()) << back->DebugString();
}

TEST(RecordJson, FromJsonRejectsBadInput) {
  EXPECT_FALSE(FromJsonLine("not json").ok());
  EXPECT_FALSE(FromJsonLine("[1]").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","time":"1"})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","time":1.5})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","time":18446744073709551615})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","tags":{"a":1}})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","fields":{"a":[1]}})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","fields":{"a":18446744073709551615}})").ok());
  EXPECT_FALSE(FromJsonLine(R"({"source":"s","extra":1})").ok());
  auto bad_tag = FromJsonLine(R"({"source":"s","tags":{"pid":42}})");
  EXPECT_EQ(bad_tag.status().message(), "record json: tag 'pid' is not a string");
}

TEST(RecordBuilders, FindTagAndField) {
  v1::Record r = ProcessRecord();
  ASSERT_NE(FindTag(r, "pid"), nullptr);
  EXPECT_EQ(*FindTag(r, "pid"), "4242");
  EXPECT_EQ(FindTag(r, "nope"), nullptr);
  ASSERT_NE(FindField(r, "exit_code"), nullptr);
  EXPECT_EQ(FindField(r, "exit_code")->int_value(), 0);
  EXPECT_EQ(FindField(r, "event")->string_value(), "exit");
  EXPECT_EQ(FindField(r, "truncated")->value_case(), v1::Field::kBoolValue);
  EXPECT_EQ(FindField(r, "nope"), nullptr);
}

}  // namespace
}  // namespace nodescope::records

namespace nodescope::records {
namespace {

TEST(ValidUtf8, ValidTextIsReturnedAsIs) {
  std::string scratch;
  for (std::string_view text : {std::string_view(""), std::string_view("/usr/bin/ls"),
                                std::string_view("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80")}) {
    std::string_view out = ValidUtf8(text, &scratch);
    EXPECT_EQ(out.data(), text.data()) << "no copy for valid text";
    EXPECT_EQ(out, text);
  }
}

TEST(ValidUtf8, EachInvalidByteBecomesOneReplacement) {
  std::string scratch;
  EXPECT_EQ(ValidUtf8("/tmp/\xff\xfe-bad", &scratch), "/tmp/\xEF\xBF\xBD\xEF\xBF\xBD-bad");
  // A truncated sequence at the end, an overlong form, a surrogate: all invalid.
  EXPECT_EQ(ValidUtf8("a\xC3", &scratch), "a\xEF\xBF\xBD");
  EXPECT_EQ(ValidUtf8("\xC0\xAF", &scratch), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80", &scratch), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Valid sequences after an invalid byte are kept.
  EXPECT_EQ(ValidUtf8("\xff\xC3\xA9", &scratch), "\xEF\xBF\xBD\xC3\xA9");
}

}  // namespace
}  // namespace nodescope::records
