// HttpTable and DnsTable from hand-made payload events: what records the probe's events of a
// known exchange become, with exact counts, bytes, latencies, folding and domains.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "sensor/plugins/netflow/dns_table.h"
#include "sensor/plugins/netflow/http_table.h"

namespace nodescope::sensor::netflow {
namespace {

constexpr uint16_t kEphemeral = 32768;

void SetV4(uint8_t (&out)[16], const char* text) {
  std::memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  inet_pton(AF_INET, text, out + 12);
}

ns_l7_event Event(uint64_t sk, const char* local, uint16_t sport, const char* remote,
                  uint16_t dport, uint8_t protocol, uint8_t l7, uint8_t direction, uint64_t ts,
                  uint32_t len, uint32_t pid, const char* comm) {
  ns_l7_event e{};
  e.sk = sk;
  e.ts_ns = ts;
  SetV4(e.saddr, local);
  SetV4(e.daddr, remote);
  e.sport = sport;
  e.dport = dport;
  e.family = 4;
  e.protocol = protocol;
  e.l7 = l7;
  e.direction = direction;
  e.len = len;
  e.pid = pid;
  e.netns = 4026531840u;
  // A stand-in for when the probe first saw the connection: one per local port.
  e.conn_start_ns = sport;
  std::strncpy(reinterpret_cast<char*>(e.comm), comm, NS_TASK_COMM_LEN - 1);
  return e;
}

// The probe's close event of the connection `of` at `ts`.
ns_l7_event Closed(ns_l7_event of, uint64_t ts) {
  of.flags = NS_L7_CLOSED;
  of.direction = NS_L7_RECV;
  of.ts_ns = ts;
  of.len = 0;
  return of;
}

// The socket's totals, sent and read, as the probe's counters say them.
ns_l7_runs Moved(const std::array<uint64_t, 2>& totals) {
  ns_l7_runs state{};
  state.moved[0] = totals[0];
  state.moved[1] = totals[1];
  return state;
}

std::string Ip(const std::string& raw) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(raw.size() == 4 ? AF_INET : AF_INET6, raw.data(), text, sizeof(text));
  return text;
}

const std::string kGet = "GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const std::string kMissing = "GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
const std::string kNotFound = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

// A client (curl, port 40000) and a server (nginx, port 80) on one host, the same connection.
void FeedBothSides(HttpTable& table, uint64_t t0) {
  auto feed = [&](uint64_t sk, bool client, bool send, const std::string& bytes, uint64_t ts) {
    ns_l7_event e = client
                        ? Event(sk, "198.18.0.1", 40000, "198.18.0.2", 80, IPPROTO_TCP, NS_L7_HTTP,
                                send ? NS_L7_SEND : NS_L7_RECV, ts, bytes.size(), 100, "curl")
                        : Event(sk, "198.18.0.2", 80, "198.18.0.1", 40000, IPPROTO_TCP, NS_L7_HTTP,
                                send ? NS_L7_SEND : NS_L7_RECV, ts, bytes.size(), 200, "nginx");
    table.OnEvent(e, bytes);
  };
  feed(1, true, true, kGet, t0);
  feed(2, false, false, kGet, t0 + 10);
  feed(2, false, true, kOk, t0 + 1000);
  feed(1, true, false, kOk, t0 + 1010);
  feed(1, true, true, kMissing, t0 + 2000);
  feed(2, false, false, kMissing, t0 + 2010);
  feed(2, false, true, kNotFound, t0 + 2500);
  feed(1, true, false, kNotFound, t0 + 2600);
}

TEST(HttpTable, BothSidesOfAKeepAliveConnection) {
  HttpTable table({.ephemeral_port = kEphemeral});
  FeedBothSides(table, 1'000'000);
  std::vector<v1::HttpflowEvent> records = table.Flush(60'000'000'000);
  ASSERT_EQ(records.size(), 4u);
  int seen = 0;
  for (const v1::HttpflowEvent& r : records) {
    const bool client = r.direction() == v1::NetflowEvent::OUTGOING;
    SCOPED_TRACE(r.ShortDebugString());
    EXPECT_EQ(r.transport(), v1::NetflowEvent::TCP);
    EXPECT_EQ(r.count(), 1u);
    EXPECT_EQ(r.http_version(), "1.1");
    EXPECT_EQ(r.method(), "GET");
    EXPECT_EQ(r.interval_ns(), 60'000'000'000);
    EXPECT_EQ(r.latency_buckets_size(), static_cast<int>(records::kLatencyBuckets));
    EXPECT_EQ(r.latency_buckets(0), 1u);  // microseconds: the first bucket
    if (client) {
      EXPECT_EQ(Ip(r.src_ip()), "198.18.0.1");
      EXPECT_EQ(r.src_port(), 0u);  // folded
      EXPECT_EQ(r.dst_port(), 80u);
      EXPECT_EQ(r.process_name(), "curl");
      EXPECT_EQ(r.pid(), 100u);
    } else {
      EXPECT_EQ(Ip(r.src_ip()), "198.18.0.2");
      EXPECT_EQ(r.src_port(), 80u);
      EXPECT_EQ(r.dst_port(), 0u);
      EXPECT_EQ(r.process_name(), "nginx");
    }
    const uint64_t request = r.path() == "/a" ? kGet.size() : kMissing.size();
    const uint64_t response = r.path() == "/a" ? kOk.size() : kNotFound.size();
    EXPECT_EQ(r.bytes_written(), client ? request : response);
    EXPECT_EQ(r.bytes_read(), client ? response : request);
    if (r.path() == "/a") {
      EXPECT_EQ(r.status_code(), 200);
      EXPECT_EQ(r.latency_ns(), client ? 1010u : 990u);
      ++seen;
    } else {
      EXPECT_EQ(r.path(), "/b");
      EXPECT_EQ(r.status_code(), 404);
      EXPECT_EQ(r.latency_ns(), client ? 600u : 490u);
      ++seen;
    }
  }
  EXPECT_EQ(seen, 4);
  EXPECT_EQ(table.counters().exchanges, 4u);
  EXPECT_TRUE(table.Flush(1).empty());  // the interval starts over
}

TEST(HttpTable, ExchangesOfOneKeyFoldAcrossConnections) {
  HttpTable table({.ephemeral_port = kEphemeral});
  for (uint64_t sk = 10; sk < 15; ++sk) {
    uint16_t port = static_cast<uint16_t>(40000 + sk);
    table.OnEvent(Event(sk, "127.0.0.1", port, "127.0.0.1", 8080, IPPROTO_TCP, NS_L7_HTTP,
                        NS_L7_SEND, sk * 1000, kGet.size(), 7, "wrk"),
                  kGet);
    const ns_l7_event response =
        Event(sk, "127.0.0.1", port, "127.0.0.1", 8080, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
              sk * 1000 + 100 * sk, kOk.size(), 7, "wrk");
    table.OnEvent(response, kOk);
    table.OnClose(Closed(response, sk * 1000 + 500));
  }
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].count(), 5u);
  EXPECT_EQ(records[0].latency_ns(), (1000u + 1100 + 1200 + 1300 + 1400) / 5);
  EXPECT_EQ(records[0].latency_max_ns(), 1400u);
  EXPECT_EQ(records[0].bytes_read(), 5 * kOk.size());
  EXPECT_EQ(table.connections(), 0u);  // closed ones are gone after the flush
}

TEST(HttpTable, AKeepAliveConnectionCountsIntoEachIntervalOnce) {
  HttpTable table({.ephemeral_port = kEphemeral});
  auto exchange = [&](uint64_t ts) {
    table.OnEvent(Event(3, "127.0.0.1", 40003, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND,
                        ts, kGet.size(), 7, "wrk"),
                  kGet);
    table.OnEvent(Event(3, "127.0.0.1", 40003, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
                        ts + 50, kOk.size(), 7, "wrk"),
                  kOk);
  };
  exchange(100);
  exchange(200);
  std::vector<v1::HttpflowEvent> first = table.Flush(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].count(), 2u);
  exchange(300);  // the same key, after the flush: a new record, not the flushed one
  std::vector<v1::HttpflowEvent> second = table.Flush(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].count(), 1u);
  EXPECT_EQ(second[0].bytes_read(), kOk.size());
}

