// Synthetic streams for what a short capture cannot show: bodies far beyond the capture window,
// deep pipelining, gaps in the wrong place, hostile input and the limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sensor/protocols/http1/parser.h"

namespace nodescope::sensor::http1 {
namespace {

using namespace std::string_view_literals;  // a char array as a span would include its NUL

constexpr Direction kSent = Direction::kSent;
constexpr Direction kReceived = Direction::kReceived;

struct Step {
  Direction direction;
  std::string bytes;
};

struct Outcome {
  std::vector<Exchange> exchanges;
  bool failed = false;
  std::string failure;
  Counters counters;
};

Outcome Run(const std::vector<Step>& steps, const ConnectionOptions& options, size_t piece,
            bool close) {
  Connection conn(options);
  uint64_t ts = 100;
  for (const Step& s : steps) {
    ts += 10;
    const size_t step = piece == 0 ? s.bytes.size() : piece;
    for (size_t off = 0; off < s.bytes.size(); off += step) {
      const std::string_view part = std::string_view(s.bytes).substr(off, step);
      conn.Feed(s.direction, part, part.size(), ts);
    }
  }
  if (close) conn.Close(ts + 1);
  return Outcome{conn.TakeExchanges(), conn.failed(), conn.failure(), conn.counters()};
}

// Whole steps, 7-byte and 1-byte syscalls must agree; returns the whole-step outcome.
Outcome RunAllWays(const std::vector<Step>& steps, const ConnectionOptions& options = {},
                   bool close = true) {
  const Outcome whole = Run(steps, options, 0, close);
  for (size_t piece : {7, 1}) {
    const Outcome o = Run(steps, options, piece, close);
    EXPECT_EQ(o.exchanges, whole.exchanges) << "piece " << piece;
    EXPECT_EQ(o.failed, whole.failed) << "piece " << piece;
    EXPECT_EQ(o.failure, whole.failure) << "piece " << piece;
    EXPECT_EQ(o.counters, whole.counters) << "piece " << piece;
  }
  return whole;
}

// Feeds `head` followed by `body_len` bytes of body as syscalls of `syscall` bytes, of which
// only the first `window` are captured, as the BPF program reports them.
void FeedBeyondWindow(Connection& conn, Direction d, std::string_view head, uint64_t body_len,
                      uint64_t syscall, size_t window, uint64_t ts) {
  const uint64_t total = head.size() + body_len;
  std::string captured;
  for (uint64_t off = 0; off < total; off += syscall) {
    const uint64_t len = std::min(syscall, total - off);
    captured.clear();
    for (uint64_t i = off; i < off + std::min<uint64_t>(len, window); ++i) {
      captured.push_back(i < head.size() ? head[i] : 'x');
    }
    conn.Feed(d, captured, len, ts);
  }
}

TEST(Http1Stream, BodiesFarBeyondTheCaptureWindow) {
  const std::string req = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n";
  const std::string req2 = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string resp2 = "HTTP/1.1 204 No Content\r\n\r\n";
  std::vector<Exchange> reference;
  for (uint64_t syscall : {4096, 65536, 100003}) {
    for (size_t window : {64, 512, 4096}) {
      SCOPED_TRACE("syscall " + std::to_string(syscall) + " window " + std::to_string(window));
      Connection conn;
      FeedBeyondWindow(conn, kSent, req, 1 << 20, syscall, window, 10);
      FeedBeyondWindow(conn, kReceived, resp, 10 << 20, syscall, window, 20);
      conn.Feed(kSent, req2, req2.size(), 30);
      conn.Feed(kReceived, resp2, resp2.size(), 40);
      ASSERT_FALSE(conn.failed()) << conn.failure();
      const std::vector<Exchange> got = conn.TakeExchanges();
      ASSERT_EQ(got.size(), 2u);
      EXPECT_EQ(got[0].request_bytes, req.size() + (1 << 20));
      EXPECT_EQ(got[0].response_bytes, resp.size() + (10 << 20));
      EXPECT_EQ(got[0].status_code, 200);
      EXPECT_EQ(got[0].request_start_ns, 10u);
      EXPECT_EQ(got[0].response_start_ns, 20u);
      EXPECT_EQ(got[1].path, "/next");
      EXPECT_EQ(got[1].status_code, 204);
      if (reference.empty()) reference = got;
      EXPECT_EQ(got, reference);
      if (window < syscall) {
        EXPECT_GT(conn.counters().uncaptured_bytes, 0u);
      }
    }
  }
}

TEST(Http1Stream, ChunkedBodyBeyondTheWindowWhenEachWriteIsOneChunk) {
  // A server (nginx, Go) writes size line, data and CRLF in one syscall: the window ends inside
  // the data, the CRLF after it is skipped by count, and the next write starts with a size line.
  Connection conn;
  const std::string req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  conn.Feed(kReceived, req, req.size(), 1);  // the local process is the server
  conn.Feed(kSent, head, head.size(), 2);
  uint64_t sent = head.size();
  for (int i = 0; i < 100; ++i) {
    std::string chunk = "2000;i=" + std::to_string(i) + "\r\n" + std::string(8192, 'y') + "\r\n";
    conn.Feed(kSent, std::string_view(chunk).substr(0, 64), chunk.size(), 3);
    sent += chunk.size();
  }
  conn.Feed(kSent, "0\r\n\r\n"sv, 5, 4);
  sent += 5;
  ASSERT_FALSE(conn.failed()) << conn.failure();
  EXPECT_EQ(conn.role(), Role::kServer);
  const std::vector<Exchange> got = conn.TakeExchanges();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].response_bytes, sent);
}

