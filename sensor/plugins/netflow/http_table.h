// Payload events of HTTP connections -> per-interval httpflow records. One HTTP/1.x parser per
// connection (sensor/protocols/http1) pairs requests with responses; exchanges that share an
// aggregation key (tuple with the client's port folded, process, method, path, status, version)
// fold into one HttpflowEvent per interval with a latency histogram. Free of libbpf: tested
// with hand-made events.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/abi/l7.h"
#include "common/records/latency.h"
#include "common/ring_queue.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/plugins/netflow/flow_tuple.h"
#include "sensor/protocols/http1/parser.h"

namespace nodescope::sensor::netflow {

class HttpTable {
 public:
  struct Options {
    uint16_t ephemeral_port = 32768;
    size_t max_path_len = 256;
    // Connections parsed at once; beyond it the least recently active one is dropped (counted).
    size_t max_connections = 16384;
    // Told when a body of at least min_skip_bytes lies ahead in a direction: the probe need not
    // copy the calls that end by until[direction] (struct ns_l7_skip). nullptr: never told.
    std::function<void(uint64_t sk, uint64_t peer, const ns_l7_skip& skip)> skip_hint;
    uint64_t min_skip_bytes = 64 * 1024;
    // ebpf-conntrack's DNAT join for the client side; nullptr: no dst_nat_* in the key.
    NatLookup nat;
    // What the socket of the connection that started at start_ns had sent (moved[0]) and
    // read (moved[1]) in all, from the probe's counters, and its latest runs if it is a
    // mirroring client (struct ns_l7_runs); nullopt when it is gone or is another connection
    // now. Calls that only moved body bytes out of user memory (sendfile) are not reported, so
    // a body a connection then left idle ends here, at Flush; and so does the wait for the
    // time of a mirroring client's last read. nullptr: both end with the next event or the
    // close.
    std::function<std::optional<ns_l7_runs>(uint64_t sk, uint64_t start_ns)> socket_state;
  };

  struct Counters {
    uint64_t connections = 0;  // connections that sent payload events
    uint64_t failed = 0;       // not HTTP/1.x after all, or framing lost (parser says why)
    uint64_t evicted = 0;      // dropped to stay within max_connections
    uint64_t exchanges = 0;    // request/response pairs counted into records
    uint64_t unanswered = 0;   // requests without a response when their connection ended
    uint64_t skip_hints = 0;   // bodies the probe was told not to copy
    uint64_t caught_up = 0;    // body ends learned from a close or the socket's counters
    uint64_t mirrored = 0;     // of `exchanges`: a loopback client's, from its server's parse
    // Of `mirrored`: a run of the client's was never seen, and the server's time of the
    // request or response stood in (HttpTable::TimeOf).
    uint64_t mirror_stood_in = 0;
  };

  explicit HttpTable(Options options);

  // One send or receive (bpf/abi/l7.h) with the bytes the probe copied.
  void OnEvent(const ns_l7_event& event, std::span<const char> captured);
  // The connection closed (the probe's NS_L7_CLOSED event, which comes after its last payload):
  // what it completed is counted.
  void OnClose(const ns_l7_event& close);

  // The interval's records (dst_domain empty).
  std::vector<v1::HttpflowEvent> Flush(int64_t interval_ns);

  Counters counters() const { return counters_; }
  size_t connections() const { return conns_.size(); }
  // The last failure a parser reported, for the log ("" when none).
  const std::string& last_failure() const { return last_failure_; }

 private:
  struct Key {
    FlowTuple tuple;
    std::string method, path, version;
    bool truncated = false;
    int status_code = 0;
    auto operator<=>(const Key&) const = default;
  };

  struct Totals {
    uint64_t count = 0, bytes_read = 0, bytes_written = 0;
    uint64_t latency_sum = 0, latency_max = 0;
    std::array<uint64_t, records::kLatencyBuckets> buckets{};
    uint64_t cgroup_id = 0;
  };

  // A key this connection counted into in the current interval: a keep-alive connection asks
  // for the same few keys again and again, and finding them here skips building the tuple and
  // a map lookup per request.
  struct RecentKey {
    const Key* key = nullptr;  // in interval_; valid while generation == generation_
    Totals* totals = nullptr;
    uint64_t generation = 0;
  };

  struct Conn;

  // A run of calls of a loopback client the probe did not copy (NS_L7_MIRROR, struct
  // ns_l7_runs): bytes [offset, end) of its direction, moved by calls that began at ts_ns, with
  // no call in the other direction between them.
  struct Call {
    uint64_t offset = 0, end = 0, ts_ns = 0;
  };

  // A loopback client whose exchanges are its server's (the socket `server_sk`, whose stream
  // is `server` once it sent an event), placed in time by its own runs of calls.
  struct Mirror {
    uint64_t server_sk = 0;
    Conn* server = nullptr;  // once linked; nullptr again when the server's stream is erased
    std::array<RingQueue<Call>, 2> calls;  // [0] sent, [1] read; the ones no exchange passed
    RingQueue<http1::Exchange> exchanges;  // the server's, waiting for this side to read them
  };

