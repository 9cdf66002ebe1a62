// Payload events of DNS sockets -> per-interval dnsflow records, and the address -> name cache
// that gives netflow and httpflow records their dst_domain. Messages come whole from UDP events
// and reassembled from TCP ones (sensor/protocols/dns); queries are matched with answers per
// socket tuple, unanswered ones become rcode -1 after the timeout. Free of libbpf.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/abi/l7.h"
#include "common/net/ip.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/plugins/netflow/flow_tuple.h"
#include "sensor/protocols/dns/domain_cache.h"
#include "sensor/protocols/dns/matcher.h"
#include "sensor/protocols/dns/parser.h"

namespace nodescope::sensor::netflow {

class DnsTable {
 public:
  struct Options {
    uint16_t ephemeral_port = 32768;
    uint64_t timeout_ns = 5'000'000'000;  // a query unanswered this long counts as rcode -1
    size_t max_tcp_streams = 4096;
    dns::DomainCacheOptions cache;
  };

  struct Counters {
    uint64_t messages = 0;   // parsed
    uint64_t malformed = 0;  // payloads on a DNS port that did not parse, TCP streams that failed
    uint64_t timed_out = 0;  // queries without an answer within the timeout
    uint64_t unmatched_answers = 0;
    uint64_t uncaptured = 0;  // UDP messages whose bytes the probe could not copy
  };

  explicit DnsTable(Options options);

  void OnEvent(const ns_l7_event& event, std::span<const uint8_t> captured);
  // A TCP connection closed: its streams are forgotten (a DNS TCP connection is short).
  void OnClose(const ns_l7_event& close);

  // Expires queries older than the timeout at `now_ns` (bpf_ktime_get_ns's clock) and returns
  // the interval's records (dst_domain empty).
  std::vector<v1::DnsflowEvent> Flush(int64_t interval_ns, uint64_t now_ns);

  // The name the DNS answers seen on this node gave for `address`, while their TTL lasts.
  std::optional<std::string> DomainOf(const net::IpAddress& address, uint64_t now_ns);

  Counters counters() const;
  const std::string& last_error() const { return last_error_; }

 private:
  // Who used a tuple last: DNS results carry the tuple, records the process.
  struct Proc {
    uint32_t pid = 0, netns = 0;
    std::string process_name;
    uint64_t cgroup_id = 0, last_ts = 0;
  };
  struct Key {
    FlowTuple tuple;
    int rcode = 0;
    auto operator<=>(const Key&) const = default;
  };
  struct Totals {
    uint64_t count = 0, answered = 0, latency_sum = 0, latency_max = 0, cgroup_id = 0;
  };

  void OnMessage(const ns_l7_event& event, const dns::Tuple& tuple, std::span<const uint8_t> bytes,
                 size_t real_len);
  void Account(const dns::QueryResult& result);
  static std::string TupleId(const dns::Tuple& tuple);

  Options options_;
  dns::Matcher matcher_;
  dns::DomainCache cache_;
  std::unordered_map<StreamId, std::array<dns::TcpStream, 2>, StreamIdHash> tcp_;  // [direction]
  std::unordered_map<std::string, Proc> procs_;                      // by TupleId
  std::map<Key, Totals> interval_;
  Counters counters_;
  std::string last_error_;
};

}  // namespace nodescope::sensor::netflow
