// The part of an aggregation key that netflow, httpflow and dnsflow records share: the socket's
// tuple with the client's ephemeral port folded, and its process. One definition, so the three
// record kinds of one connection always agree on src/dst, direction and folding.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "bpf/abi/l7.h"
#include "bpf/abi/netflow.h"
#include "common/net/ip.h"
#include "nodescope/v1/events.pb.h"

namespace nodescope::sensor::netflow {

struct FlowTuple {
  uint8_t protocol = 0;   // IPPROTO_TCP or IPPROTO_UDP
  uint8_t direction = 0;  // ns_conn_direction, resolved (never UNKNOWN)
  net::IpAddress src, dst;
  uint16_t src_port = 0, dst_port = 0;  // 0: folded
  uint32_t pid = 0, netns = 0;          // pid 0: no process known
  std::string process_name;
  // Where DNAT sent an outgoing connection (ebpf-conntrack); port 0: no translation. Part of the
  // key: connections to one service address that reached different backends stay apart.
  net::IpAddress nat_dst;
  uint16_t nat_dst_port = 0;
  auto operator<=>(const FlowTuple&) const = default;
};

// The DNAT join (ebpf-conntrack, sensor/plugins/conntrack): one connection's full tuple, before
// its ephemeral port is folded, and its lifetime on the probe's clock (bpf_ktime_get_ns).
struct NatQuery {
  uint32_t netns = 0;
  uint8_t protocol = 0;
  net::IpAddress src, dst;  // local, remote (the address the client connected to)
  uint16_t src_port = 0, dst_port = 0;
  uint64_t start_ns = 0;       // when the probe first saw the socket
  uint64_t end_ns = 0;         // when it closed; 0: open
  bool handshake_seen = true;  // false: first seen mid-life (older than the probe)
};

struct NatTarget {
  net::IpAddress ip;
  uint16_t port = 0;
};

// The translation of one connection, or nullopt. Called from the netflow thread.
using NatLookup = std::function<std::optional<NatTarget>(const NatQuery&)>;

template <typename Event>
void SetNat(const FlowTuple& t, Event* e) {
  if (t.nat_dst_port == 0) return;
  auto raw = t.nat_dst.Raw();
  e->set_dst_nat_ip(std::string(raw.begin(), raw.end()));
  e->set_dst_nat_port(t.nat_dst_port);
}

// One connection's payload stream: the socket's address and when the probe first saw the
// connection. A socket address is reused as soon as its socket is freed, and the close of the
// old socket (from softirq, on any CPU's ring) can reach user space after the first events of a
// new one at the same address: the start tells the two apart.
struct StreamId {
  uint64_t sk = 0;        // low bit set: a TLS connection's plaintext (netflow_plugin.cc)
  uint64_t start_ns = 0;  // ns_l7_event.conn_start_ns
  bool operator==(const StreamId&) const = default;
  static StreamId Of(const ns_l7_event& event) { return {event.sk, event.conn_start_ns}; }
};

struct StreamIdHash {
  size_t operator()(const StreamId& id) const {
    return std::hash<uint64_t>()(id.sk ^ (id.start_ns * 0x9E3779B97F4A7C15ull));
  }
};

// 16 bytes as the probes store addresses; a v4-mapped one (every IPv4 socket) becomes IPv4.
inline net::IpAddress StoredAddress(const uint8_t (&raw)[16]) {
  return *net::IpAddress::FromBytes(std::span<const uint8_t>(raw, 16));
}

// A NUL-padded comm of the probes.
inline std::string CommText(const uint8_t (&comm)[NS_TASK_COMM_LEN]) {
  return std::string(reinterpret_cast<const char*>(comm),
                     strnlen(reinterpret_cast<const char*>(comm), NS_TASK_COMM_LEN));
}

// The client's port says nothing about the service and changes with every connection: the side
// that connected (outgoing) folds its own port, the accepting side (incoming) the remote one.
inline void FoldEphemeral(FlowTuple* t, uint16_t ephemeral_port) {
  if (t->direction == NS_CONN_DIR_OUTGOING && t->src_port >= ephemeral_port) t->src_port = 0;
  if (t->direction == NS_CONN_DIR_INCOMING && t->dst_port >= ephemeral_port) t->dst_port = 0;
}

// The tuple of a payload event, as the side with `direction` (ns_conn_direction) sees it,
// ephemeral port folded.
inline FlowTuple TupleOf(const ns_l7_event& e, uint8_t direction, uint16_t ephemeral_port) {
  FlowTuple t;
  t.protocol = e.protocol;
  t.direction = direction;
  t.src = StoredAddress(e.saddr);
  t.dst = StoredAddress(e.daddr);
  t.src_port = e.sport;
  t.dst_port = e.dport;
  t.pid = e.pid;
  t.netns = e.netns;
  t.process_name = CommText(e.comm);
  FoldEphemeral(&t, ephemeral_port);
  return t;
}

// Fills the tuple fields, which NetflowEvent, HttpflowEvent and DnsflowEvent name alike.
template <typename Event>
void SetTuple(const FlowTuple& t, Event* e) {
  e->set_transport(t.protocol == IPPROTO_TCP ? v1::NetflowEvent::TCP : v1::NetflowEvent::UDP);
  e->set_direction(t.direction == NS_CONN_DIR_INCOMING ? v1::NetflowEvent::INCOMING
                                                       : v1::NetflowEvent::OUTGOING);
  auto src = t.src.Raw();
  auto dst = t.dst.Raw();
  e->set_src_ip(std::string(src.begin(), src.end()));
  e->set_dst_ip(std::string(dst.begin(), dst.end()));
  e->set_src_port(t.src_port);
  e->set_dst_port(t.dst_port);
  e->set_pid(t.pid);
  e->set_process_name(t.process_name);
  e->set_netns(t.netns);
}

}  // namespace nodescope::sensor::netflow