TEST(HttpTable, ALargeBodyAheadIsHintedOnceNotToBeCopied) {
  std::vector<std::pair<uint64_t, ns_l7_skip>> hints;
  HttpTable table({.ephemeral_port = kEphemeral,
                   .skip_hint = [&](uint64_t sk, uint64_t, const ns_l7_skip& skip) {
                     hints.emplace_back(sk, skip);
                   }});
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
  ns_l7_event get = Event(4, "127.0.0.1", 40004, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP,
                          NS_L7_SEND, 100, kGet.size(), 7, "curl");
  table.OnEvent(get, kGet);
  // The head and the first 16 KiB of body in one read, of which 4 KiB were copied.
  std::string first = head + std::string(4096 - head.size(), 'b');
  ns_l7_event read = Event(4, "127.0.0.1", 40004, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP,
                           NS_L7_RECV, 200, 16384, 7, "curl");
  table.OnEvent(read, first);
  ASSERT_EQ(hints.size(), 1u);
  EXPECT_EQ(hints[0].first, 4u);
  EXPECT_EQ(hints[0].second.until[NS_L7_RECV], head.size() + 1000000);
  EXPECT_EQ(hints[0].second.until[NS_L7_SEND], 0u);
  // The probe says nothing of the calls inside the body but the last, which it reports by
  // length: the parser takes the bytes in between from its offset.
  const uint64_t total = head.size() + 1000000;
  ns_l7_event last = read;
  last.len = 1000;
  last.offset = total - last.len;
  last.flags = NS_L7_SKIPPED;
  last.ts_ns = 900;
  table.OnEvent(last, {});
  EXPECT_EQ(hints.size(), 1u);
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].bytes_read(), total);
  EXPECT_EQ(table.counters().skip_hints, 1u);
}