TEST(Http1Stream, BodyBytesDueFollowLengthAndChunks) {
  Connection client;
  const std::string_view get = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"sv;
  client.Feed(Direction::kSent, get, get.size(), 1);
  EXPECT_EQ(client.BodyBytesDue(Direction::kSent), 0u);  // a GET has no body
  const std::string_view head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"sv;
  client.Feed(Direction::kReceived, head, head.size() + 1000, 2);  // head + 1000 body bytes
  EXPECT_EQ(client.BodyBytesDue(Direction::kReceived), 99000u);
  client.Feed(Direction::kReceived, {}, 99000, 3);
  EXPECT_EQ(client.BodyBytesDue(Direction::kReceived), 0u);
  ASSERT_EQ(client.TakeExchanges().size(), 1u);

  Connection server;
  const std::string_view post =
      "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"sv;
  server.Feed(Direction::kReceived, post, post.size(), 1);
  EXPECT_EQ(server.BodyBytesDue(Direction::kReceived), 0x10000u);  // this chunk's data only
  EXPECT_EQ(server.BodyBytesDue(Direction::kSent), 0u);
}

TEST(Http1Stream, GapInsideAChunkSizeLineFails) {
  Connection conn;
  std::string body;
  for (int i = 0; i < 10; ++i) body += "3e8\r\n" + std::string(1000, 'z') + "\r\n";
  body += "0\r\n\r\n";
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  conn.Feed(kSent, "GET / HTTP/1.1\r\n\r\n"sv, 18, 1);
  conn.Feed(kReceived, head, head.size(), 2);
  // Reads that do not line up with chunks: the second size line is beyond the window.
  for (size_t off = 0; off < body.size(); off += 1500) {
    const std::string_view part = std::string_view(body).substr(off, 1500);
    conn.Feed(kReceived, part.substr(0, 100), part.size(), 3);
  }
  EXPECT_TRUE(conn.failed());
  EXPECT_NE(conn.failure().find("chunk-size line"), std::string::npos) << conn.failure();
  EXPECT_TRUE(conn.TakeExchanges().empty());
  EXPECT_EQ(conn.counters().unanswered_requests, 1u);
  EXPECT_GT(conn.counters().ignored_bytes, 0u);
}

TEST(Http1Stream, GapInsideHeadersFails) {
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 40; ++i) head += "X-Filler-" + std::to_string(i) + ": some value\r\n";
  head += "Content-Length: 0\r\n\r\n";
  ASSERT_GT(head.size(), 512u);
  Connection conn;
  conn.Feed(kSent, "GET / HTTP/1.1\r\n\r\n"sv, 18, 1);
  conn.Feed(kReceived, std::string_view(head).substr(0, 512), head.size(), 2);
  EXPECT_TRUE(conn.failed());
  EXPECT_NE(conn.failure().find("response head"), std::string::npos) << conn.failure();
  conn.Feed(kSent, "GET / HTTP/1.1\r\n\r\n"sv, 18, 3);  // ignored from now on
  EXPECT_TRUE(conn.TakeExchanges().empty());
  EXPECT_EQ(conn.counters().ignored_bytes, head.size() - 512 + 18);
}

