#include "sensor/plugins/netflow/http_table.h"

#include <algorithm>

namespace nodescope::sensor::netflow {

HttpTable::HttpTable(Options options) : options_(options) {
  parser_options_.max_path_len = options_.max_path_len;
}

HttpTable::Conn& HttpTable::Find(const ns_l7_event& event) {
  const StreamId id = StreamId::Of(event);
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    if (conns_.size() >= options_.max_connections) EvictOne();
    it = conns_.try_emplace(id, parser_options_).first;
    ++counters_.connections;
  }
  return it->second;
}

namespace {

// Drops index[sk] if it still names the stream `id` (a later socket at that address may have
// taken the entry since).
void Unindex(std::unordered_map<uint64_t, StreamId>& index, uint64_t sk, const StreamId& id) {
  auto m = index.find(sk);
  if (m != index.end() && m->second == id) index.erase(m);
}

}  // namespace

HttpTable::Conn* HttpTable::Lookup(const StreamId& id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : &it->second;
}

void HttpTable::Erase(std::unordered_map<StreamId, Conn, StreamIdHash>::iterator it) {
  Conn& conn = it->second;
  if (conn.mirror) {
    Unindex(mirrors_, conn.mirror->server_sk, it->first);
    if (conn.mirror->server != nullptr) conn.mirror->server->mirror_client = nullptr;
  }
  if (conn.mirrored) Unindex(mirrored_servers_, it->first.sk, it->first);
  if (conn.mirror_client != nullptr) conn.mirror_client->mirror->server = nullptr;
  conns_.erase(it);
}

void HttpTable::Link(uint64_t server_sk) {
  auto c = mirrors_.find(server_sk);
  auto s = mirrored_servers_.find(server_sk);
  if (c == mirrors_.end() || s == mirrored_servers_.end()) return;
  Conn* client = Lookup(c->second);
  Conn* server = Lookup(s->second);
  if (client == nullptr || server == nullptr || !client->mirror) return;
  // A socket address outlives its socket: the pair is the one whose tuples mirror each other.
  const ns_l7_event &ce = client->last, &se = server->last;
  if (ce.netns != se.netns || ce.sport != se.dport || ce.dport != se.sport) return;
  // Streams are nodes of conns_: pointers to them stay valid until Erase clears them. Either
  // may still name an earlier partner (a socket address outlives its socket).
  if (client->mirror->server != nullptr) client->mirror->server->mirror_client = nullptr;
  if (server->mirror_client != nullptr) server->mirror_client->mirror->server = nullptr;
  client->mirror->server = server;
  server->mirror_client = client;
  server->client_linked = true;
  OnRuns(*client, server->client_runs);
  const std::vector<http1::Exchange> held = std::move(server->held);
  server->held.clear();
  Forward(*server, held);
}

void HttpTable::OnMirrorCall(const ns_l7_event& event) {
  Conn& conn = Find(event);
  conn.last = event;
  if (!conn.mirror) {
    conn.mirror = std::make_unique<Mirror>();
    conn.mirror->server_sk = event.peer;
    mirrors_[event.peer] = StreamId::Of(event);
    Link(event.peer);
  }
  AddRun(conn.mirror->calls[event.direction == NS_L7_SEND ? 0 : 1], event.offset,
         event.offset + event.len, event.ts_ns);
  Place(conn);
}

void HttpTable::AddRun(RingQueue<Call>& calls, uint64_t offset, uint64_t end, uint64_t ts_ns) {
  if (ts_ns == 0 || end <= offset) return;  // none, read while rewritten, or begun after `end`
  if (!calls.empty()) {
    Call& last = calls.back();
    if (offset == last.offset) {  // the same run, grown since
      last.end = std::max(last.end, end);
      return;
    }
    if (offset < last.end) return;  // an older run
  }
  if (calls.size() >= kMirrorCalls) calls.pop_front();
  calls.push_back(Call{offset, end, ts_ns});
}

void HttpTable::OnRuns(Conn& client, const ns_l7_runs& runs) {
  Mirror& m = *client.mirror;
  for (size_t d = 0; d < 2; ++d) AddRun(m.calls[d], runs.off[d], runs.moved[d], runs.ts[d]);
  // The server sent at least what this side read: a body it sent unreported (sendfile) has
  // ended, and its exchange with it.
  if (Conn* server = m.server) {
    CatchUp(*server, 0, runs.moved[1]);
    Harvest(*server, 0);
  }
  Place(client);
}