// A socket address is reused once its socket is freed, and the probe's rings are read one after
// the other: the new connection's events can come before the old one's close, or after it.
TEST(HttpTable, AReusedSocketAddressIsANewConnectionInEitherOrder) {
  for (bool close_first : {true, false}) {
    SCOPED_TRACE(close_first ? "close read first" : "new connection read first");
    HttpTable table({.ephemeral_port = kEphemeral});
    // A request whose connection closes unanswered, then a new socket at the same address.
    const ns_l7_event old_request = Event(1, "127.0.0.1", 40001, "127.0.0.1", 80, IPPROTO_TCP,
                                          NS_L7_HTTP, NS_L7_SEND, 100, kGet.size(), 7, "curl");
    table.OnEvent(old_request, kGet);
    if (close_first) table.OnClose(Closed(old_request, 200));
    table.OnEvent(Event(1, "127.0.0.1", 40002, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND,
                        300, kMissing.size(), 7, "curl"),
                  kMissing);
    table.OnEvent(Event(1, "127.0.0.1", 40002, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
                        400, kNotFound.size(), 7, "curl"),
                  kNotFound);
    if (!close_first) table.OnClose(Closed(old_request, 200));
    std::vector<v1::HttpflowEvent> records = table.Flush(1);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].path(), "/b");
    EXPECT_EQ(records[0].count(), 1u);
    EXPECT_EQ(table.counters().unanswered, 1u);
    EXPECT_EQ(table.connections(), 1u);  // the new one, still open
  }
}

// nginx sends a static body with sendfile, a call the probe does not report: the body's bytes
// show up as a gap before the next event, and a body no event followed ends with the close's
// totals or, on an idle keep-alive connection, with the socket's counters at the flush.
class UnreportedBody : public ::testing::Test {
 protected:
  static constexpr uint64_t kSk = 0x1000;
  const std::string head_ = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";

  // The server's side of one exchange at `at` bytes into each direction: the request read,
  // the response head written, the 1000-byte body sent unreported.
  void Exchange(HttpTable& table, uint64_t ts, uint64_t read_at, uint64_t sent_at) {
    ns_l7_event in = Event(kSk, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP, NS_L7_HTTP,
                           NS_L7_RECV, ts, kGet.size(), 9, "nginx");
    in.offset = read_at;
    table.OnEvent(in, kGet);
    ns_l7_event out = Event(kSk, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP, NS_L7_HTTP,
                            NS_L7_SEND, ts + 100, head_.size(), 9, "nginx");
    out.offset = sent_at;
    table.OnEvent(out, head_);
  }
  uint64_t Response() const { return head_.size() + 1000; }
};

TEST_F(UnreportedBody, EndsWithTheNextResponse) {
  HttpTable table({.ephemeral_port = kEphemeral});
  Exchange(table, 1000, 0, 0);
  Exchange(table, 2000, kGet.size(), Response());
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].count(), 1u);  // the second one's body is still due
  EXPECT_EQ(records[0].bytes_written(), Response());
}

TEST_F(UnreportedBody, EndsWithTheClose) {
  HttpTable table({.ephemeral_port = kEphemeral});
  Exchange(table, 1000, 0, 0);
  ns_l7_event close = Closed(Event(kSk, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP,
                                   NS_L7_HTTP, NS_L7_RECV, 0, 0, 9, "nginx"),
                             5000);
  close.offset = kGet.size();
  close.sent = Response();
  table.OnClose(close);
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].count(), 1u);
  EXPECT_EQ(records[0].bytes_written(), Response());
  EXPECT_EQ(table.counters().unanswered, 0u);
  EXPECT_EQ(table.counters().caught_up, 1u);
}

