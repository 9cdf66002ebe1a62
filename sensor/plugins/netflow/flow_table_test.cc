#include "sensor/plugins/netflow/flow_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>

namespace nodescope::sensor::netflow {
namespace {

constexpr ns_conn_key kSk1 = {0xffff888000001000, 0};
constexpr ns_conn_key kSk2 = {0xffff888000002000, 0};

ns_conn_key K(uint64_t sk) { return {sk, 0}; }

void SetV4(uint8_t (&out)[16], const char* text) {
  std::memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  ASSERT_EQ(inet_pton(AF_INET, text, out + 12), 1);
}

ns_conn Tcp(uint16_t sport, uint16_t dport, uint8_t direction, const char* comm = "curl",
            uint32_t pid = 100) {
  ns_conn c{};
  c.start_ns = 1000 + sport;
  SetV4(c.saddr, "127.0.0.1");
  SetV4(c.daddr, "127.0.0.2");
  c.sport = sport;
  c.dport = dport;
  c.family = 4;
  c.protocol = IPPROTO_TCP;
  c.direction = direction;
  c.flags = NS_CONN_ESTABLISHED | NS_CONN_PID_SET;
  c.pid = pid;
  c.netns = 4026531840;
  std::strncpy(reinterpret_cast<char*>(c.comm), comm, sizeof(c.comm));
  return c;
}

FlowTable::Options Defaults() {
  FlowTable::Options o;
  o.ephemeral_port = 32768;
  return o;
}

TEST(FlowTable, ShortConnectionsFoldIntoOneRecordWithFinalCounts) {
  FlowTable table(Defaults());
  for (uint16_t port = 40000; port < 40010; ++port) {
    ns_conn c = Tcp(port, 80, NS_CONN_DIR_OUTGOING);
    c.bytes_written = 78;
    c.bytes_read = 1024 + 250;
    c.srtt_us = 100 + (port - 40000);
    c.mdev_us = 50;
    table.Closed(K(port), c);  // opened and closed inside the interval
  }
  std::vector<v1::NetflowEvent> out = table.Flush(1'000'000'000);
  ASSERT_EQ(out.size(), 1u);
  const v1::NetflowEvent& e = out[0];
  EXPECT_EQ(e.transport(), v1::NetflowEvent::TCP);
  EXPECT_EQ(e.direction(), v1::NetflowEvent::OUTGOING);
  EXPECT_EQ(e.src_port(), 0u);  // folded
  EXPECT_EQ(e.dst_port(), 80u);
  EXPECT_EQ(e.src_ip(), std::string("\x7f\x00\x00\x01", 4));  // v4-mapped shown as IPv4
  EXPECT_EQ(e.bytes_written(), 780u);
  EXPECT_EQ(e.bytes_read(), 12740u);
  EXPECT_EQ(e.tcp_established(), 10u);
  EXPECT_EQ(e.tcp_closed(), 10u);
  EXPECT_EQ(e.connections(), 10u);
  EXPECT_EQ(e.rtt_us(), 104u);  // mean of 100..109
  EXPECT_EQ(e.rtt_var_us(), 50u);
  EXPECT_EQ(e.pid(), 100u);
  EXPECT_EQ(e.process_name(), "curl");
  EXPECT_EQ(e.interval_ns(), 1'000'000'000);
  EXPECT_TRUE(table.Flush(1).empty());  // accumulators start over
  EXPECT_EQ(table.tracked(), 0u);
}

TEST(FlowTable, LongLivedConnectionReportsDeltasAndIdleReportsNothing) {
  FlowTable table(Defaults());
  ns_conn c = Tcp(8080, 50000, NS_CONN_DIR_INCOMING, "server");
  c.bytes_read = 100;
  c.bytes_written = 1000;
  table.BeginWalk();
  table.Observe(kSk1, c);
  table.EndWalk();
  auto first = table.Flush(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].direction(), v1::NetflowEvent::INCOMING);
  EXPECT_EQ(first[0].src_port(), 8080u);
  EXPECT_EQ(first[0].dst_port(), 0u);  // the client's ephemeral port
  EXPECT_EQ(first[0].bytes_read(), 100u);
  EXPECT_EQ(first[0].tcp_established(), 1u);
  EXPECT_EQ(first[0].tcp_closed(), 0u);

  c.bytes_read = 150;
  c.bytes_written = 3000;
  c.total_retrans = 2;
  table.BeginWalk();
  table.Observe(kSk1, c);
  table.EndWalk();
  auto second = table.Flush(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].bytes_read(), 50u);
  EXPECT_EQ(second[0].bytes_written(), 2000u);
  EXPECT_EQ(second[0].retransmits(), 2u);
  EXPECT_EQ(second[0].tcp_established(), 0u);  // counted once, in the first interval

  table.BeginWalk();
  table.Observe(kSk1, c);  // no change
  table.EndWalk();
  EXPECT_TRUE(table.Flush(1).empty());

  c.bytes_written = 3500;
  table.Closed(kSk1, c);
  auto last = table.Flush(1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].bytes_written(), 500u);
  EXPECT_EQ(last[0].tcp_closed(), 1u);
  EXPECT_EQ(table.tracked(), 0u);
}

TEST(FlowTable, ObservedThenClosedInOneIntervalCountsOnce) {
  FlowTable table(Defaults());
  ns_conn c = Tcp(41000, 80, NS_CONN_DIR_OUTGOING);
  c.bytes_read = 10;
  table.BeginWalk();
  table.Observe(kSk1, c);
  table.EndWalk();
  c.bytes_read = 25;
  table.Closed(kSk1, c);
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes_read(), 25u);
  EXPECT_EQ(out[0].connections(), 1u);
  EXPECT_EQ(out[0].tcp_established(), 1u);
  EXPECT_EQ(out[0].tcp_closed(), 1u);
}