void HttpTable::Forward(Conn& server, const std::vector<http1::Exchange>& done) {
  Conn* client = server.mirror_client;
  if (server.client_linked && client == nullptr) {
    // The client closed first: it never read these answers, as its own parse would have said.
    counters_.unanswered += done.size();
    return;
  }
  if (client == nullptr || !client->mirror) {
    // Not linked yet: the two sides' records are read in time order, and the server's can be
    // stamped first (its call returns after the client already read the bytes). A client
    // that has not shown up by kMirrorHeld exchanges never will (its capture was left out for
    // a limit): the server stops keeping them.
    for (const http1::Exchange& x : done) server.held.push_back(x);
    if (server.held.size() > kMirrorHeld) {
      server.held.clear();
      server.mirrored = false;
      server.mirror_lost = true;
      Unindex(mirrored_servers_, server.last.sk, StreamId::Of(server.last));
    }
    return;
  }
  Mirror& mirror = *client->mirror;
  for (const http1::Exchange& x : done) {
    if (mirror.exchanges.size() >= parser_options_.max_completed) {
      ++counters_.unanswered;  // the client reads nothing: it will not read this either
      continue;
    }
    mirror.exchanges.push_back(x);
  }
  Place(*client);
}

std::optional<uint64_t> HttpTable::TimeOf(RingQueue<Call>& calls, uint64_t offset,
                                          uint64_t fallback, bool& stood_in) {
  while (!calls.empty() && calls.front().end <= offset) calls.pop_front();
  if (calls.empty()) return std::nullopt;
  if (calls.front().offset <= offset) return calls.front().ts_ns;
  stood_in = true;
  return fallback;
}

void HttpTable::Place(Conn& client) {
  Mirror& m = *client.mirror;
  while (!m.exchanges.empty()) {
    http1::Exchange& x = m.exchanges.front();
    // The server's own times stand in for runs never seen.
    bool stood_in = false;
    const std::optional<uint64_t> response =
        TimeOf(m.calls[1], x.response_offset, x.response_start_ns, stood_in);
    if (!response) return;
    x.request_start_ns = TimeOf(m.calls[0], x.request_offset, x.request_start_ns, stood_in)
                             .value_or(x.request_start_ns);
    x.response_start_ns = *response;
    Count(client, NS_CONN_DIR_OUTGOING, x);
    ++counters_.mirrored;
    counters_.mirror_stood_in += stood_in;
    m.exchanges.pop_front();
  }
}

void HttpTable::OnEvent(const ns_l7_event& event, std::span<const char> captured) {
  if (event.flags & NS_L7_MIRROR) {
    OnMirrorCall(event);
    return;
  }
  Conn& conn = Find(event);
  conn.last = event;
  if ((event.flags & NS_L7_MIRRORED) && !conn.mirrored && !conn.mirror_lost) {
    conn.mirrored = true;
    mirrored_servers_[event.sk] = StreamId::Of(event);
  }
  if (conn.mirrored && event.direction == NS_L7_RECV) {
    // The client's runs up to its request: kept for it before this side's parse completes
    // the exchange.
    Conn* client = conn.mirror_client;
    if (client != nullptr && client->mirror) {
      OnRuns(*client, event.runs);
    } else {
      conn.client_runs = event.runs;
      if (!conn.client_linked) Link(event.sk);
    }
  }
  const http1::Direction direction =
      event.direction == NS_L7_SEND ? http1::Direction::kSent : http1::Direction::kReceived;
  const size_t d = event.direction == NS_L7_SEND ? 0 : 1;
  uint64_t len = event.len;
  if (event.offset < conn.caught_up[d]) {
    // CatchUp() already fed the front of this call as body (the event was still in the ring
    // when the socket's counters were read): only the rest is new.
    const uint64_t seen = conn.caught_up[d] - event.offset;
    if (seen >= len) return;
    captured = captured.subspan(std::min<size_t>(captured.size(), seen));
    len -= seen;
  } else if (conn.next_offset[d] != 0 && event.offset > conn.next_offset[d]) {
    conn.parser.Feed(direction, {}, event.offset - conn.next_offset[d], event.ts_ns);
  } else if (conn.next_offset[d] == 0) {
    conn.base[d] = event.offset;
  }
  conn.next_offset[d] = event.offset + event.len;
  conn.parser.Feed(direction, captured, len, event.ts_ns);
  Harvest(conn, 0);
  if (options_.skip_hint && event.direction <= NS_L7_RECV && !(event.flags & NS_L7_TLS)) {
    const uint64_t due = conn.parser.BodyBytesDue(
        event.direction == NS_L7_SEND ? http1::Direction::kSent : http1::Direction::kReceived);
    const uint64_t until = event.offset + event.len + due;
    if (due >= options_.min_skip_bytes && until > conn.skip.until[event.direction]) {
      conn.skip.until[event.direction] = until;
      conn.skip.start_ns = event.conn_start_ns;
      options_.skip_hint(event.sk, event.peer, conn.skip);
      ++counters_.skip_hints;
    }
  }
}