TEST_F(UnreportedBody, EndsAtTheFlushFromTheSocketsCounters) {
  std::array<uint64_t, 2> totals{};
  int asked = 0;
  HttpTable table(
      {.ephemeral_port = kEphemeral,
       .socket_state = [&](uint64_t sk, uint64_t start_ns) -> std::optional<ns_l7_runs> {
         ++asked;
         if (sk != kSk || start_ns != 80) return std::nullopt;  // Event(): sport
         return Moved(totals);
       }});
  Exchange(table, 1000, 0, 0);
  // Half the body sent so far: nothing ends.
  totals = {head_.size() + 500, kGet.size()};
  EXPECT_TRUE(table.Flush(1).empty());
  // All of it, and the next response's head too, whose event is still in the ring: only the
  // body is taken as sent.
  totals = {Response() + head_.size(), 2 * kGet.size()};
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].bytes_written(), Response());
  EXPECT_EQ(asked, 2);
  // The events still in the ring come next and parse as if nothing had happened.
  Exchange(table, 2000, kGet.size(), Response());
  ns_l7_event close = Closed(Event(kSk, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP,
                                   NS_L7_HTTP, NS_L7_RECV, 0, 0, 9, "nginx"),
                             5000);
  close.offset = 2 * kGet.size();
  close.sent = 2 * Response();
  table.OnClose(close);
  records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].count(), 1u);
  EXPECT_EQ(records[0].bytes_written(), Response());
  EXPECT_EQ(table.counters().failed, 0u);
}

TEST_F(UnreportedBody, AnEventTheCountersOvertookIsTrimmed) {
  std::array<uint64_t, 2> totals{};
  HttpTable table({.ephemeral_port = kEphemeral, .socket_state = [&](uint64_t, uint64_t) {
                     return std::optional(Moved(totals));
                   }});
  Exchange(table, 1000, 0, 0);
  // The body went out with write() after all, in two calls whose events were still in the
  // ring when the flush read the counters.
  totals = {Response(), kGet.size()};
  ASSERT_EQ(table.Flush(1).size(), 1u);
  const std::string body(1000, 'x');
  for (uint64_t part = 0; part < 2; ++part) {
    ns_l7_event e = Event(kSk, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP, NS_L7_HTTP,
                          NS_L7_SEND, 1500 + part, 500, 9, "nginx");
    e.offset = head_.size() + 500 * part;
    table.OnEvent(e, std::string_view(body).substr(0, 500));
  }
  Exchange(table, 2000, kGet.size(), Response());
  totals = {2 * Response(), 2 * kGet.size()};
  std::vector<v1::HttpflowEvent> records = table.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].count(), 1u);
  EXPECT_EQ(records[0].bytes_written(), Response());
  EXPECT_EQ(table.counters().failed, 0u);
}

// A loopback client whose payload the probe did not copy (NS_L7_MIRROR): its exchanges are
// the server's parse, in the client's own time. The server (nginx) sends bodies unreported.
class Mirrored : public ::testing::Test {
 protected:
  static constexpr uint64_t kClient = 0x2000, kServer = 0x3000;
  const std::string head_ = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  // The probe's map, read at Flush: the client's runs as they are by then.
  HttpTable table_{{.ephemeral_port = kEphemeral,
                    .socket_state = [this](uint64_t sk, uint64_t) -> std::optional<ns_l7_runs> {
                      ++state_reads_;
                      if (sk != kClient || client_closed_) return std::nullopt;
                      return client_;
                    }}};

