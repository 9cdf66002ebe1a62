// ebpf-conntrack's parts of the records: dst_nat_ip/dst_nat_port on netflow and httpflow, and the
// conntrack record of one DNAT'ed entry.
#include <gtest/gtest.h>

#include "aggregator/ingest/convert.h"
#include "aggregator/ingest/convert_testing.h"
#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using namespace testing;

using records::FindField;
using records::FindTag;

TEST(ConvertNat, NetflowAndHttpflowCarryTheTranslationAfterTheTupleTags) {
  Fixture f;
  f.Extra("dst_nat_ip", "spoofed");  // the event's own tag wins
  v1::Event netflow;
  SetCurlTuple(netflow.mutable_netflow());
  netflow.mutable_netflow()->set_dst_nat_ip(Bytes({198, 18, 1, 2}));
  netflow.mutable_netflow()->set_dst_nat_port(8080);
  v1::Event http;
  SetCurlTuple(http.mutable_httpflow());
  http.mutable_httpflow()->set_method("GET");
  http.mutable_httpflow()->set_count(1);
  http.mutable_httpflow()->set_dst_nat_ip(
      Bytes({0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}));
  http.mutable_httpflow()->set_dst_nat_port(8443);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(netflow, f.context(), &out));
  ASSERT_TRUE(ConvertEvent(http, f.context(), &out));
  ASSERT_EQ(out.size(), 2u);
  std::vector<P> tags = Tags(out[0]);
  ASSERT_EQ(tags.size(), 15u);
  EXPECT_EQ(tags[12], (P{"netns", "4026531840"}));
  EXPECT_EQ(tags[13], (P{"dst_nat_ip", "198.18.1.2"}));
  EXPECT_EQ(tags[14], (P{"dst_nat_port", "8080"}));
  EXPECT_EQ(*FindTag(out[0], "dst_ip"), "198.18.0.2");  // what the client connected to
  EXPECT_EQ(*FindTag(out[1], "dst_nat_ip"), "fd00:198:18:1::2");
  EXPECT_EQ(*FindTag(out[1], "dst_nat_port"), "8443");
}

TEST(ConvertNat, NoTranslationNoTags) {
  Fixture f;
  v1::Event netflow;
  SetCurlTuple(netflow.mutable_netflow());
  v1::Event bad = netflow;
  bad.mutable_netflow()->set_dst_nat_ip("abc");  // not an address: no tag rather than a wrong one
  bad.mutable_netflow()->set_dst_nat_port(8080);
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(netflow, f.context(), &out));
  ASSERT_TRUE(ConvertEvent(bad, f.context(), &out));
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(FindTag(out[i], "dst_nat_ip"), nullptr);
    EXPECT_EQ(FindTag(out[i], "dst_nat_port"), nullptr);
  }
}

v1::Event ConntrackNew() {
  v1::Event event;
  event.set_time_unix_nano(1796049267160209380);
  v1::ConntrackEvent* c = event.mutable_conntrack();
  c->set_kind(v1::ConntrackEvent::NEW);
  c->set_netns(4026532268);
  c->set_transport(v1::NetflowEvent::TCP);
  c->set_orig_src_ip(Bytes({198, 18, 1, 1}));
  c->set_orig_src_port(40312);
  c->set_orig_dst_ip(Bytes({198, 18, 100, 1}));
  c->set_orig_dst_port(80);
  c->set_reply_src_ip(Bytes({198, 18, 1, 2}));
  c->set_reply_src_port(8080);
  c->set_reply_dst_ip(Bytes({198, 18, 1, 1}));
  c->set_reply_dst_port(40312);
  c->set_conntrack_id(3125094529);
  c->set_timestamp_ns(5'000'000'000);
  return event;
}

TEST(ConvertConntrack, NewEntryHasEveryTagAndField) {
  Fixture f;
  f.Extra("cluster", "prod");
  RecordBatch out;
  ASSERT_TRUE(ConvertEvent(ConntrackNew(), f.context(), &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(SourceOf(ConntrackNew()), "conntrack");
  const v1::Record& r = out[0];
  EXPECT_EQ(r.source(), "conntrack");
  EXPECT_EQ(r.time_unix_nano(), 1796049267160209380);
  EXPECT_EQ(Tags(r), (std::vector<P>{{"host", "node-1"},
                                     {"netns", "4026532268"},
                                     {"transport", "tcp"},
                                     {"family", "IPv4"},
                                     {"src_ip", "198.18.1.1"},
                                     {"src_port", "40312"},
                                     {"dst_ip", "198.18.100.1"},
                                     {"dst_port", "80"},
                                     {"dst_nat_ip", "198.18.1.2"},
                                     {"dst_nat_port", "8080"},
                                     {"cluster", "prod"}}));
  EXPECT_EQ(records::ToJsonLine(r).substr(records::ToJsonLine(r).find("\"fields\"")),
            R"("fields":{"event":"new","conntrack_id":3125094529,"reply_dst_ip":"198.18.1.1",)"
            R"("reply_dst_port":40312}})"
            "\n");
}

TEST(ConvertConntrack, KindsAndMalformedEvents) {
  Fixture f;
  for (auto [kind, name] : {std::pair{v1::ConntrackEvent::DESTROY, "destroy"},
                            std::pair{v1::ConntrackEvent::EXISTING, "existing"}}) {
    v1::Event e = ConntrackNew();
    e.mutable_conntrack()->set_kind(kind);
    RecordBatch out;
    ASSERT_TRUE(ConvertEvent(e, f.context(), &out));
    EXPECT_EQ(FindField(out[0], "event")->string_value(), name);
  }
  v1::Event unspecified = ConntrackNew();
  unspecified.mutable_conntrack()->set_kind(v1::ConntrackEvent::KIND_UNSPECIFIED);
  v1::Event bad_ip = ConntrackNew();
  bad_ip.mutable_conntrack()->set_reply_src_ip("12345");
  RecordBatch out;
  EXPECT_FALSE(ConvertEvent(unspecified, f.context(), &out));
  EXPECT_FALSE(ConvertEvent(bad_ip, f.context(), &out));
  EXPECT_EQ(out.size(), 0u);
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
