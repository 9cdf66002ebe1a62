// httpflow and dnsflow records (convert_test.cc has process and netflow).
#include <gtest/gtest.h>

#include "aggregator/ingest/convert.h"
#include "aggregator/ingest/convert_testing.h"
#include "common/records/latency.h"
#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using namespace testing;

using records::FindField;
using records::FindTag;

// Three GETs by curl (pid 3121) from 127.0.0.1 to example.test (198.18.0.2:80), ephemeral
// source port folded.
v1::Event HttpflowEvent() {
  v1::Event event;
  event.set_time_unix_nano(1763776000123456789);
  v1::HttpflowEvent* h = event.mutable_httpflow();
  SetCurlTuple(h);
  h->set_dst_domain("example.test");
  h->set_cgroup_id(8412);
  h->set_method("GET");
  h->set_path("/index.html");
  h->set_truncated(false);
  h->set_http_version("1.1");
  h->set_status_code(200);
  h->set_count(3);
  h->set_bytes_read(3 * 853);
  h->set_bytes_written(3 * 77);
  h->set_latency_ns(412'000);
  h->set_latency_max_ns(900'000);
  for (size_t i = 0; i < records::kLatencyBuckets; ++i) h->add_latency_buckets(i == 2 ? 3 : 0);
  h->set_interval_ns(60'000'000'000);
  return event;
}

// systemd-resolved (pid 611) on fd00:198:18::1 asking fd00:198:18::53 over UDP: an NXDOMAIN.
v1::Event DnsflowEvent() {
  v1::Event event;
  event.set_time_unix_nano(1763776000123456789);
  v1::DnsflowEvent* d = event.mutable_dnsflow();
  d->set_transport(v1::NetflowEvent::UDP);
  d->set_direction(v1::NetflowEvent::OUTGOING);
  d->set_src_ip(Bytes({0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  d->set_dst_ip(Bytes({0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53}));
  d->set_src_port(0);
  d->set_dst_port(53);
  d->set_pid(611);
  d->set_process_name("systemd-resolve");
  d->set_netns(4026531840);
  d->set_cgroup_id(8412);
  d->set_rcode(3);
  d->set_count(4);
  d->set_latency_ns(1'250'000);
  d->set_latency_max_ns(2'000'000);
  d->set_interval_ns(60'000'000'000);
  return event;
}

TEST(ConvertHttpflow, OutgoingHasEveryTagAndField) {
  Fixture f;
  f.Extra("cluster", "prod");
  f.Extra("method", "spoofed");  // a tag name that is a field here: still a tag, still added
  f.Extra("dst_domain", "spoofed");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(HttpflowEvent(), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "httpflow");
  EXPECT_EQ(out.source(0), "httpflow");
  EXPECT_EQ(SourceOf(HttpflowEvent()), "httpflow");
  EXPECT_EQ(r.time_unix_nano(), 1763776000123456789);
  EXPECT_EQ(r.host(), "node-1");
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
                                     {"netns", "4026531840"},
                                     {"dst_domain", "example.test"},
                                     {"cluster", "prod"},
                                     {"method", "spoofed"}}));
  EXPECT_EQ(records::ToJsonLine(r).substr(records::ToJsonLine(r).find("\"fields\"")),
            R"("fields":{"bytes_read":2559,"bytes_written":231,"count":3,"http_version":"1.1",)"
            R"("latency":412000,"method":"GET","path":"/index.html","status_code":200,)"
            R"("truncated":false}})"
            "\n");
  ASSERT_EQ(r.fields_size(), 9);
  EXPECT_EQ(FindField(r, "count")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(r, "latency")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(r, "status_code")->value_case(), v1::Field::kIntValue);
  EXPECT_EQ(FindField(r, "truncated")->value_case(), v1::Field::kBoolValue);
  EXPECT_EQ(FindField(r, "method")->value_case(), v1::Field::kStringValue);
  EXPECT_EQ(FindField(r, "http_version")->value_case(), v1::Field::kStringValue);
}

TEST(ConvertHttpflow, IncomingServerSideWithoutPidOrDomainAndATruncatedPath) {
  Fixture f;
  v1::Event event = HttpflowEvent();
  v1::HttpflowEvent* h = event.mutable_httpflow();
  h->set_direction(v1::NetflowEvent::INCOMING);
  h->set_src_port(80);
  h->set_dst_port(0);
  h->set_pid(0);
  h->set_process_name("");
  h->clear_dst_domain();
  h->set_truncated(true);
  h->set_http_version("1.0");
  h->set_status_code(404);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(event, f.context(), &out));
  const v1::Record& r = out[0];
  EXPECT_EQ(*FindTag(r, "direction"), "incoming");
  EXPECT_EQ(*FindTag(r, "src_port"), "80");
  EXPECT_EQ(*FindTag(r, "dst_port"), "*");
  EXPECT_EQ(FindTag(r, "pid"), nullptr);
  EXPECT_EQ(FindTag(r, "dst_domain"), nullptr);
  EXPECT_EQ(r.tags_size(), 12);
  EXPECT_TRUE(FindField(r, "truncated")->bool_value());
  EXPECT_EQ(FindField(r, "http_version")->string_value(), "1.0");
  EXPECT_EQ(FindField(r, "status_code")->int_value(), 404);
}

TEST(ConvertDnsflow, NxdomainAndTimeoutHaveEveryTagAndField) {
  Fixture f;
  f.Extra("zone", "eu-1");
  v1::Event timeout = DnsflowEvent();
  timeout.mutable_dnsflow()->set_rcode(-1);
  timeout.mutable_dnsflow()->set_count(2);
  timeout.mutable_dnsflow()->set_latency_ns(0);
  timeout.mutable_dnsflow()->set_latency_max_ns(0);
  timeout.mutable_dnsflow()->set_dst_domain("ns1.example.test");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(DnsflowEvent(), f.context(), &out));
  ASSERT_TRUE(ConvertEvent(timeout, f.context(), &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(SourceOf(timeout), "dnsflow");

  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "dnsflow");
  EXPECT_EQ(r.time_unix_nano(), 1763776000123456789);
  EXPECT_EQ(r.host(), "node-1");
  EXPECT_EQ(Tags(r), (std::vector<P>{{"host", "node-1"},
                                     {"direction", "outgoing"},
                                     {"src_ip", "fd00:198:18::1"},
                                     {"dst_ip", "fd00:198:18::53"},
                                     {"src_port", "*"},
                                     {"dst_port", "53"},
                                     {"src_ip_type", "private"},
                                     {"dst_ip_type", "private"},
                                     {"family", "IPv6"},
                                     {"transport", "udp"},
                                     {"pid", "611"},
                                     {"process_name", "systemd-resolve"},
                                     {"netns", "4026531840"},
                                     {"zone", "eu-1"}}));
  const std::vector<std::pair<std::string, int64_t>> fields = {
      {"count", 4}, {"latency", 1'250'000}, {"latency_max", 2'000'000}, {"rcode", 3}};
  ASSERT_EQ(r.fields_size(), static_cast<int>(fields.size()));
  for (int i = 0; i < r.fields_size(); ++i) {
    SCOPED_TRACE(fields[i].first);
    EXPECT_EQ(r.fields(i).key(), fields[i].first);
    EXPECT_EQ(r.fields(i).value_case(), v1::Field::kIntValue);
    EXPECT_EQ(r.fields(i).int_value(), fields[i].second);
  }

  const v1::Record& t = out[1];
  EXPECT_EQ(*FindTag(t, "dst_domain"), "ns1.example.test");
  EXPECT_EQ(t.tags_size(), 15);
  EXPECT_EQ(FindField(t, "rcode")->int_value(), -1);
  EXPECT_EQ(FindField(t, "count")->int_value(), 2);
  EXPECT_EQ(FindField(t, "latency")->int_value(), 0);
  EXPECT_EQ(FindField(t, "latency_max")->int_value(), 0);
}

TEST(ConvertFlows, BadEventsAreRefusedAndBadBytesReplaced) {
  Fixture f;
  std::vector<v1::Event> bad(4, HttpflowEvent());
  bad[0].mutable_httpflow()->set_src_ip(Bytes({127, 0, 0, 1, 9}));
  bad[1].mutable_httpflow()->set_transport(v1::NetflowEvent::TRANSPORT_UNSPECIFIED);
  bad[2].mutable_httpflow()->set_direction(static_cast<v1::NetflowEvent::Direction>(7));
  bad[3].mutable_httpflow()->clear_dst_ip();
  for (int i = 0; i < 4; ++i) bad.push_back(DnsflowEvent());
  bad[4].mutable_dnsflow()->set_dst_ip(std::string(15, '\1'));
  bad[5].mutable_dnsflow()->set_transport(static_cast<v1::NetflowEvent::Transport>(3));
  bad[6].mutable_dnsflow()->set_direction(v1::NetflowEvent::DIRECTION_UNSPECIFIED);
  bad[7].mutable_dnsflow()->clear_src_ip();
  RecordBatch out;
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_FALSE(ConvertEvent(bad[i], f.context(), &out));
    EXPECT_EQ(out.size(), 0u);
  }

  // A hostile peer's method and path, and a comm that is not UTF-8: kept, made valid.
  v1::Event hostile = HttpflowEvent();
  hostile.mutable_httpflow()->set_method("G\xc3T");
  hostile.mutable_httpflow()->set_path(std::string("/a\xff\xfe/b\0c", 8));
  hostile.mutable_httpflow()->set_process_name("w\xffrk");
  ASSERT_TRUE(ConvertEvent(hostile, f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(FindField(out[0], "method")->string_value(), "G\xEF\xBF\xBDT");
  EXPECT_EQ(FindField(out[0], "path")->string_value(),
            std::string("/a\xEF\xBF\xBD\xEF\xBF\xBD/b\0c", 12));
  EXPECT_EQ(*FindTag(out[0], "process_name"), "w\xEF\xBF\xBDrk");
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