  uint64_t Response() const { return head_.size() + 1000; }
  // A call of the client (wrk), as the probe sees it (l7_capture.bpf.h): the first one is an
  // event with no bytes; every one keeps the start of its run in its direction (ns_l7_run),
  // which the server's receives carry.
  ns_l7_event ClientCall(bool send, uint64_t ts, uint64_t offset, uint32_t len) {
    const size_t d = send ? 0 : 1;
    client_.moved[d] = offset + len;
    if (client_.ts[d] == 0 || client_.ts[d] < client_.ts[1 - d]) {
      client_.ts[d] = ts;
      client_.off[d] = offset;
    }
    ns_l7_event e = Event(kClient, "127.0.0.1", 40000, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP,
                          send ? NS_L7_SEND : NS_L7_RECV, ts, len, 7, "wrk");
    e.offset = offset;
    e.flags = NS_L7_MIRROR;
    e.peer = kServer;
    if (!client_seen_) table_.OnEvent(e, {});
    client_seen_ = true;
    return e;
  }
  // The client's close, with its own runs.
  void ClientClose(uint64_t ts) {
    ns_l7_event close = Closed(Event(kClient, "127.0.0.1", 40000, "127.0.0.1", 80, IPPROTO_TCP,
                                     NS_L7_HTTP, NS_L7_RECV, ts, 0, 7, "wrk"),
                               ts);
    close.offset = client_.moved[1];
    close.sent = client_.moved[0];
    close.runs = client_;
    client_closed_ = true;
    table_.OnClose(close);
  }
  void Server(bool send, uint64_t ts, uint64_t offset, const std::string& bytes) {
    ns_l7_event e = Event(kServer, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP, NS_L7_HTTP,
                          send ? NS_L7_SEND : NS_L7_RECV, ts, bytes.size(), 9, "nginx");
    e.offset = offset;
    e.flags = mirrored_ ? NS_L7_MIRRORED : 0;
    if (mirrored_ && !send) e.runs = client_;
    table_.OnEvent(e, bytes);
  }
  bool mirrored_ = true;  // the probe paired the server with its client
  ns_l7_runs client_{};   // the client's runs and totals (struct ns_conn.l7_run_*)
  bool client_seen_ = false, client_closed_ = false;
  int state_reads_ = 0;
  // The client's record of the interval, if there is one.
  std::optional<v1::HttpflowEvent> FlushedClient() {
    const std::vector<v1::HttpflowEvent> records = table_.Flush(1);
    const v1::HttpflowEvent* client = Of(records, "wrk");
    return client ? std::optional(*client) : std::nullopt;
  }
  const v1::HttpflowEvent* Of(const std::vector<v1::HttpflowEvent>& records,
                              const std::string& process) {
    for (const v1::HttpflowEvent& r : records) {
      if (r.process_name() == process) return &r;
    }
    return nullptr;
  }
};

TEST_F(Mirrored, KeepAliveExchangesInTheClientsTime) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, head_);  // the body follows by sendfile
  ClientCall(false, 300, 0, Response());
  ClientCall(true, 400, kGet.size(), kGet.size());
  Server(false, 410, kGet.size(), kGet);
  Server(true, 500, Response(), head_);
  ClientCall(false, 650, Response(), Response());
  std::vector<v1::HttpflowEvent> records = table_.Flush(1);
  ASSERT_EQ(records.size(), 2u);
  const v1::HttpflowEvent* client = Of(records, "wrk");
  const v1::HttpflowEvent* server = Of(records, "nginx");
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(client->direction(), v1::NetflowEvent::OUTGOING);
  EXPECT_EQ(client->pid(), 7u);
  EXPECT_EQ(client->dst_port(), 80u);
  EXPECT_EQ(client->method(), "GET");
  EXPECT_EQ(client->path(), "/a");
  EXPECT_EQ(client->status_code(), 200);
  EXPECT_EQ(client->count(), 2u);
  EXPECT_EQ(client->bytes_written(), 2 * kGet.size());
  EXPECT_EQ(client->bytes_read(), 2 * Response());
  // The client's own latencies: 300 - 100 and 650 - 400, not the server's 90 and 90.
  EXPECT_EQ(client->latency_ns(), (200u + 250u) / 2);
  EXPECT_EQ(client->latency_max_ns(), 250u);
  // The server's bodies went by sendfile, unreported: what the client read ends them.
  EXPECT_EQ(server->count(), 2u);
  EXPECT_EQ(server->latency_ns(), 90u);
  EXPECT_EQ(table_.counters().exchanges, 4u);
  EXPECT_EQ(table_.counters().mirrored, 2u);
  EXPECT_EQ(table_.counters().mirror_stood_in, 0u);
}

// The client read the response in two calls and closed: the server's last body ends at what
// the client read in all, and the response is placed at the client's first read.
TEST_F(Mirrored, TheLastExchangeEndsWithTheClientsClose) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, head_);
  ClientCall(false, 300, 0, 10);
  ClientCall(false, 320, 10, Response() - 10);
  ClientClose(400);
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->count(), 1u);
  EXPECT_EQ(client->latency_ns(), 200u);
  EXPECT_EQ(client->bytes_read(), Response());
  EXPECT_EQ(table_.counters().unanswered, 0u);
  EXPECT_EQ(table_.connections(), 1u);  // the server's, still open
}

