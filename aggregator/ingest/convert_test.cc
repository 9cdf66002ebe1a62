#include "aggregator/ingest/convert.h"

#include <gtest/gtest.h>

#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using records::FindField;
using records::FindTag;

v1::Event ProcessEvent(v1::ProcessEvent::Kind kind) {
  v1::Event event;
  event.set_time_unix_nano(1763776000123456789);
  v1::ProcessEvent* p = event.mutable_process();
  p->set_kind(kind);
  p->set_pid(4242);
  p->set_ppid(1);
  p->set_process_name("true");
  p->set_user("root");
  p->set_uid(0);
  p->set_cgroup_id(12345678901234);
  p->set_filename("/usr/bin/true");
  return event;
}

struct Fixture {
  std::string node = "node-1";
  google::protobuf::RepeatedPtrField<v1::Tag> extra;
  BatchContext context() const { return {node, extra}; }
};

std::vector<std::pair<std::string, std::string>> Tags(const v1::Record& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const v1::Tag& t : r.tags()) out.emplace_back(t.key(), t.value());
  return out;
}

TEST(ConvertProcess, ExecHasEveryTagAndField) {
  Fixture f;
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(ProcessEvent(v1::ProcessEvent::EXEC), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "process");
  EXPECT_EQ(r.time_unix_nano(), 1763776000123456789);
  EXPECT_EQ(r.host(), "node-1");
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(Tags(r), (std::vector<P>{{"host", "node-1"},
                                     {"pid", "4242"},
                                     {"ppid", "1"},
                                     {"process_name", "true"},
                                     {"user", "root"},
                                     {"cgroup_id", "12345678901234"}}));
  ASSERT_EQ(r.fields_size(), 2);
  EXPECT_EQ(FindField(r, "event")->string_value(), "exec");
  EXPECT_EQ(FindField(r, "filename")->string_value(), "/usr/bin/true");
  EXPECT_EQ(FindField(r, "exit_code"), nullptr);
  EXPECT_EQ(FindField(r, "duration"), nullptr);
}

TEST(ConvertProcess, ForkWithoutFilename) {
  Fixture f;
  v1::Event event = ProcessEvent(v1::ProcessEvent::FORK);
  event.mutable_process()->clear_filename();
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  const v1::Record& r = out[0];
  ASSERT_EQ(r.fields_size(), 1);
  EXPECT_EQ(FindField(r, "event")->string_value(), "fork");
  EXPECT_EQ(FindField(r, "filename"), nullptr);
}

