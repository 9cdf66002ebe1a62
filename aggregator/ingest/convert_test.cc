#include "aggregator/ingest/convert.h"

#include <gtest/gtest.h>

#include "aggregator/ingest/convert_testing.h"
#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using namespace testing;

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

// curl (pid 3121) on 127.0.0.1 fetching from 198.18.0.2:80, ephemeral source port folded.
v1::Event NetflowEvent() {
  v1::Event event;
  event.set_time_unix_nano(1763776000123456789);
  v1::NetflowEvent* n = event.mutable_netflow();
  SetCurlTuple(n);
  n->set_bytes_read(10'485'760 + 238);
  n->set_bytes_written(77);
  n->set_retransmits(3);
  n->set_rtt_us(412);
  n->set_rtt_var_us(97);
  n->set_tcp_established(2);
  n->set_tcp_closed(1);
  n->set_connections(2);
  n->set_cgroup_id(8412);
  n->set_interval_ns(60'000'000'000);
  return event;
}

std::string V4Mapped(int a, int b, int c, int d) {
  return Bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d});
}

TEST(ConvertNetflow, OutgoingTcpHasEveryTagAndField) {
  Fixture f;
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(NetflowEvent(), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "netflow");
  EXPECT_EQ(out.source(0), "netflow");
  EXPECT_EQ(r.time_unix_nano(), 1763776000123456789);
  EXPECT_EQ(r.host(), "node-1");
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(Tags(r), (std::vector<P>{{"host", "node-1"},
                                     {"direction", "outgoing"},
                                     {"src_ip", "127.0.0.1"},
                                     {"dst_ip", "198.18.0.2"},
                                     {"src_port", "*"},
                                     {"dst_port", "80"},
                                     {"src_ip_type", "private"},
                                     {"dst_ip_type", "other"},
                                     {"family", "IPv4"},
                                     {"transport", "tcp"},
                                     {"pid", "3121"},
                                     {"process_name", "curl"},
                                     {"netns", "4026531840"}}));
  const std::vector<std::pair<std::string, int64_t>> fields = {{"bytes_read", 10'485'998},
                                                               {"bytes_written", 77},
                                                               {"retransmits", 3},
                                                               {"rtt", 412},
                                                               {"rtt_var", 97},
                                                               {"tcp_established", 2},
                                                               {"tcp_closed", 1}};
  ASSERT_EQ(r.fields_size(), static_cast<int>(fields.size()));
  for (int i = 0; i < r.fields_size(); ++i) {
    SCOPED_TRACE(fields[i].first);
    EXPECT_EQ(r.fields(i).key(), fields[i].first);
    EXPECT_EQ(r.fields(i).value_case(), v1::Field::kIntValue);
    EXPECT_EQ(r.fields(i).int_value(), fields[i].second);
  }
}

TEST(ConvertNetflow, IncomingV4MappedIsShownAsIpv4) {
  Fixture f;
  v1::Event event = NetflowEvent();
  v1::NetflowEvent* n = event.mutable_netflow();
  n->set_direction(v1::NetflowEvent::INCOMING);
  n->set_src_ip(V4Mapped(127, 0, 0, 1));
  n->set_dst_ip(V4Mapped(127, 0, 0, 1));
  n->set_src_port(8080);
  n->set_dst_port(0);
  n->set_process_name("nginx");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  const v1::Record& r = out[0];
  EXPECT_EQ(*FindTag(r, "direction"), "incoming");
  EXPECT_EQ(*FindTag(r, "src_ip"), "127.0.0.1");
  EXPECT_EQ(*FindTag(r, "dst_ip"), "127.0.0.1");
  EXPECT_EQ(*FindTag(r, "src_port"), "8080");
  EXPECT_EQ(*FindTag(r, "dst_port"), "*");
  EXPECT_EQ(*FindTag(r, "family"), "IPv4");
  EXPECT_EQ(*FindTag(r, "process_name"), "nginx");
}

