#include "sensor/plugins/netflow/flow_table.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <span>

namespace nodescope::sensor::netflow {
namespace {

// Counters only grow; a smaller reading means the entry was replaced behind our back (an LRU
// eviction and a new socket at the same address), and there is nothing true to report.
uint64_t Delta(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

NatQuery QueryOf(const ns_conn& conn, uint64_t end_ns) {
  NatQuery q;
  q.netns = conn.netns;
  q.protocol = conn.protocol;
  q.src = StoredAddress(conn.saddr);
  q.dst = StoredAddress(conn.daddr);
  q.src_port = conn.sport;
  q.dst_port = conn.dport;
  q.start_ns = conn.start_ns;
  q.end_ns = end_ns;
  q.handshake_seen = !(conn.flags & NS_CONN_PREEXISTING);
  return q;
}

}  // namespace

FlowTable::FlowTable(Options options) : options_(std::move(options)) {}

void FlowTable::BeginWalk() { ++walk_; }

void FlowTable::Observe(const ns_conn_key& sk, const ns_conn& conn) { Account(sk, conn, false, 0); }

void FlowTable::Closed(const ns_conn_key& sk, const ns_conn& conn, uint64_t end_ns) {
  Account(sk, conn, true, end_ns);
}

void FlowTable::EndWalk() {
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (it->second.walk != walk_) {
      ++counters_.vanished;
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
}

void FlowTable::Decide(SocketState& state, const ns_conn& conn) {
  state.direction = conn.direction;
  if (state.direction == NS_CONN_DIR_UNKNOWN) {
    bool incoming = options_.has_listener ? options_.has_listener(conn)
                                          : conn.sport < options_.ephemeral_port &&
                                                conn.dport >= options_.ephemeral_port;
    state.direction = incoming ? NS_CONN_DIR_INCOMING : NS_CONN_DIR_OUTGOING;
  }
  uint16_t server_port = state.direction == NS_CONN_DIR_INCOMING ? conn.sport : conn.dport;
  if (options_.filter != nullptr) {
    net::IpAddress remote = StoredAddress(conn.daddr);
    std::string name = options_.remote_name ? options_.remote_name(remote) : std::string();
    state.allowed = options_.filter->Allows(server_port, remote, name);
  }
  if (!state.allowed) ++counters_.filtered;
  state.decided = true;
}

FlowTable::Key FlowTable::KeyOf(const SocketState& state, const ns_conn& conn) const {
  Key key;
  key.protocol = conn.protocol;
  key.direction = state.direction;
  key.src = StoredAddress(conn.saddr);
  key.dst = StoredAddress(conn.daddr);
  key.src_port = conn.sport;
  key.dst_port = conn.dport;
  FoldEphemeral(&key, options_.ephemeral_port);
  bool pid_known = conn.flags & NS_CONN_PID_SET;
  key.pid = pid_known ? conn.pid : 0;
  key.netns = conn.netns;
  if (pid_known) key.process_name = CommText(conn.comm);
  if (state.nat) {
    key.nat_dst = state.nat->ip;
    key.nat_dst_port = state.nat->port;
  }
  return key;
}

void FlowTable::ResolveNat(SocketState& state, const ns_conn& conn, uint64_t end_ns) {
  if (!options_.nat || state.nat || state.direction != NS_CONN_DIR_OUTGOING) return;
  state.nat = options_.nat(QueryOf(conn, end_ns));
}

void FlowTable::Account(const ns_conn_key& sk, const ns_conn& conn, bool closed, uint64_t end_ns) {
  auto it = sockets_.find(sk);
  if (it != sockets_.end() && it->second.start_ns != conn.start_ns) {
    // The address was reused by a new socket while the old one's close was lost.
    ++counters_.vanished;
    sockets_.erase(it);
    it = sockets_.end();
  }
  if (it == sockets_.end()) {
    SocketState fresh;
    fresh.start_ns = conn.start_ns;
    fresh.udp = conn.protocol == IPPROTO_UDP;
    it = sockets_.emplace(sk, fresh).first;
  }
  SocketState& state = it->second;
  state.walk = walk_;
  // The port of a connecting socket is chosen after SYN_SENT; decide once it is known.
  if (!state.decided && (conn.sport != 0 || closed)) Decide(state, conn);

  const bool tcp = conn.protocol == IPPROTO_TCP;
  uint64_t retrans_now =
      conn.total_retrans >= conn.retrans_base ? conn.total_retrans - conn.retrans_base : 0;
  uint64_t d_read = Delta(conn.bytes_read, state.bytes_read);
  uint64_t d_written = Delta(conn.bytes_written, state.bytes_written);
  uint64_t d_retrans = tcp ? Delta(retrans_now, state.retrans) : 0;
  bool newly_established = tcp && (conn.flags & NS_CONN_ESTABLISHED) && !state.established_counted;
  bool was_connection = tcp && (conn.flags & (NS_CONN_ESTABLISHED | NS_CONN_PREEXISTING));
  bool count_close = closed && was_connection;

  state.bytes_read = std::max(state.bytes_read, uint64_t{conn.bytes_read});
  state.bytes_written = std::max(state.bytes_written, uint64_t{conn.bytes_written});
  state.retrans = std::max(state.retrans, retrans_now);
  if (newly_established) state.established_counted = true;

  bool active = d_read || d_written || d_retrans || newly_established || count_close;
  if (active) state.changed_this_interval = true;
  if (active && state.decided && state.allowed) {
    // The DNAT join, per connection before its port is folded away; a closed socket whose
    // translation is not known yet waits apart for Flush, where it is looked up again.
    ResolveNat(state, conn, closed ? end_ns : 0);
    const bool unresolved =
        closed && options_.nat && !state.nat && state.direction == NS_CONN_DIR_OUTGOING;
    if (unresolved && unresolved_.size() >= options_.max_unresolved) {
      ++counters_.nat_unresolved_full;
    }
    Totals* slot;
    if (unresolved && unresolved_.size() < options_.max_unresolved) {
      slot = &unresolved_.emplace_back(Unresolved{KeyOf(state, conn), QueryOf(conn, end_ns), {}})
                  .totals;
    } else {
      slot = &interval_[KeyOf(state, conn)];
    }
    Totals& t = *slot;
    t.bytes_read += d_read;
    t.bytes_written += d_written;
    t.retransmits += d_retrans;
    // One RTT sample and one connection per socket and interval, however often it is read.
    if (!state.in_interval) {
      if (tcp && conn.srtt_us > 0) {
        t.rtt_sum += conn.srtt_us;
        t.rtt_var_sum += conn.mdev_us;
        ++t.rtt_samples;
      }
      ++t.connections;
      state.in_interval = true;
    }
    t.established += newly_established ? 1 : 0;
    t.closed += count_close ? 1 : 0;
    t.cgroup_id = conn.cgroup_id;
  }
  if (closed) sockets_.erase(sk);
}

std::vector<ns_conn_key> FlowTable::IdleUdp() const {
  std::vector<ns_conn_key> idle;
  for (const auto& [sk, state] : sockets_) {
    if (state.udp && state.idle_intervals >= options_.udp_idle_intervals && state.walk == walk_) {
      idle.push_back(sk);
    }
  }
  return idle;
}

std::vector<v1::NetflowEvent> FlowTable::Flush(int64_t interval_ns) {
  for (Unresolved& u : unresolved_) {
    if (std::optional<NatTarget> nat = options_.nat(u.query)) {
      u.key.nat_dst = nat->ip;
      u.key.nat_dst_port = nat->port;
    }
    interval_[u.key].Add(u.totals);
  }
  unresolved_.clear();
  for (auto& [sk, state] : sockets_) {
    state.idle_intervals = state.changed_this_interval ? 0 : state.idle_intervals + 1;
    state.changed_this_interval = false;
    state.in_interval = false;
  }
  std::vector<v1::NetflowEvent> out;
  out.reserve(interval_.size());
  for (const auto& [key, t] : interval_) {
    v1::NetflowEvent& e = out.emplace_back();
    SetTuple(key, &e);
    SetNat(key, &e);
    if (options_.services != nullptr) {
      uint16_t server_port = key.direction == NS_CONN_DIR_INCOMING ? key.src_port : key.dst_port;
      e.set_dst_service_name(
          std::string(options_.services->Name(server_port, key.protocol == IPPROTO_UDP)));
    }
    e.set_bytes_read(t.bytes_read);
    e.set_bytes_written(t.bytes_written);
    e.set_retransmits(t.retransmits);
    if (t.rtt_samples > 0) {
      e.set_rtt_us(t.rtt_sum / t.rtt_samples);
      e.set_rtt_var_us(t.rtt_var_sum / t.rtt_samples);
    }
    e.set_tcp_established(t.established);
    e.set_tcp_closed(t.closed);
    e.set_connections(t.connections);
    e.set_cgroup_id(t.cgroup_id);
    e.set_interval_ns(interval_ns);
  }
  interval_.clear();
  return out;
}

}  // namespace nodescope::sensor::netflow