TEST(ConvertProcess, ExitHasCodeDurationAndSignalWhenKilled) {
  Fixture f;
  v1::Event exited = ProcessEvent(v1::ProcessEvent::EXIT);
  exited.mutable_process()->set_exit_code(3);
  exited.mutable_process()->set_duration_ns(1'500'000);
  v1::Event killed = ProcessEvent(v1::ProcessEvent::EXIT);
  killed.mutable_process()->set_exit_code(137);
  killed.mutable_process()->set_signal(9);
  killed.mutable_process()->set_duration_ns(9'000'000'000);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(exited, f.context(), &out));
  ASSERT_TRUE(ConvertEvent(killed, f.context(), &out));
  ASSERT_EQ(out.size(), 2u);

  const v1::Record& a = out[0];
  EXPECT_EQ(FindField(a, "event")->string_value(), "exit");
  EXPECT_EQ(FindField(a, "filename")->string_value(), "/usr/bin/true");
  EXPECT_EQ(FindField(a, "exit_code")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(a, "exit_code")->int_value(), 3);
  EXPECT_EQ(FindField(a, "signal"), nullptr);
  EXPECT_EQ(FindField(a, "duration")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(a, "duration")->int_value(), 1'500'000);
  EXPECT_EQ(a.fields_size(), 4);

  const v1::Record& b = out[1];
  EXPECT_EQ(FindField(b, "exit_code")->int_value(), 137);
  EXPECT_EQ(FindField(b, "signal")->int_value(), 9);
  EXPECT_EQ(FindField(b, "duration")->int_value(), 9'000'000'000);
  EXPECT_EQ(b.fields_size(), 5);
}

TEST(ConvertProcess, JsonLineOfAnExit) {
  Fixture f;
  v1::Event event = ProcessEvent(v1::ProcessEvent::EXIT);
  event.mutable_process()->set_duration_ns(42);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  EXPECT_EQ(records::ToJsonLine(out[0]),
            R"({"source":"process","time":1763776000123456789,"host":"node-1","tags":{)"
            R"("host":"node-1","pid":"4242","ppid":"1","process_name":"true","user":"root",)"
            R"("cgroup_id":"12345678901234"},"fields":{"event":"exit",)"
            R"("filename":"/usr/bin/true","exit_code":0,"duration":42}})"
            "\n");
}

TEST(ConvertProcess, ExtraTagsFollowAndNeverOverride) {
  Fixture f;
  auto add = [&](const std::string& k, const std::string& v) {
    v1::Tag* t = f.extra.Add();
    t->set_key(k);
    t->set_value(v);
  };
  add("cluster", "prod");
  add("host", "spoofed");
  add("pid", "1");
  add("zone", "eu-1");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(ProcessEvent(v1::ProcessEvent::EXEC), f.context(), &out));
  const v1::Record& r = out[0];
  using P = std::pair<std::string, std::string>;
  std::vector<P> tags = Tags(r);
  ASSERT_EQ(tags.size(), 8u);
  EXPECT_EQ(tags[0], (P{"host", "node-1"}));
  EXPECT_EQ(tags[1], (P{"pid", "4242"}));
  EXPECT_EQ(tags[6], (P{"cluster", "prod"}));
  EXPECT_EQ(tags[7], (P{"zone", "eu-1"}));
  EXPECT_EQ(r.host(), "node-1");
}

TEST(ConvertProcess, RecycledRecordsAreRewrittenWhole) {
  RecordBatchPool pool(10);
  Fixture with_tags;
  v1::Tag* t = with_tags.extra.Add();
  t->set_key("cluster");
  t->set_value("prod");
  const RecordBatch* first_address;
  {
    std::shared_ptr<RecordBatch> batch = pool.Get();
    first_address = batch.get();
    v1::Event exit = ProcessEvent(v1::ProcessEvent::EXIT);
    exit.mutable_process()->set_signal(9);
    ASSERT_TRUE(ConvertEvent(exit, with_tags.context(), batch.get()));
    ASSERT_EQ(batch->size(), 1u);
    EXPECT_EQ((*batch)[0].fields_size(), 5);
  }
  std::shared_ptr<RecordBatch> again = pool.Get();
  ASSERT_EQ(again.get(), first_address);  // the same batch, back from the pool
  EXPECT_EQ(again->size(), 0u);
  Fixture plain;
  v1::Event fork = ProcessEvent(v1::ProcessEvent::FORK);
  fork.mutable_process()->clear_filename();
  fork.mutable_process()->set_pid(7);
  ASSERT_TRUE(ConvertEvent(fork, plain.context(), again.get()));
  EXPECT_EQ(records::ToJsonLine((*again)[0]),
            R"({"source":"process","time":1763776000123456789,"host":"node-1","tags":{)"
            R"("host":"node-1","pid":"7","ppid":"1","process_name":"true","user":"root",)"
            R"("cgroup_id":"12345678901234"},"fields":{"event":"fork"}})"
            "\n");
}

TEST(ConvertEvent, UnknownAndUnspecifiedAreRefused) {
  Fixture f;
  RecordBatch out;
  v1::Event empty;
  EXPECT_FALSE(ConvertEvent(empty, f.context(), &out));
  EXPECT_EQ(SourceOf(empty), "");
  EXPECT_FALSE(ConvertEvent(ProcessEvent(v1::ProcessEvent::KIND_UNSPECIFIED), f.context(), &out));
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(SourceOf(ProcessEvent(v1::ProcessEvent::EXEC)), "process");
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