TEST(ConvertNetflow, Ipv6WithoutPidWithServiceName) {
  Fixture f;
  v1::Event event = NetflowEvent();
  v1::NetflowEvent* n = event.mutable_netflow();
  // fd00:198:18::1 -> fd00:198:18::2
  n->set_src_ip(Bytes({0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  n->set_dst_ip(Bytes({0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));
  n->set_dst_port(443);
  n->set_pid(0);
  n->set_process_name("");
  n->set_dst_service_name("https");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(Tags(out[0]), (std::vector<P>{{"host", "node-1"},
                                          {"direction", "outgoing"},
                                          {"src_ip", "fd00:198:18::1"},
                                          {"dst_ip", "fd00:198:18::2"},
                                          {"src_port", "*"},
                                          {"dst_port", "443"},
                                          {"src_ip_type", "private"},
                                          {"dst_ip_type", "private"},
                                          {"family", "IPv6"},
                                          {"transport", "tcp"},
                                          {"process_name", ""},
                                          {"netns", "4026531840"},
                                          {"dst_service_name", "https"}}));
}

TEST(ConvertNetflow, DstDomainFollowsTheTupleTags) {
  Fixture f;
  v1::Event event = NetflowEvent();
  event.mutable_netflow()->set_dst_domain("example.test");
  event.mutable_netflow()->set_dst_service_name("http");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  const std::vector<std::pair<std::string, std::string>> tags = Tags(out[0]);
  ASSERT_EQ(tags.size(), 15u);
  EXPECT_EQ(tags[12].first, "netns");
  EXPECT_EQ(tags[13], (std::pair<std::string, std::string>{"dst_domain", "example.test"}));
  EXPECT_EQ(tags[14].first, "dst_service_name");
}

TEST(ConvertNetflow, UdpToMulticastFromWildcardV6Socket) {
  Fixture f;
  v1::Event event = NetflowEvent();
  v1::NetflowEvent* n = event.mutable_netflow();
  n->set_transport(v1::NetflowEvent::UDP);
  // An unconnected dual-stack socket still bound to :: sending to 224.0.0.251 (mDNS).
  n->set_src_ip(std::string(16, '\0'));
  n->set_dst_ip(V4Mapped(224, 0, 0, 251));
  n->set_src_port(5353);
  n->set_dst_port(5353);
  n->set_rtt_us(0);
  n->set_rtt_var_us(0);
  n->set_retransmits(0);
  n->set_tcp_established(0);
  n->set_tcp_closed(0);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  const v1::Record& r = out[0];
  EXPECT_EQ(*FindTag(r, "transport"), "udp");
  EXPECT_EQ(*FindTag(r, "src_ip"), "::");
  EXPECT_EQ(*FindTag(r, "dst_ip"), "224.0.0.251");
  EXPECT_EQ(*FindTag(r, "dst_ip_type"), "multicast");
  EXPECT_EQ(*FindTag(r, "family"), "IPv4");
  EXPECT_EQ(FindField(r, "rtt")->int_value(), 0);
  EXPECT_EQ(FindField(r, "tcp_established")->int_value(), 0);
  EXPECT_EQ(r.fields_size(), 7);
}

TEST(ConvertNetflow, JsonLineWithExtraTagsThatNeverOverride) {
  Fixture f;
  for (auto [k, v] : {std::pair{"cluster", "prod"}, std::pair{"direction", "spoofed"},
                      std::pair{"src_ip", "1.1.1.1"}}) {
    v1::Tag* t = f.extra.Add();
    t->set_key(k);
    t->set_value(v);
  }
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(NetflowEvent(), f.context(), &out));
  EXPECT_EQ(records::ToJsonLine(out[0]),
            R"({"source":"netflow","time":1763776000123456789,"host":"node-1","tags":{)"
            R"("host":"node-1","direction":"outgoing","src_ip":"127.0.0.1",)"
            R"("dst_ip":"198.18.0.2","src_port":"*","dst_port":"80","src_ip_type":"private",)"
            R"("dst_ip_type":"other","family":"IPv4","transport":"tcp","pid":"3121",)"
            R"("process_name":"curl","netns":"4026531840","cluster":"prod"},"fields":{)"
            R"("bytes_read":10485998,"bytes_written":77,"retransmits":3,"rtt":412,)"
            R"("rtt_var":97,"tcp_established":2,"tcp_closed":1}})"
            "\n");
}

TEST(ConvertNetflow, InvalidProcessNameBytesBecomeReplacementCharacters) {
  Fixture f;
  v1::Event event = NetflowEvent();
  event.mutable_netflow()->set_process_name("w\xffrk");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  EXPECT_EQ(*FindTag(out[0], "process_name"), "w\xEF\xBF\xBDrk");
}

TEST(ConvertNetflow, CountersBeyondInt64Saturate) {
  Fixture f;
  v1::Event event = NetflowEvent();
  event.mutable_netflow()->set_bytes_read(UINT64_MAX);
  event.mutable_netflow()->set_bytes_written(uint64_t{1} << 63);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  EXPECT_EQ(FindField(out[0], "bytes_read")->int_value(), INT64_MAX);
  EXPECT_EQ(FindField(out[0], "bytes_written")->int_value(), INT64_MAX);
}

TEST(ConvertNetflow, MalformedEventsAppendNothing) {
  Fixture f;
  std::vector<v1::Event> bad(6, NetflowEvent());
  bad[0].mutable_netflow()->set_src_ip(Bytes({127, 0, 0, 1, 9}));
  bad[1].mutable_netflow()->clear_dst_ip();
  bad[2].mutable_netflow()->set_dst_ip(std::string(15, '\1'));
  bad[3].mutable_netflow()->set_transport(v1::NetflowEvent::TRANSPORT_UNSPECIFIED);
  bad[4].mutable_netflow()->set_direction(v1::NetflowEvent::DIRECTION_UNSPECIFIED);
  // A value a newer sensor might send (e.g. a third transport).
  bad[5].mutable_netflow()->set_transport(static_cast<v1::NetflowEvent::Transport>(3));
  RecordBatch out;
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_FALSE(ConvertEvent(bad[i], f.context(), &out));
    EXPECT_EQ(out.size(), 0u);
  }
  // The batch is still usable: a good event after the bad ones is the only record.
  ASSERT_TRUE(ConvertEvent(NetflowEvent(), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(*FindTag(out[0], "dst_port"), "80");
  EXPECT_EQ(NetflowFamily(bad[0].netflow()), "");
  EXPECT_EQ(NetflowFamily(NetflowEvent().netflow()), "IPv4");
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
  EXPECT_EQ(SourceOf(NetflowEvent()), "netflow");
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
