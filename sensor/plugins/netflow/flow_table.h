// Per-socket counters -> per-interval netflow records. The BPF side keeps cumulative counters per
// socket; this table remembers what it already reported for each one, turns the next reading into
// a delta, and folds the deltas of all sockets that share an aggregation key (ephemeral port
// folded) into one NetflowEvent per interval. Kept free of libbpf so the arithmetic is tested
// without a kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bpf/abi/netflow.h"
#include "common/net/ip.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/plugins/netflow/filter.h"
#include "sensor/plugins/netflow/flow_tuple.h"

namespace nodescope::sensor::netflow {

class FlowTable {
 public:
  struct KeyHash {
    size_t operator()(const ns_conn_key& k) const {
      return std::hash<uint64_t>()(k.sk) ^ (std::hash<uint64_t>()(k.peer) * 0x9e3779b97f4a7c15ULL);
    }
  };
  struct KeyEq {
    bool operator()(const ns_conn_key& a, const ns_conn_key& b) const {
      return a.sk == b.sk && a.peer == b.peer;
    }
  };

  struct Options {
    // Ports at or above it are ephemeral: the client side's port, folded into "*".
    uint16_t ephemeral_port = 32768;
    const ConnectionFilter* filter = nullptr;  // nullptr: every connection
    const ServiceNames* services = nullptr;    // nullptr: no dst_service_name
    // A name of the remote address for the hostnames filter's patterns ("" when none known).
    std::function<std::string(const net::IpAddress&)> remote_name;
    // Direction of a TCP socket first seen mid-life (the BPF side could not tell): incoming when
    // its local port has a listener. nullptr: decided by which port is ephemeral.
    std::function<bool(const ns_conn&)> has_listener;
    // UDP sockets have no close: one unchanged for this many intervals is forgotten.
    int udp_idle_intervals = 2;
    // ebpf-conntrack's DNAT join for outgoing sockets; nullptr: no dst_nat_* in the key.
    NatLookup nat;
    // Closed outgoing sockets whose translation is not known yet, kept apart until Flush looks
    // them up again (their NEW event may still be on its way); beyond it they fold at once.
    size_t max_unresolved = 65536;
  };

  struct Counters {
    uint64_t vanished = 0;  // sockets gone from the map without a close event (LRU eviction,
                            // lost close event): their last unreported bytes are lost
    uint64_t filtered = 0;  // sockets the connection filters excluded
    uint64_t nat_unresolved_full = 0;  // closed sockets folded before a late NEW could be awaited
  };

  explicit FlowTable(Options options);

  // Sockets are identified as in the BPF map: the socket, and the peer for unconnected UDP.
  // A map walk: Begin, one Observe per live entry, then (after the close events queued so far
  // are delivered) End, which forgets sockets that left the map without a Closed().
  void BeginWalk();
  void Observe(const ns_conn_key& sk, const ns_conn& conn);
  void EndWalk();
  // A socket's final counters (TCP close, or a UDP socket dropped for idleness).
  void Closed(const ns_conn_key& sk, const ns_conn& conn, uint64_t end_ns = 0);
  // UDP sockets idle long enough to drop from the BPF map (the caller deletes them there and
  // hands the deleted value to Closed).
  std::vector<ns_conn_key> IdleUdp() const;

  // The records of the interval that ends now; the accumulators start over.
  std::vector<v1::NetflowEvent> Flush(int64_t interval_ns);

  Counters counters() const { return counters_; }
  size_t tracked() const { return sockets_.size(); }

 private:
  struct SocketState {
    uint64_t start_ns = 0;
    uint64_t bytes_read = 0;     // reported so far
    uint64_t bytes_written = 0;  // reported so far
    uint64_t retrans = 0;        // reported so far
    bool established_counted = false;
    bool allowed = true;
    bool decided = false;    // filter and direction evaluated
    uint8_t direction = 0;   // resolved ns_conn_direction
    uint64_t walk = 0;       // last walk that saw it
    int idle_intervals = 0;  // UDP: intervals without a change
    bool changed_this_interval = false;
    bool in_interval = false;  // already folded into this interval's records
    bool udp = false;
    std::optional<NatTarget> nat;  // once found, a socket's translation does not change
  };

  using Key = FlowTuple;

  struct Totals {
    uint64_t bytes_read = 0, bytes_written = 0, retransmits = 0;
    uint64_t rtt_sum = 0, rtt_var_sum = 0, rtt_samples = 0;
    uint64_t established = 0, closed = 0, connections = 0;
    uint64_t cgroup_id = 0;
    // Folds `o` in: the counters add up, the cgroup is the later one's.
    void Add(const Totals& o) {
      bytes_read += o.bytes_read;
      bytes_written += o.bytes_written;
      retransmits += o.retransmits;
      rtt_sum += o.rtt_sum;
      rtt_var_sum += o.rtt_var_sum;
      rtt_samples += o.rtt_samples;
      established += o.established;
      closed += o.closed;
      connections += o.connections;
      cgroup_id = o.cgroup_id;
    }
  };

  // A closed socket's contribution whose DNAT lookup failed when it was folded.
  struct Unresolved {
    Key key;
    NatQuery query;
    Totals totals;
  };

  void Account(const ns_conn_key& sk, const ns_conn& conn, bool closed, uint64_t end_ns);
  void Decide(SocketState& state, const ns_conn& conn);
  Key KeyOf(const SocketState& state, const ns_conn& conn) const;
  // Looks the socket's translation up unless it is known (outgoing sockets, with `nat` set).
  void ResolveNat(SocketState& state, const ns_conn& conn, uint64_t end_ns);

  Options options_;
  std::unordered_map<ns_conn_key, SocketState, KeyHash, KeyEq> sockets_;
  std::map<Key, Totals> interval_;
  std::vector<Unresolved> unresolved_;
  uint64_t walk_ = 0;
  Counters counters_;
};

}  // namespace nodescope::sensor::netflow
