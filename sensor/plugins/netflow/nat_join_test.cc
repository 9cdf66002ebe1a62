// The DNAT join of ebpf-conntrack inside the netflow tables: per connection, before the
// ephemeral port is folded, with the NAT target part of the key; a late translation is found at
// the flush. The lookup is a map here: its rules are TranslationTable's, tested beside it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <map>
#include <tuple>

#include "sensor/plugins/netflow/flow_table.h"
#include "sensor/plugins/netflow/http_table.h"

namespace nodescope::sensor::netflow {
namespace {

void SetV4(uint8_t (&out)[16], const char* text) {
  std::memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  ASSERT_EQ(inet_pton(AF_INET, text, out + 12), 1);
}

net::IpAddress Ip(const char* text) { return *net::IpAddress::Parse(text); }

// Translations by the client's port: what conntrack would say of each connection.
struct FakeNat {
  std::map<uint16_t, NatTarget> by_port;
  std::vector<NatQuery> queries;
  NatLookup Lookup() {
    return [this](const NatQuery& q) -> std::optional<NatTarget> {
      queries.push_back(q);
      auto it = by_port.find(q.src_port);
      if (it == by_port.end()) return std::nullopt;
      return it->second;
    };
  }
};

ns_conn ToService(uint16_t sport) {
  ns_conn c{};
  c.start_ns = 5000 + sport;
  SetV4(c.saddr, "198.18.1.1");
  SetV4(c.daddr, "198.18.100.1");
  c.sport = sport;
  c.dport = 80;
  c.family = 4;
  c.protocol = IPPROTO_TCP;
  c.direction = NS_CONN_DIR_OUTGOING;
  c.flags = NS_CONN_ESTABLISHED | NS_CONN_PID_SET;
  c.pid = 100;
  c.netns = 4026532100;
  std::strncpy(reinterpret_cast<char*>(c.comm), "curl", sizeof(c.comm));
  c.bytes_written = 78;
  c.bytes_read = 1000;
  return c;
}

std::map<std::string, uint64_t> ClosedByTarget(const std::vector<v1::NetflowEvent>& out) {
  std::map<std::string, uint64_t> m;
  for (const auto& e : out) {
    std::string target = "none";
    if (e.dst_nat_port() != 0) {
      auto ip = net::IpAddress::FromBytes(std::span(
          reinterpret_cast<const uint8_t*>(e.dst_nat_ip().data()), e.dst_nat_ip().size()));
      target = ip->ToString() + ":" + std::to_string(e.dst_nat_port());
    }
    EXPECT_EQ(e.src_port(), 0u);  // still folded
    m[target] += e.tcp_closed();
  }
  return m;
}

TEST(NatJoin, ConnectionsToOneServiceThatReachedDifferentBackendsStayApart) {
  FakeNat nat;
  nat.by_port[40000] = {Ip("198.18.1.2"), 8080};
  nat.by_port[40001] = {Ip("198.18.1.3"), 8080};
  nat.by_port[40002] = {Ip("198.18.1.2"), 8080};
  FlowTable::Options o;
  o.ephemeral_port = 32768;
  o.nat = nat.Lookup();
  FlowTable table(o);
  for (uint16_t p : {40000, 40001, 40002, 40003}) table.Closed({p, 0}, ToService(p), 9000 + p);
  std::map<std::string, uint64_t> closed = ClosedByTarget(table.Flush(1));
  EXPECT_EQ(closed, (std::map<std::string, uint64_t>{
                        {"198.18.1.2:8080", 2}, {"198.18.1.3:8080", 1}, {"none", 1}}));
  // Each lookup had the full tuple, the socket's start and its end.
  ASSERT_FALSE(nat.queries.empty());
  const NatQuery& q = nat.queries.front();
  EXPECT_EQ(q.src.ToString(), "198.18.1.1");
  EXPECT_EQ(q.dst.ToString(), "198.18.100.1");
  EXPECT_EQ(q.src_port, 40000);
  EXPECT_EQ(q.dst_port, 80);
  EXPECT_EQ(q.netns, 4026532100u);
  EXPECT_EQ(q.start_ns, 45000u);
  EXPECT_EQ(q.end_ns, 49000u);
  EXPECT_TRUE(q.handshake_seen);
}

TEST(NatJoin, TranslationReadAfterTheCloseIsFoundAtTheFlush) {
  FakeNat nat;
  FlowTable::Options o;
  o.nat = nat.Lookup();
  FlowTable table(o);
  table.Closed({40000, 0}, ToService(40000), 9);
  nat.by_port[40000] = {Ip("198.18.1.2"), 8080};  // the NEW event is read now
  EXPECT_EQ(ClosedByTarget(table.Flush(1)),
            (std::map<std::string, uint64_t>{{"198.18.1.2:8080", 1}}));
}

TEST(NatJoin, LiveConnectionIsResolvedAtTheNextWalkAndKeepsItsTarget) {
  FakeNat nat;
  FlowTable::Options o;
  o.nat = nat.Lookup();
  FlowTable table(o);
  ns_conn c = ToService(40000);
  table.BeginWalk();
  table.Observe({40000, 0}, c);
  table.EndWalk();
  EXPECT_EQ(table.Flush(1).at(0).dst_nat_port(), 0u);  // not known yet: reported as is
  nat.by_port[40000] = {Ip("198.18.1.2"), 8080};
  c.bytes_read += 10;
  table.BeginWalk();
  table.Observe({40000, 0}, c);
  table.EndWalk();
  std::vector<v1::NetflowEvent> out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dst_nat_port(), 8080u);
  // Found once, kept: a later change of the rule is not this connection's.
  nat.by_port[40000] = {Ip("198.18.1.3"), 8080};
  const size_t asked = nat.queries.size();
  c.bytes_read += 10;
  table.Closed({40000, 0}, c, 99);
  out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(ClosedByTarget(out), (std::map<std::string, uint64_t>{{"198.18.1.2:8080", 1}}));
  EXPECT_EQ(nat.queries.size(), asked);
}

TEST(NatJoin, IncomingConnectionsAreNeverLookedUp) {
  FakeNat nat;
  nat.by_port[80] = {Ip("198.18.1.2"), 8080};
  FlowTable::Options o;
  o.nat = nat.Lookup();
  FlowTable table(o);
  ns_conn c = ToService(40000);
  std::swap(c.sport, c.dport);
  c.sport = 80;
  c.direction = NS_CONN_DIR_INCOMING;
  table.Closed({1, 0}, c, 9);
  std::vector<v1::NetflowEvent> out = table.Flush(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dst_nat_port(), 0u);
  EXPECT_TRUE(nat.queries.empty());
}

ns_l7_event Http(uint16_t sport, uint8_t dir, uint64_t offset, uint32_t len, uint64_t ts) {
  ns_l7_event e{};
  e.sk = 0x1000 + sport * 64ull;
  e.ts_ns = ts;
  SetV4(e.saddr, "198.18.1.1");
  SetV4(e.daddr, "198.18.100.1");
  e.sport = sport;
  e.dport = 80;
  e.pid = 100;
  e.netns = 4026532100;
  e.protocol = IPPROTO_TCP;
  e.l7 = NS_L7_HTTP;
  e.direction = dir;
  e.conn_direction = NS_CONN_DIR_OUTGOING;
  e.conn_start_ns = 7000 + sport;
  e.offset = offset;
  e.len = len;
  e.captured = len;
  std::strncpy(reinterpret_cast<char*>(e.comm), "curl", sizeof(e.comm));
  return e;
}

TEST(NatJoin, HttpExchangesCarryTheirConnectionsTarget) {
  FakeNat nat;
  nat.by_port[40000] = {Ip("198.18.1.2"), 8080};
  nat.by_port[40001] = {Ip("198.18.1.3"), 8080};
  HttpTable::Options o;
  o.nat = nat.Lookup();
  HttpTable table(o);
  const std::string req = "GET /x HTTP/1.1\r\nHost: s\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::map<uint16_t, uint64_t> sent, recv;
  for (uint16_t port : {40000, 40001, 40000}) {
    table.OnEvent(Http(port, NS_L7_SEND, sent[port], req.size(), 10), req);
    sent[port] += req.size();
    table.OnEvent(Http(port, NS_L7_RECV, recv[port], resp.size(), 20), resp);
    recv[port] += resp.size();
  }
  std::map<std::string, uint64_t> count;
  for (const auto& e : table.Flush(1)) {
    EXPECT_EQ(e.src_port(), 0u);
    count[std::to_string(e.dst_nat_port()) + "/" +
          std::to_string(static_cast<uint8_t>(e.dst_nat_ip().back()))] += e.count();
  }
  EXPECT_EQ(count, (std::map<std::string, uint64_t>{{"8080/2", 2}, {"8080/3", 1}}));
  EXPECT_EQ(nat.queries.at(0).start_ns, 47000u);
}

}  // namespace
}  // namespace nodescope::sensor::netflow