  struct Conn {
    explicit Conn(const http1::ConnectionOptions& options) : parser(options) {}
    http1::Connection parser;
    ns_l7_event last{};  // the latest event's header: tuple, process
    bool failure_counted = false;
    std::array<RecentKey, 4> recent{};
    size_t next_recent = 0;
    ns_l7_skip skip{};             // what the probe was last told
    std::optional<NatTarget> nat;  // the client side's DNAT translation, once found
    // Where the next event of each direction should start; an event further on follows calls
    // the probe did not report (skipped body), fed to the parser as a gap. 0: none seen yet
    // (every event moves at least one byte).
    std::array<uint64_t, 2> next_offset{};
    // Where CatchUp() got to: an event that starts before it was partly fed already.
    std::array<uint64_t, 2> caught_up{};
    // The socket offset of the first byte fed to the parser, per direction: exchange offsets
    // count from it.
    std::array<uint64_t, 2> base{};
    std::unique_ptr<Mirror> mirror;  // a loopback client that mirrors its server
    // A loopback server whose client mirrors it (NS_L7_MIRRORED): the client, once linked, and
    // the exchanges completed before that.
    bool mirrored = false;
    bool mirror_lost = false;  // its client never showed up (Forward)
    bool client_linked = false;
    Conn* mirror_client = nullptr;  // once linked; nullptr again when it is erased
    std::vector<http1::Exchange> held;
    ns_l7_runs client_runs{};  // the latest its events carried, for a client not linked yet
  };

  Conn& Find(const ns_l7_event& event);
  // The stream `id` names, if it is still there.
  Conn* Lookup(const StreamId& id);
  // Runs of a mirroring client kept per direction (a pipelining depth's worth of requests).
  static constexpr size_t kMirrorCalls = 256;
  // Exchanges a mirrored server keeps until its client links (ns_l7_event order), at most.
  static constexpr size_t kMirrorHeld = 16;
  // The NS_L7_MIRROR call of a loopback client (its first).
  void OnMirrorCall(const ns_l7_event& event);
  // A mirroring client's runs, from its server's receive, its own close or the probe's map:
  // kept to place exchanges by, and what it read ends the server's unreported bodies.
  void OnRuns(Conn& client, const ns_l7_runs& runs);
  // Keeps the run [offset, end) that began at ts_ns, unless it is known or passed already.
  static void AddRun(RingQueue<Call>& calls, uint64_t offset, uint64_t end, uint64_t ts_ns);
  // Hands the exchanges `done` of `server` (NS_L7_MIRRORED) to the client that mirrors it, or
  // holds them until the two are linked.
  void Forward(Conn& server, const std::vector<http1::Exchange>& done);
  // Links a mirroring client and its server once both have sent an event.
  void Link(uint64_t server_sk);
  // The time of the run that moved the byte at `offset`, dropping the runs before it; nullopt
  // when no run known reached it yet; `fallback` when a later run did, so the byte's own run
  // was never seen (the next one began before an event carried it, or the first call was too
  // short to tell HTTP).
  static std::optional<uint64_t> TimeOf(RingQueue<Call>& calls, uint64_t offset, uint64_t fallback,
                                        bool& stood_in);
  // Counts the client's exchanges whose response it has begun to read.
  void Place(Conn& client);
  // Counts one exchange of `conn`, as the side with `direction` (ns_conn_direction) saw it.
  void Count(Conn& conn, uint8_t direction, http1::Exchange& x);
  void Erase(std::unordered_map<StreamId, Conn, StreamIdHash>::iterator it);
  // The socket had moved `total` bytes in direction `d` (0 sent, 1 read): the part of them no
  // event reported that the parser knows to be body is fed as a gap. Never more than that:
  // what follows a body is a head, and its event is still to come.
  void CatchUp(Conn& conn, size_t d, uint64_t total);
  // Counts what the connection's parser completed; `end_ns` != 0: it ended then.
  void Harvest(Conn& conn, uint64_t end_ns);
  // Counts the exchanges `done` the parser of `conn` completed (and forwards a mirrored
  // server's to its client).
  void Hand(Conn& conn, std::vector<http1::Exchange>& done);
  void EvictOne();
  Totals& TotalsFor(Conn& conn, uint8_t direction, http1::Exchange& x);

  Options options_;
  http1::ConnectionOptions parser_options_;
  std::unordered_map<StreamId, Conn, StreamIdHash> conns_;  // HTTP is TCP, never a peer key
  std::unordered_map<uint64_t, StreamId> mirrors_;  // server socket -> the client mirroring it
  std::unordered_map<uint64_t, StreamId> mirrored_servers_;  // server socket -> its stream
  std::map<Key, Totals> interval_;  // node-based: RecentKey pointers stay valid until Flush
  uint64_t generation_ = 1;         // +1 per Flush
  Counters counters_;
  std::string last_failure_;
  std::vector<http1::Exchange> harvested_;  // Harvest's buffer, kept between calls
};

}  // namespace nodescope::sensor::netflow