// The client sent a request and closed before the answer: the server's exchange completes
// after the client is gone, and counts as unanswered on the client's side, as its own parse
// would have counted it.
TEST_F(Mirrored, AnAnswerAfterTheClientClosedIsUnanswered) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, kOk);
  ClientCall(false, 300, 0, kOk.size());
  ClientCall(true, 400, kGet.size(), kGet.size());
  ClientClose(450);
  Server(false, 460, kGet.size(), kGet);
  Server(true, 500, kOk.size(), kOk);
  std::vector<v1::HttpflowEvent> records = table_.Flush(1);
  const v1::HttpflowEvent* client = Of(records, "wrk");
  const v1::HttpflowEvent* server = Of(records, "nginx");
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(client->count(), 1u);
  EXPECT_EQ(server->count(), 2u);
  EXPECT_EQ(table_.counters().unanswered, 1u);
}

// The server's call returns after the client has already read its bytes, so the server's
// events can be stamped, and read, before the client's: its exchange waits for the client.
TEST_F(Mirrored, TheServersEventsMayComeFirst) {
  Server(false, 90, 0, kGet);
  Server(true, 95, 0, kOk);  // complete: the body is in the call
  ClientCall(true, 100, 0, kGet.size());
  ClientCall(false, 300, 0, kOk.size());
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->count(), 1u);
  EXPECT_EQ(client->latency_ns(), 200u);
  EXPECT_EQ(client->bytes_read(), kOk.size());
}

// A request written in two calls and a response read in two: each is placed at its run's
// first call. The client's calls made one event in all, its first.
TEST_F(Mirrored, ARunOfCallsIsTimedByItsFirstCall) {
  const std::string post = "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n";
  ClientCall(true, 100, 0, post.size());
  ClientCall(true, 120, post.size(), 5);
  Server(false, 130, 0, post + "hello");
  Server(true, 200, 0, kOk);
  ClientCall(false, 300, 0, 10);
  ClientCall(false, 310, 10, kOk.size() - 10);
  ClientClose(400);
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->method(), "POST");
  EXPECT_EQ(client->count(), 1u);
  EXPECT_EQ(client->latency_ns(), 200u);
  EXPECT_EQ(client->bytes_written(), post.size() + 5);
  EXPECT_EQ(table_.counters().mirrored, 1u);
}

// A keep-alive client that read its answer and went idle: nothing carries its last read's
// time until the flush reads its runs from the probe's map.
TEST_F(Mirrored, AnIdleClientsLastAnswerIsPlacedAtTheFlush) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, kOk);
  ClientCall(false, 300, 0, kOk.size());
  EXPECT_EQ(table_.counters().mirrored, 0u);
  EXPECT_EQ(state_reads_, 0);
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->latency_ns(), 200u);
  EXPECT_EQ(table_.counters().mirrored, 1u);
  EXPECT_GE(state_reads_, 1);
}

// The server read a request before the client's call that sent it kept its run (the call
// returns after the bytes were delivered), and the client's next request replaced that run
// before another event carried it: the server's time of the request stands in, not the later
// run's.
TEST_F(Mirrored, ARequestWhoseRunWasNeverSeenTakesTheServersTime) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, kOk);
  ClientCall(false, 300, 0, kOk.size());
  Server(false, 405, kGet.size(), kGet);  // the client's run of 400 is not kept yet
  Server(true, 500, kOk.size(), kOk);
  ClientCall(true, 400, kGet.size(), kGet.size());
  ClientCall(false, 600, kOk.size(), kOk.size());
  ClientCall(true, 700, 2 * kGet.size(), kGet.size());
  Server(false, 710, 2 * kGet.size(), kGet);
  EXPECT_EQ(table_.counters().mirrored, 2u);
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->count(), 2u);
  EXPECT_EQ(client->latency_max_ns(), 200u);
  EXPECT_EQ(client->latency_ns(), (200u + 600u - 405u) / 2);
  EXPECT_EQ(table_.counters().mirror_stood_in, 1u);
}