TEST(Http1Stream, PipelinedRequestsPairInOrder) {
  const std::string req[] = {
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
      "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n",
      "POST /c?x=1 HTTP/1.1\r\nHost: h\r\ncontent-LENGTH: 5\r\n\r\nhello",
  };
  const std::string resp[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  // HEAD: the body is not sent
      "HTTP/1.1 201 Created\r\nTRANSFER-encoding: Chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
  };
  const Outcome o =
      RunAllWays({{kSent, req[0] + req[1] + req[2]}, {kReceived, resp[0] + resp[1] + resp[2]}});
  ASSERT_FALSE(o.failed) << o.failure;
  ASSERT_EQ(o.exchanges.size(), 3u);
  const char* methods[] = {"GET", "HEAD", "POST"};
  const char* paths[] = {"/a", "/b", "/c"};
  const int statuses[] = {200, 200, 201};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(o.exchanges[i].method, methods[i]);
    EXPECT_EQ(o.exchanges[i].path, paths[i]);
    EXPECT_EQ(o.exchanges[i].status_code, statuses[i]);
    EXPECT_EQ(o.exchanges[i].request_bytes, req[i].size());
    EXPECT_EQ(o.exchanges[i].response_bytes, resp[i].size());
  }
}

TEST(Http1Stream, DeepPipelineDropsOldestRequests) {
  ConnectionOptions options;
  options.max_pending = 4;
  std::string requests, responses;
  for (int i = 0; i < 6; ++i) {
    requests += "GET /r" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
    responses += "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + std::to_string(i);
  }
  const Outcome o = RunAllWays({{kSent, requests}, {kReceived, responses}}, options);
  ASSERT_FALSE(o.failed) << o.failure;
  ASSERT_EQ(o.exchanges.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(o.exchanges[i].path, "/r" + std::to_string(i + 2));
  EXPECT_EQ(o.counters.requests_dropped, 2u);
  EXPECT_EQ(o.counters.orphan_responses, 0u);
}

TEST(Http1Stream, PathQueryAndTruncation) {
  ConnectionOptions options;
  options.max_path_len = 16;
  const Outcome o = RunAllWays(
      {{kReceived, "GET /0123456789abcde?q=" + std::string(100, 'q') + " HTTP/1.1\r\n\r\n"},
       {kSent, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
       {kReceived, "GET /0123456789abcdefXYZ/more HTTP/1.1\r\n\r\n"},
       {kSent, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
       {kReceived, "GET http://example.com/x/y?z#f HTTP/1.1\r\n\r\n"},
       {kSent, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}},
      options);
  ASSERT_EQ(o.exchanges.size(), 3u);
  EXPECT_EQ(o.exchanges[0].path, "/0123456789abcde");  // the query does not count
  EXPECT_FALSE(o.exchanges[0].truncated);
  EXPECT_EQ(o.exchanges[1].path, "/0123456789abcde");
  EXPECT_TRUE(o.exchanges[1].truncated);
  EXPECT_EQ(o.exchanges[2].path, "/x/y");
}

TEST(Http1Stream, GarbageFailsWithoutExchanges) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::string junk(1 + rng() % 4000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    const Outcome o = RunAllWays({{kSent, junk}, {kReceived, junk}});
    EXPECT_TRUE(o.exchanges.empty());
  }
  const Outcome ssh = RunAllWays({{kSent, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"}});
  EXPECT_TRUE(ssh.failed);
  EXPECT_NE(ssh.failure.find("not HTTP"), std::string::npos) << ssh.failure;
}

TEST(Http1Stream, DesyncAfterAGoodExchangeKeepsIt) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  const Outcome o = RunAllWays({{kSent, "GET /ok HTTP/1.1\r\n\r\n"},
                                {kReceived, ok},
                                {kSent, "GET /x HTTP/1.1\r\n\r\n"},
                                {kReceived, ok + "!!!\r\n\r\n"},  // more than the length
                                {kSent, "GET /y HTTP/1.1\r\n\r\n"}});
  EXPECT_TRUE(o.failed);
  ASSERT_EQ(o.exchanges.size(), 2u);
  EXPECT_EQ(o.exchanges[0].path, "/ok");
  EXPECT_EQ(o.counters.ignored_bytes, 19u);  // "!!!" failed as a status line; /y came after
}

TEST(Http1Stream, RoleFromEitherDirectionOrTold) {
  const std::string req = "GET / HTTP/1.1\r\n\r\n", resp = "HTTP/1.1 204 No Content\r\n\r\n";
  const std::pair<Direction, Role> cases[] = {{kSent, Role::kClient}, {kReceived, Role::kServer}};
  for (auto [first, role] : cases) {
    Connection conn;
    conn.Feed(first, req, req.size(), 1);
    conn.Feed(first == kSent ? kReceived : kSent, resp, resp.size(), 2);
    EXPECT_EQ(conn.role(), role);
    EXPECT_EQ(conn.TakeExchanges().size(), 1u);
  }
  Connection learnt_from_response;  // the response direction speaks first (e.g. a late attach)
  learnt_from_response.Feed(kReceived, "HTTP/1.1 200 OK\r\n"sv, 17, 1);
  EXPECT_EQ(learnt_from_response.role(), Role::kClient);
  EXPECT_FALSE(learnt_from_response.failed());

  ConnectionOptions told;
  told.role = Role::kServer;
  Connection wrong(told);  // told server, but the sent side carries requests
  wrong.Feed(kSent, req, req.size(), 1);
  wrong.Feed(kReceived, resp, resp.size(), 2);
  EXPECT_TRUE(wrong.failed());
}

TEST(Http1Stream, InterimAndBodylessResponses) {
  const Outcome o = RunAllWays({
      {kSent, "GET /1 HTTP/1.1\r\n\r\n"},
      {kReceived, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"},
      {kReceived, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
      {kSent, "GET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"},
      {kReceived, "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"},
      {kReceived, "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"},
  });
  ASSERT_FALSE(o.failed) << o.failure;
  ASSERT_EQ(o.exchanges.size(), 3u);
  EXPECT_EQ(o.exchanges[0].status_code, 200);
  EXPECT_EQ(o.exchanges[0].response_bytes, 44u + 40u);
  EXPECT_EQ(o.exchanges[0].response_start_ns, 130u);  // the final response's first byte
  EXPECT_EQ(o.exchanges[1].status_code, 204);
  EXPECT_EQ(o.exchanges[2].status_code, 304);
}

TEST(Http1Stream, ProtocolSwitchEndsParsing) {
  const std::pair<std::string, std::string> cases[] = {
      {"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"},
      {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
       "HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01"},
  };
  for (const auto& [request, response] : cases) {
    const Outcome o = RunAllWays({{kSent, request}, {kReceived, response}, {kSent, "\x16\x03"}});
    EXPECT_FALSE(o.failed) << o.failure;
    ASSERT_EQ(o.exchanges.size(), 1u);
    EXPECT_NE(o.exchanges[0].status_code, 0);
    EXPECT_GT(o.counters.ignored_bytes, 2u);
  }
}

TEST(Http1Stream, ChunkedRequestAndUnusualFraming) {
  const std::vector<Step> steps = {
      // Bare LF line ends, a coding list ending in chunked.
      {kSent, "POST /up HTTP/1.1\nTransfer-Encoding: gzip, chunked\n\n4\nabcd\n0\n\n"},
      {kReceived, "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nfine!"},
      // The empty line a client may send after a body (RFC 9112 section 2.2).
      {kSent, "\r\nGET /stream HTTP/1.0\r\n\r\n"},
      // A response whose final coding is not chunked is delimited by the close (rule 4).
      {kReceived, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbinary..."},
  };
  const Outcome o = RunAllWays(steps);
  ASSERT_FALSE(o.failed) << o.failure;
  ASSERT_EQ(o.exchanges.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(o.exchanges[i].request_bytes, steps[2 * i].bytes.size());
    EXPECT_EQ(o.exchanges[i].response_bytes, steps[2 * i + 1].bytes.size());
  }
  EXPECT_EQ(o.exchanges[1].version, "1.0");
  EXPECT_EQ(o.exchanges[1].path, "/stream");
}

TEST(Http1Stream, InvalidFramingFails) {
  for (const std::string head : {
           "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
           "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
           "GET /\r\n\r\n",
           "GET / HTTP/2.0\r\n\r\n",
       }) {
    const Outcome o = RunAllWays({{kSent, head}});
    EXPECT_TRUE(o.failed) << head;
  }
}

// A head is parsed in the pass that finds its end when it comes in one call, and from the
// buffer when it was split: both must read it alike.
TEST(Http1Stream, HeadsParseAlikeWholeOrSplit) {
  struct Exchanged {
    std::string request, response;
    uint64_t request_bytes, response_bytes;
  };
  for (const Exchanged& c : std::vector<Exchanged>{
           // A line of nothing but CRs is the empty line that ends the head.
           {"GET /a HTTP/1.1\r\nHost: x\r\n\r\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 29, 40},
           // Both framing fields are read from heads that came whole.
           {"POST /p HTTP/1.1\r\nHost: x\r\ncontent-length:\t3 \r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding:  chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n", 52, 59},
       }) {
    const Outcome o = RunAllWays({{kSent, c.request}, {kReceived, c.response}});
    ASSERT_FALSE(o.failed) << o.failure;
    ASSERT_EQ(o.exchanges.size(), 1u) << c.request;
    EXPECT_EQ(o.exchanges[0].request_bytes, c.request_bytes) << c.request;
    EXPECT_EQ(o.exchanges[0].response_bytes, c.response_bytes) << c.request;
  }

  // A line that does not parse fails the head with its own reason...
  const Outcome bad = RunAllWays({{kSent, "GET / HTTP/1.1\r\nno colon here\r\nHost: x\r\n\r\n"}});
  EXPECT_TRUE(bad.failed);
  EXPECT_NE(bad.failure.find("without 'name:'"), std::string::npos) << bad.failure;

  // ...unless the head is longer than the limit, which is said first however it was cut.
  ConnectionOptions small;
  small.max_head_bytes = 64;
  std::string head = "GET / HTTP/1.1\r\nno colon here\r\n";
  for (int i = 0; i < 8; ++i) head += "X-Filler: 0123456789\r\n";
  const Outcome long_head = RunAllWays({{kSent, head + "\r\n"}}, small);
  EXPECT_TRUE(long_head.failed);
  EXPECT_NE(long_head.failure.find("longer than 64"), std::string::npos) << long_head.failure;
}

TEST(Http1Stream, EarlyFinalResponseWithTheRequestBodyUnfinished) {
  const Outcome o = RunAllWays({
      {kSent, "POST /big HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'b')},
      {kReceived, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"},
  });
  ASSERT_EQ(o.exchanges.size(), 1u);
  EXPECT_EQ(o.exchanges[0].status_code, 413);
  EXPECT_TRUE(o.exchanges[0].request_incomplete);
  EXPECT_EQ(o.exchanges[0].request_bytes, 1046u);
}

TEST(Http1Stream, LimitsBoundMemory) {
  ConnectionOptions options;
  options.max_completed = 2;
  std::vector<Step> steps;
  for (int i = 0; i < 5; ++i) {
    steps.push_back({kSent, "GET / HTTP/1.1\r\n\r\n"});
    steps.push_back({kReceived, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"});
  }
  steps.push_back({kSent, "GET /never-answered HTTP/1.1\r\n\r\n"});
  const Outcome o = RunAllWays(steps, options);
  EXPECT_EQ(o.exchanges.size(), 2u);
  EXPECT_EQ(o.counters.exchanges_dropped, 3u);
  EXPECT_EQ(o.counters.unanswered_requests, 1u);

  // A head that never ends: failed at max_head_bytes, not buffered further.
  const Outcome huge = RunAllWays(
      {{kSent, "GET / HTTP/1.1\r\n" + std::string(20000, 'h')}, {kSent, std::string(100, 'h')}});
  EXPECT_TRUE(huge.failed);
  EXPECT_NE(huge.failure.find("longer than 16384"), std::string::npos) << huge.failure;
}

TEST(Http1Stream, ResponsesWithoutRequestsAndStartGaps) {
  ConnectionOptions client;
  client.role = Role::kClient;
  const Outcome o = RunAllWays({{kReceived, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
                                {kSent, "GET / HTTP/1.1\r\n\r\n"},
                                {kReceived, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny"}},
                               client);
  EXPECT_EQ(o.counters.orphan_responses, 1u);
  EXPECT_EQ(o.exchanges.size(), 1u);

  Connection conn;  // the first bytes of the connection are beyond the window
  conn.Feed(kSent, "GE"sv, 100, 1);
  EXPECT_TRUE(conn.failed());
}

}  // namespace
}  // namespace nodescope::sensor::http1