void HttpTable::OnClose(const ns_l7_event& close) {
  auto it = conns_.find(StreamId::Of(close));
  if (it == conns_.end()) return;
  if (Mirror* m = it->second.mirror.get()) {
    // Its last runs. What this side read in all, the server sent, and what it sent the server
    // reads (a server that answers early, as nginx's `return` does, reads the rest of the body
    // afterwards): the last exchange may end only there.
    OnRuns(it->second, close.runs);
    if (Conn* server = m->server) {
      CatchUp(*server, 0, close.offset);
      CatchUp(*server, 1, close.sent);
      Harvest(*server, 0);
    }
    Place(it->second);
    counters_.unanswered += m->exchanges.size();  // answered, but this side never read it
    Erase(it);
    return;
  }
  if (!(close.flags & NS_L7_TLS)) {  // TLS plaintext has no socket offsets
    CatchUp(it->second, 0, close.sent);
    CatchUp(it->second, 1, close.offset);
  }
  Harvest(it->second, close.ts_ns);
  Erase(it);
}

void HttpTable::CatchUp(Conn& conn, size_t d, uint64_t total) {
  if (conn.next_offset[d] == 0 || total <= conn.next_offset[d]) return;
  const http1::Direction direction = d == 0 ? http1::Direction::kSent : http1::Direction::kReceived;
  const uint64_t gap = std::min(total - conn.next_offset[d], conn.parser.BodyBytesDue(direction));
  if (gap == 0) return;
  conn.parser.Feed(direction, {}, gap, conn.last.ts_ns);
  conn.next_offset[d] += gap;
  conn.caught_up[d] = conn.next_offset[d];
  ++counters_.caught_up;
}

void HttpTable::Harvest(Conn& conn, uint64_t end_ns) {
  if (end_ns != 0) {
    conn.parser.Close(end_ns);
    counters_.unanswered += conn.parser.counters().unanswered_requests;
  }
  if (conn.parser.failed() && !conn.failure_counted) {
    conn.failure_counted = true;
    ++counters_.failed;
    last_failure_ = conn.parser.failure();
  }
  // Buffers go round between the table and its parsers, so none is allocated per exchange.
  std::vector<http1::Exchange> done;
  done.swap(harvested_);
  conn.parser.TakeExchanges(done);
  if (!done.empty()) Hand(conn, done);
  harvested_.swap(done);
}

void HttpTable::Hand(Conn& conn, std::vector<http1::Exchange>& done) {
  const bool client = conn.parser.role() == http1::Role::kClient ||
                      (conn.parser.role() == http1::Role::kUnknown &&
                       conn.last.conn_direction == NS_CONN_DIR_OUTGOING);
  const uint8_t direction = client ? NS_CONN_DIR_OUTGOING : NS_CONN_DIR_INCOMING;
  // The client writes requests and reads responses; the server the other way round.
  const size_t request_d = client ? 0 : 1;
  for (http1::Exchange& x : done) {
    x.request_offset += conn.base[request_d];
    x.response_offset += conn.base[1 - request_d];
  }
  if (conn.mirrored) Forward(conn, done);
  for (http1::Exchange& x : done) Count(conn, direction, x);
}

void HttpTable::Count(Conn& conn, uint8_t direction, http1::Exchange& x) {
  const bool client = direction == NS_CONN_DIR_OUTGOING;
  Totals& t = TotalsFor(conn, direction, x);
  ++t.count;
  // The client wrote the request and read the response; the server the other way round.
  t.bytes_written += client ? x.request_bytes : x.response_bytes;
  t.bytes_read += client ? x.response_bytes : x.request_bytes;
  uint64_t latency =
      x.response_start_ns > x.request_start_ns ? x.response_start_ns - x.request_start_ns : 0;
  t.latency_sum += latency;
  t.latency_max = std::max(t.latency_max, latency);
  ++t.buckets[records::LatencyBucket(latency)];
  t.cgroup_id = conn.last.cgroup_id;
  ++counters_.exchanges;
}

