#include "sensor/plugins/netflow/dns_table.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace nodescope::sensor::netflow {
namespace {

// A process gone quiet this long is forgotten; its tuple's last query has expired by then.
constexpr uint64_t kProcLingerNs = 60'000'000'000;

}  // namespace

DnsTable::DnsTable(Options options)
    : options_(options),
      matcher_(dns::MatcherOptions{.timeout_ns = options.timeout_ns}),
      cache_(options.cache) {}

std::string DnsTable::TupleId(const dns::Tuple& t) {
  std::string id(reinterpret_cast<const char*>(t.local_ip.data()), 16);
  id.append(reinterpret_cast<const char*>(t.remote_ip.data()), 16);
  id.push_back(static_cast<char>(t.local_port >> 8));
  id.push_back(static_cast<char>(t.local_port));
  id.push_back(static_cast<char>(t.remote_port >> 8));
  id.push_back(static_cast<char>(t.remote_port));
  id.push_back(static_cast<char>(t.transport));
  return id;
}

void DnsTable::OnEvent(const ns_l7_event& event, std::span<const uint8_t> captured) {
  dns::Tuple tuple;
  std::memcpy(tuple.local_ip.data(), event.saddr, 16);
  std::memcpy(tuple.remote_ip.data(), event.daddr, 16);
  tuple.local_port = event.sport;
  tuple.remote_port = event.dport;
  tuple.transport = event.protocol == IPPROTO_TCP ? dns::Transport::kTcp : dns::Transport::kUdp;
  Proc& proc = procs_[TupleId(tuple)];
  proc.pid = event.pid;
  proc.netns = event.netns;
  proc.process_name = CommText(event.comm);
  proc.cgroup_id = event.cgroup_id;
  proc.last_ts = event.ts_ns;

  if (event.protocol != IPPROTO_TCP) {
    if (event.flags & (NS_L7_NOT_COPIED | NS_L7_READ_FAILED)) {
      ++counters_.uncaptured;
      return;
    }
    OnMessage(event, tuple, captured, event.len);
    return;
  }
  const StreamId id = StreamId::Of(event);
  auto it = tcp_.find(id);
  if (it == tcp_.end()) {
    if (tcp_.size() >= options_.max_tcp_streams) tcp_.erase(tcp_.begin());
    it = tcp_.try_emplace(id).first;
  }
  dns::TcpStream& stream = it->second[event.direction == NS_L7_SEND ? 0 : 1];
  if (stream.failed()) return;
  std::vector<std::vector<uint8_t>> messages;
  if (Status s = stream.Feed(captured, event.len, &messages); !s.ok()) {
    ++counters_.malformed;
    last_error_ = s.message();
  }
  for (const std::vector<uint8_t>& m : messages) OnMessage(event, tuple, m, m.size());
}

void DnsTable::OnMessage(const ns_l7_event& event, const dns::Tuple& tuple,
                         std::span<const uint8_t> bytes, size_t real_len) {
  Result<dns::Message> message = dns::Parse(bytes, real_len);
  if (!message.ok()) {
    ++counters_.malformed;
    last_error_ = message.status().message();
    return;
  }
  ++counters_.messages;
  matcher_.OnMessage(tuple, event.direction == NS_L7_SEND, *message, event.ts_ns);
  // A resolver's answers teach names whoever reads them: a client on this node, or a local
  // resolver answering another node.
  if (message->response) cache_.Learn(*message, event.ts_ns);
}

void DnsTable::OnClose(const ns_l7_event& close) { tcp_.erase(StreamId::Of(close)); }

void DnsTable::Account(const dns::QueryResult& r) {
  Key key;
  FlowTuple& t = key.tuple;
  t.protocol = r.tuple.transport == dns::Transport::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
  t.direction =
      r.direction == dns::Direction::kOutgoing ? NS_CONN_DIR_OUTGOING : NS_CONN_DIR_INCOMING;
  t.src = *net::IpAddress::FromBytes(r.tuple.local_ip);
  t.dst = *net::IpAddress::FromBytes(r.tuple.remote_ip);
  t.src_port = r.tuple.local_port;
  t.dst_port = r.tuple.remote_port;
  uint64_t cgroup_id = 0;
  if (auto proc = procs_.find(TupleId(r.tuple)); proc != procs_.end()) {
    t.pid = proc->second.pid;
    t.netns = proc->second.netns;
    t.process_name = proc->second.process_name;
    cgroup_id = proc->second.cgroup_id;
  }
  FoldEphemeral(&t, options_.ephemeral_port);
  key.rcode = r.rcode;
  Totals& totals = interval_[key];
  ++totals.count;
  if (r.rcode >= 0) {
    ++totals.answered;
    totals.latency_sum += r.latency_ns;
    totals.latency_max = std::max(totals.latency_max, r.latency_ns);
  }
  totals.cgroup_id = cgroup_id;
}

std::vector<v1::DnsflowEvent> DnsTable::Flush(int64_t interval_ns, uint64_t now_ns) {
  matcher_.Expire(now_ns);
  for (const dns::QueryResult& r : matcher_.TakeResults()) Account(r);
  for (auto it = procs_.begin(); it != procs_.end();) {
    it = now_ns > it->second.last_ts + options_.timeout_ns + kProcLingerNs ? procs_.erase(it)
                                                                           : std::next(it);
  }
  std::vector<v1::DnsflowEvent> out;
  out.reserve(interval_.size());
  for (const auto& [key, t] : interval_) {
    v1::DnsflowEvent& e = out.emplace_back();
    SetTuple(key.tuple, &e);
    e.set_rcode(key.rcode);
    e.set_count(t.count);
    if (t.answered > 0) e.set_latency_ns(t.latency_sum / t.answered);
    e.set_latency_max_ns(t.latency_max);
    e.set_cgroup_id(t.cgroup_id);
    e.set_interval_ns(interval_ns);
  }
  interval_.clear();
  return out;
}

std::optional<std::string> DnsTable::DomainOf(const net::IpAddress& address, uint64_t now_ns) {
  return cache_.Lookup(address.Raw(), now_ns);
}

DnsTable::Counters DnsTable::counters() const {
  Counters c = counters_;
  c.timed_out = matcher_.stats().timed_out;
  c.unmatched_answers = matcher_.stats().unmatched_answers;
  return c;
}

}  // namespace nodescope::sensor::netflow