TEST(FlowTable, PreexistingConnectionCountsFromFirstSightAndUsesListeners) {
  FlowTable::Options o = Defaults();
  o.has_listener = [](const ns_conn& c) { return c.sport == 6379; };
  FlowTable table(std::move(o));
  ns_conn c = Tcp(6379, 45000, NS_CONN_DIR_UNKNOWN, "redis-server");
  c.flags = NS_CONN_PREEXISTING | NS_CONN_PID_SET;
  c.total_retrans = 7;
  c.retrans_base = 7;  // retransmitted before the sensor started: not this interval's
  c.bytes_written = 64;
  table.BeginWalk();
  table.Observe(kSk1, c);
  table.EndWalk();
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].direction(), v1::NetflowEvent::INCOMING);
  EXPECT_EQ(out[0].bytes_written(), 64u);
  EXPECT_EQ(out[0].retransmits(), 0u);
  EXPECT_EQ(out[0].tcp_established(), 0u);  // it was established before we looked
  c.bytes_written = 100;
  table.Closed(kSk1, c);
  out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes_written(), 36u);
  EXPECT_EQ(out[0].tcp_closed(), 1u);
}

TEST(FlowTable, VanishedSocketsAreCountedAndReusedAddressesStartOver) {
  FlowTable table(Defaults());
  ns_conn a = Tcp(41000, 80, NS_CONN_DIR_OUTGOING);
  a.bytes_read = 500;
  table.BeginWalk();
  table.Observe(kSk1, a);
  table.Observe(kSk2, Tcp(41001, 80, NS_CONN_DIR_OUTGOING));
  table.EndWalk();
  table.Flush(1);

  // kSk2 left the map without a close (LRU eviction); kSk1's address now holds a new socket.
  ns_conn b = Tcp(41002, 80, NS_CONN_DIR_OUTGOING);
  b.bytes_read = 20;
  table.BeginWalk();
  table.Observe(kSk1, b);
  table.EndWalk();
  EXPECT_EQ(table.counters().vanished, 2u);
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes_read(), 20u);  // not 20 - 500
  EXPECT_EQ(out[0].tcp_established(), 1u);
}

TEST(FlowTable, UdpDirectionPortsAndIdleExpiry) {
  FlowTable table(Defaults());
  ns_conn c = Tcp(45678, 53, NS_CONN_DIR_OUTGOING, "dig");
  c.protocol = IPPROTO_UDP;
  c.flags = NS_CONN_PID_SET;
  c.bytes_written = 40;
  c.bytes_read = 120;
  table.BeginWalk();
  table.Observe(kSk1, c);
  table.EndWalk();
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].transport(), v1::NetflowEvent::UDP);
  EXPECT_EQ(out[0].tcp_established(), 0u);
  EXPECT_EQ(out[0].rtt_us(), 0u);
  EXPECT_TRUE(table.IdleUdp().empty());
  for (int i = 0; i < 2; ++i) {
    table.BeginWalk();
    table.Observe(kSk1, c);
    table.EndWalk();
    table.Flush(1);
  }
  ASSERT_EQ(table.IdleUdp().size(), 1u);
  EXPECT_EQ(table.IdleUdp()[0].sk, kSk1.sk);
  c.bytes_read = 130;  // arrived between the last walk and the delete
  table.Closed(kSk1, c);
  out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes_read(), 10u);
  EXPECT_EQ(out[0].tcp_closed(), 0u);
  EXPECT_EQ(table.tracked(), 0u);
}

TEST(FlowTable, KeysSeparateProcessesDirectionsAndPorts) {
  FlowTable table(Defaults());
  ns_conn curl = Tcp(40000, 80, NS_CONN_DIR_OUTGOING, "curl", 10);
  ns_conn wget = Tcp(40001, 80, NS_CONN_DIR_OUTGOING, "wget", 11);
  ns_conn other_port = Tcp(40002, 443, NS_CONN_DIR_OUTGOING, "curl", 10);
  ns_conn low_port = Tcp(1023, 80, NS_CONN_DIR_OUTGOING, "curl", 10);  // below ephemeral: kept
  for (ns_conn* c : {&curl, &wget, &other_port, &low_port}) c->bytes_read = 1;
  table.Closed(K(1), curl);
  table.Closed(K(2), wget);
  table.Closed(K(3), other_port);
  table.Closed(K(4), low_port);
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 4u);
  bool saw_low = false;
  for (const auto& e : out) saw_low |= e.src_port() == 1023u;
  EXPECT_TRUE(saw_low);
}

TEST(FlowTable, UnknownPidIsReportedWithoutName) {
  FlowTable table(Defaults());
  ns_conn c = Tcp(80, 50000, NS_CONN_DIR_INCOMING);
  c.flags = NS_CONN_ESTABLISHED;  // accepted, never read or written by a process yet
  c.pid = 0;
  table.Closed(kSk1, c);
  auto out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid(), 0u);
  EXPECT_EQ(out[0].process_name(), "");
  EXPECT_EQ(out[0].tcp_established(), 1u);
  EXPECT_EQ(out[0].tcp_closed(), 1u);
}

TEST(FlowTable, FailedConnectWithoutTrafficIsNotARecord) {
  FlowTable table(Defaults());
  ns_conn c = Tcp(40000, 9, NS_CONN_DIR_OUTGOING);
  c.flags = NS_CONN_PID_SET;  // SYN_SENT -> CLOSE: refused
  table.Closed(kSk1, c);
  EXPECT_TRUE(table.Flush(1).empty());
}

}  // namespace
}  // namespace nodescope::sensor::netflow