HttpTable::Totals& HttpTable::TotalsFor(Conn& conn, uint8_t direction, http1::Exchange& x) {
  // The DNAT join, per connection before its port is folded; an exchange completes after the
  // handshake whose NEW event created the translation, so it is looked up here, until found.
  if (options_.nat && !conn.nat && direction == NS_CONN_DIR_OUTGOING) {
    const ns_l7_event& e = conn.last;
    conn.nat = options_.nat(NatQuery{.netns = e.netns,
                                     .protocol = e.protocol,
                                     .src = StoredAddress(e.saddr),
                                     .dst = StoredAddress(e.daddr),
                                     .src_port = e.sport,
                                     .dst_port = e.dport,
                                     .start_ns = e.conn_start_ns});
  }
  const uint16_t nat_port = direction == NS_CONN_DIR_OUTGOING && conn.nat ? conn.nat->port : 0;
  for (RecentKey& r : conn.recent) {
    if (r.generation == generation_ && r.key->tuple.nat_dst_port == nat_port &&
        r.key->status_code == x.status_code && r.key->truncated == x.truncated &&
        r.key->path == x.path && r.key->method == x.method && r.key->version == x.version &&
        r.key->tuple.direction == direction && r.key->tuple.pid == conn.last.pid) {
      return *r.totals;
    }
  }
  Key key;
  key.tuple = TupleOf(conn.last, direction, options_.ephemeral_port);
  if (nat_port != 0) {
    key.tuple.nat_dst = conn.nat->ip;
    key.tuple.nat_dst_port = nat_port;
  }
  key.method = std::move(x.method);
  key.path = std::move(x.path);
  key.version = std::move(x.version);
  key.truncated = x.truncated;
  key.status_code = x.status_code;
  auto it = interval_.try_emplace(std::move(key)).first;
  conn.recent[conn.next_recent] = RecentKey{&it->first, &it->second, generation_};
  conn.next_recent = (conn.next_recent + 1) % conn.recent.size();
  return it->second;
}

void HttpTable::EvictOne() {
  auto oldest = std::min_element(conns_.begin(), conns_.end(), [](const auto& a, const auto& b) {
    return a.second.last.ts_ns < b.second.last.ts_ns;
  });
  if (oldest == conns_.end()) return;
  Harvest(oldest->second, oldest->second.last.ts_ns);
  Erase(oldest);
  ++counters_.evicted;
}

std::vector<v1::HttpflowEvent> HttpTable::Flush(int64_t interval_ns) {
  if (options_.socket_state) {
    for (auto& [id, conn] : conns_) {
      if (id.sk & 1) continue;  // TLS plaintext (netflow_plugin.cc)
      // A mirroring client with exchanges waiting for its reads' times, or whose server
      // sent a body unreported: what it read ends that.
      bool waiting = false;
      if (conn.mirror) {
        const Conn* server = conn.mirror->server;
        waiting = !conn.mirror->exchanges.empty() ||
                  (server != nullptr && server->parser.BodyBytesDue(http1::Direction::kSent) > 0);
      }
      if (!waiting && conn.parser.BodyBytesDue(http1::Direction::kSent) == 0 &&
          conn.parser.BodyBytesDue(http1::Direction::kReceived) == 0) {
        continue;
      }
      const std::optional<ns_l7_runs> state = options_.socket_state(id.sk, id.start_ns);
      if (!state) continue;
      if (waiting) {
        OnRuns(conn, *state);
        continue;
      }
      CatchUp(conn, 0, state->moved[0]);
      CatchUp(conn, 1, state->moved[1]);
      Harvest(conn, 0);
    }
  }
  std::vector<v1::HttpflowEvent> out;
  out.reserve(interval_.size());
  for (const auto& [key, t] : interval_) {
    v1::HttpflowEvent& e = out.emplace_back();
    SetTuple(key.tuple, &e);
    SetNat(key.tuple, &e);
    e.set_method(key.method);
    e.set_path(key.path);
    e.set_truncated(key.truncated);
    e.set_http_version(key.version);
    e.set_status_code(key.status_code);
    e.set_count(t.count);
    e.set_bytes_read(t.bytes_read);
    e.set_bytes_written(t.bytes_written);
    e.set_latency_ns(t.latency_sum / t.count);
    e.set_latency_max_ns(t.latency_max);
    for (uint64_t n : t.buckets) e.add_latency_buckets(n);
    e.set_cgroup_id(t.cgroup_id);
    e.set_interval_ns(interval_ns);
  }
  interval_.clear();
  ++generation_;
  return out;
}

}  // namespace nodescope::sensor::netflow