// The server closed first (HTTP/1.0, or `Connection: close`): its last exchange waits in the
// client for the client's read, which its close carries.
TEST_F(Mirrored, TheServerMayCloseFirst) {
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, kOk);
  ns_l7_event close = Closed(Event(kServer, "127.0.0.1", 80, "127.0.0.1", 40000, IPPROTO_TCP,
                                   NS_L7_HTTP, NS_L7_RECV, 210, 0, 9, "nginx"),
                             210);
  close.offset = kGet.size();
  close.sent = kOk.size();
  table_.OnClose(close);
  EXPECT_EQ(table_.connections(), 1u);  // the client's
  ClientCall(false, 300, 0, kOk.size());
  ClientClose(400);
  const std::optional<v1::HttpflowEvent> client = FlushedClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->count(), 1u);
  EXPECT_EQ(client->latency_ns(), 200u);
  EXPECT_EQ(table_.connections(), 0u);
}

// A client whose capture was left out (sampling) never shows up: its server keeps a few
// exchanges for it, then none, and counts its own all along.
TEST_F(Mirrored, AServerStopsKeepingExchangesForAClientThatNeverCame) {
  uint64_t offset = 0, sent = 0;
  for (int i = 0; i < 100; ++i) {
    Server(false, 100 + 10 * i, offset, kGet);
    Server(true, 105 + 10 * i, sent, kOk);
    offset += kGet.size();
    sent += kOk.size();
  }
  // A client that turns up after all is not given what the server stopped keeping.
  ClientCall(true, 5000, offset, kGet.size());
  Server(false, 5010, offset, kGet);
  Server(true, 5020, sent, kOk);
  ClientCall(false, 5030, sent, kOk.size());
  std::vector<v1::HttpflowEvent> records = table_.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].process_name(), "nginx");
  EXPECT_EQ(records[0].count(), 101u);
  EXPECT_EQ(table_.counters().mirrored, 0u);
}

// Without the probe's word that the server is mirrored, its exchanges are its own only.
TEST_F(Mirrored, AServerNotPairedKeepsNothingForAClient) {
  mirrored_ = false;
  ClientCall(true, 100, 0, kGet.size());
  Server(false, 110, 0, kGet);
  Server(true, 200, 0, kOk);
  ClientCall(false, 300, 0, kOk.size());
  std::vector<v1::HttpflowEvent> records = table_.Flush(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].process_name(), "nginx");
  EXPECT_EQ(table_.counters().mirrored, 0u);
}

// A server whose capture was left out (sampling): the client's calls make no records, and
// what they leave is gone with the close.
TEST_F(Mirrored, WithoutTheServersStreamNothingIsCounted) {
  uint64_t offset = 0;
  for (int i = 0; i < 5000; ++i) {
    ClientCall(true, 100 + 10 * i, offset, kGet.size());
    ClientCall(false, 105 + 10 * i, offset, Response());
    offset += kGet.size();
  }
  EXPECT_TRUE(table_.Flush(1).empty());
  ClientClose(60001);
  EXPECT_TRUE(table_.Flush(1).empty());
  EXPECT_EQ(table_.counters().exchanges, 0u);
  EXPECT_EQ(table_.connections(), 0u);
}

TEST(HttpTable, NotHttpIsCountedAndGivesNothing) {
  HttpTable table({.ephemeral_port = kEphemeral});
  const std::string junk = "GETX nonsense\r\n\r\n";
  table.OnEvent(Event(1, "127.0.0.1", 40001, "127.0.0.1", 80, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND,
                      100, junk.size(), 7, "x"),
                junk);
  EXPECT_TRUE(table.Flush(1).empty());
  EXPECT_EQ(table.counters().failed, 1u);
  EXPECT_FALSE(table.last_failure().empty());
}

