// Pairs DNS queries with their answers on one node, for the dnsflow record: count, latency and
// rcode per query, rcode -1 when no answer came within the timeout.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sensor/protocols/dns/types.h"

namespace nodescope::sensor::dns {

// `direction` of the record model: outgoing when the local socket is the client (it sends
// queries and receives answers), incoming when it is the server (receives queries, sends answers).
enum class Direction : uint8_t { kOutgoing, kIncoming };
enum class Transport : uint8_t { kUdp, kTcp };
std::string_view DirectionName(Direction d);  // "outgoing" / "incoming"
std::string_view TransportName(Transport t);  // "udp" / "tcp"

// One socket's view of a message: local and remote as that socket sees them, IPv4 as v4-mapped
// IPv6 (the bpf/abi convention). A query and its answer pass through the same socket, so both
// carry the same tuple, not a reversed one. For an unconnected UDP socket the caller fills in the
// peer of each datagram, and a local address that is the same for the query and the answer (a
// server bound to 0.0.0.0 must not give 0.0.0.0 one way and the interface address the other).
struct Tuple {
  std::array<uint8_t, 16> local_ip{};
  std::array<uint8_t, 16> remote_ip{};
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  Transport transport = Transport::kUdp;

  bool operator==(const Tuple&) const = default;
};

// One query's outcome. Named so as not to hide nodescope::Result inside this namespace.
struct QueryResult {
  Tuple tuple;
  Direction direction = Direction::kOutgoing;
  uint16_t id = 0;
  std::string name;  // the first question's name, lower-cased (RFC 4343) for aggregation
  uint16_t qtype = 0;
  int rcode = -1;  // the answer's (extended) RCODE; -1: no answer within the timeout
  uint64_t query_ts_ns = 0;
  uint64_t latency_ns = 0;  // answer time minus query time; 0 when there was no answer
  bool truncated = false;   // the answer had TC set (the client will likely retry over TCP)
  bool evicted = false;     // given up before the timeout to stay within max_outstanding

  bool operator==(const QueryResult&) const = default;
};

struct MatcherOptions {
  // Stub resolvers retry after 5 s (glibc's RES_TIMEOUT); an answer later than that is one the
  // application has most likely stopped waiting for.
  uint64_t timeout_ns = 5'000'000'000;
  size_t max_outstanding = 16'384;
};

struct MatcherStats {
  uint64_t queries = 0;            // OnQuery calls with a new query
  uint64_t duplicate_queries = 0;  // the same query again while outstanding (a retransmission)
  uint64_t answers = 0;
  uint64_t matched = 0;
  uint64_t unmatched_answers = 0;  // no outstanding query: late, or the query was not seen
  uint64_t timed_out = 0;
  uint64_t evicted = 0;  // expired early by the max_outstanding bound
};

// Matches by (tuple, direction, id, question name case-insensitively, qtype). Not thread-safe:
// one per reader thread.
class Matcher {
 public:
  explicit Matcher(MatcherOptions options = {});

  // `query` has QR=0. A retransmission (same key while outstanding) keeps the first timestamp:
  // the latency is what the application waited.
  void OnQuery(const Tuple& tuple, Direction direction, const Message& query, uint64_t ts_ns);
  // `answer` has QR=1. An answer without a question (some FORMERR replies) matches when exactly
  // one query with its tuple and id is outstanding.
  void OnAnswer(const Tuple& tuple, Direction direction, const Message& answer, uint64_t ts_ns);
  // Routes a message by QR and by who sent it: a query sent or an answer received by the local
  // socket is outgoing, the other two incoming.
  void OnMessage(const Tuple& tuple, bool sent_by_local, const Message& message, uint64_t ts_ns);

  // Turns queries at least `timeout_ns` old into results with rcode -1. Queries are kept in
  // arrival order; events from different CPUs may arrive slightly out of timestamp order, which
  // only delays an expiry by that much.
  void Expire(uint64_t now_ns);

  std::vector<QueryResult> TakeResults();
  size_t outstanding() const { return fifo_.size(); }
  const MatcherStats& stats() const { return stats_; }

 private:
  struct Key {
    Tuple tuple;
    Direction direction;
    uint16_t id;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Pending {
    Key key;
    std::string name;  // lower-cased
    uint16_t qtype;
    uint64_t ts_ns;
  };
  using FifoIter = std::list<Pending>::iterator;

  void Finish(FifoIter it, int rcode, uint64_t latency_ns, bool truncated, bool evicted);

  MatcherOptions options_;
  MatcherStats stats_;
  std::list<Pending> fifo_;  // arrival order, oldest first
  // Several queries can share (tuple, id) only if they differ in question; almost always one.
  std::unordered_multimap<Key, FifoIter, KeyHash> index_;
  std::vector<QueryResult> results_;
};

}  // namespace nodescope::sensor::dns