// A DNS message: id, flags, one question, and for an answer one A record.
std::string Dns(uint16_t id, bool answer, uint8_t rcode, const char* ip = nullptr) {
  std::string m;
  m.push_back(static_cast<char>(id >> 8));
  m.push_back(static_cast<char>(id));
  m.push_back(answer ? '\x81' : '\x01');
  m.push_back(static_cast<char>(answer ? (0x80 | rcode) : 0));
  m += std::string("\x00\x01\x00", 3);
  m.push_back(ip != nullptr ? 1 : 0);
  m += std::string("\x00\x00\x00\x00", 4);
  m += std::string(
      "\x03web\x07"
      "example\x04test\x00\x00\x01\x00\x01",
      22);
  if (ip != nullptr) {
    m += std::string("\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04", 12);
    in_addr a{};
    inet_pton(AF_INET, ip, &a);
    m.append(reinterpret_cast<const char*>(&a), 4);
  }
  return m;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(DnsTable, QueriesAnswersTimeoutsAndTheDomainCache) {
  DnsTable table({.ephemeral_port = kEphemeral, .timeout_ns = 5'000'000'000});
  auto client = [&](uint16_t port, bool send, const std::string& m, uint64_t ts) {
    table.OnEvent(Event(port, "127.0.0.1", port, "127.0.0.53", 53, IPPROTO_UDP, NS_L7_DNS,
                        send ? NS_L7_SEND : NS_L7_RECV, ts, m.size(), 9, "dig"),
                  Bytes(m));
  };
  const uint64_t t0 = 1'000'000'000;
  client(40001, true, Dns(1, false, 0), t0);
  client(40001, false, Dns(1, true, 0, "198.18.0.10"), t0 + 2'000'000);
  client(40002, true, Dns(2, false, 0), t0);
  client(40002, false, Dns(2, true, 0, "198.18.0.10"), t0 + 4'000'000);
  client(40003, true, Dns(3, false, 0), t0);
  client(40003, false, Dns(3, true, 3), t0 + 1'000'000);
  client(40004, true, Dns(4, false, 0), t0);  // never answered
  const std::string garbage = "\x01\x02\x03";
  client(40005, false, garbage, t0);

  std::vector<v1::DnsflowEvent> early = table.Flush(1, t0 + 1'000'000'000);
  ASSERT_EQ(early.size(), 2u);  // rcode 0 (two queries folded) and 3; the open one waits
  for (const v1::DnsflowEvent& r : early) {
    EXPECT_EQ(r.direction(), v1::NetflowEvent::OUTGOING);
    EXPECT_EQ(r.transport(), v1::NetflowEvent::UDP);
    EXPECT_EQ(r.src_port(), 0u);
    EXPECT_EQ(r.dst_port(), 53u);
    EXPECT_EQ(Ip(r.dst_ip()), "127.0.0.53");
    EXPECT_EQ(r.process_name(), "dig");
    EXPECT_EQ(r.pid(), 9u);
    if (r.rcode() == 0) {
      EXPECT_EQ(r.count(), 2u);
      EXPECT_EQ(r.latency_ns(), 3'000'000u);
      EXPECT_EQ(r.latency_max_ns(), 4'000'000u);
    } else {
      EXPECT_EQ(r.rcode(), 3);
      EXPECT_EQ(r.count(), 1u);
      EXPECT_EQ(r.latency_ns(), 1'000'000u);
    }
  }
  std::vector<v1::DnsflowEvent> late = table.Flush(1, t0 + 6'000'000'000);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].rcode(), -1);
  EXPECT_EQ(late[0].count(), 1u);
  EXPECT_EQ(late[0].latency_ns(), 0u);
  EXPECT_EQ(table.counters().timed_out, 1u);
  EXPECT_EQ(table.counters().malformed, 1u);

  std::optional<std::string> name =
      table.DomainOf(*net::IpAddress::Parse("198.18.0.10"), t0 + 10'000'000'000);
  ASSERT_TRUE(name);
  EXPECT_EQ(*name, "web.example.test");
  EXPECT_FALSE(table.DomainOf(*net::IpAddress::Parse("198.18.0.11"), t0));
}

TEST(DnsTable, TcpMessagesAreReassembledAcrossCalls) {
  DnsTable table({.ephemeral_port = kEphemeral});
  const std::string query = Dns(7, false, 0), answer = Dns(7, true, 0, "198.18.0.20");
  auto framed = [](const std::string& m) {
    return std::string{static_cast<char>(m.size() >> 8), static_cast<char>(m.size())} + m;
  };
  const std::string q = framed(query), a = framed(answer);
  auto send = [&](bool out, const std::string& bytes, uint64_t ts) {
    table.OnEvent(Event(5, "127.0.0.1", 40100, "127.0.0.53", 53, IPPROTO_TCP, NS_L7_DNS,
                        out ? NS_L7_SEND : NS_L7_RECV, ts, bytes.size(), 9, "dig"),
                  Bytes(bytes));
  };
  send(true, q.substr(0, 2), 100);  // the length prefix alone, as dig writes it
  send(true, q.substr(2), 101);
  send(false, a.substr(0, 9), 500);
  send(false, a.substr(9), 600);
  std::vector<v1::DnsflowEvent> records = table.Flush(1, 1000);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].transport(), v1::NetflowEvent::TCP);
  EXPECT_EQ(records[0].rcode(), 0);
  // From the call that completed the query to the one that completed the answer.
  EXPECT_EQ(records[0].latency_ns(), 499u);
}

}  // namespace
}  // namespace nodescope::sensor::netflow
