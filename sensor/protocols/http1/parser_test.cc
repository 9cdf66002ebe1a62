// Real connections captured between curl and nginx (or a small Python server, for what nginx
// never sends) by testdata/capture.py, checked against nginx's own access log; plus Detect,
// paths, templating and the fuzz corpus. Synthetic streams are in stream_test.cc.
#include "sensor/protocols/http1/parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nodescope::sensor::http1 {

std::string CheckFuzzInput(const uint8_t* data, size_t size);  // fuzz.cc

void PrintTo(const Exchange& e, std::ostream* os) {
  *os << "{" << e.method << " " << e.path << (e.truncated ? " (truncated)" : "") << " HTTP/"
      << e.version << " -> " << e.status_code << ", " << e.request_bytes << "/" << e.response_bytes
      << " B, " << e.request_start_ns << ".." << e.response_start_ns
      << (e.request_incomplete ? ", request incomplete" : "") << "}";
}

namespace {

const std::filesystem::path kTestdata = NS_HTTP1_TESTDATA;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// One recv() of capture.py's relay.
struct Record {
  bool to_server;
  uint64_t ts_ns;
  std::string bytes;
};

std::vector<Record> LoadRecords(const std::string& name) {
  const std::string text = ReadFile(kTestdata / name);
  std::vector<Record> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    std::istringstream header(text.substr(pos, eol - pos));
    char mark = 0;
    size_t len = 0;
    Record r;
    header >> mark >> len >> r.ts_ns;
    if (eol == std::string::npos || (mark != '>' && mark != '<') || eol + 1 + len >= text.size()) {
      ADD_FAILURE() << name << ": bad record at offset " << pos;
      break;
    }
    r.to_server = mark == '>';
    r.bytes = text.substr(eol + 1, len);
    out.push_back(std::move(r));
    pos = eol + 1 + len + 1;
  }
  EXPECT_FALSE(out.empty()) << name;
  return out;
}

// Every byte on the wire belongs to an exchange: the captures hold whole connections.
void ExpectAllBytesAccountedFor(const std::vector<Exchange>& exchanges,
                                const std::vector<Record>& records) {
  uint64_t to_server = 0, to_client = 0, requests = 0, responses = 0;
  for (const Record& r : records) (r.to_server ? to_server : to_client) += r.bytes.size();
  for (const Exchange& e : exchanges) {
    requests += e.request_bytes;
    responses += e.response_bytes;
  }
  EXPECT_EQ(requests, to_server);
  EXPECT_EQ(responses, to_client);
}

struct Outcome {
  std::vector<Exchange> exchanges;
  bool failed = false;
  std::string failure;
  Role role = Role::kUnknown;
  Counters counters;
};

// Feeds the records as seen by the client (curl) or by the server (nginx), each record as one
// syscall (piece 0) or cut into syscalls of `piece` bytes that keep the record's timestamp.
Outcome Replay(const std::vector<Record>& records, bool client_side, size_t piece) {
  Connection conn;
  uint64_t last_ts = 0;
  for (const Record& r : records) {
    const Direction d = r.to_server == client_side ? Direction::kSent : Direction::kReceived;
    const size_t step = piece == 0 ? r.bytes.size() : piece;
    for (size_t off = 0; off < r.bytes.size(); off += step) {
      const std::string_view part = std::string_view(r.bytes).substr(off, step);
      conn.Feed(d, part, part.size(), r.ts_ns);
    }
    last_ts = r.ts_ns;
  }
  conn.Close(last_ts + 1);
  return Outcome{conn.TakeExchanges(), conn.failed(), conn.failure(), conn.role(), conn.counters()};
}

// Both sides, whole records, 7-byte and 1-byte syscalls: all must agree.
Outcome ReplayAllWays(const std::string& name) {
  const std::vector<Record> records = LoadRecords(name);
  const Outcome reference = Replay(records, /*client_side=*/true, 0);
  EXPECT_FALSE(reference.failed) << name << ": " << reference.failure;
  EXPECT_EQ(reference.role, Role::kClient);
  ExpectAllBytesAccountedFor(reference.exchanges, records);
  for (bool client_side : {true, false}) {
    for (size_t piece : {size_t{0}, size_t{7}, size_t{1}}) {
      SCOPED_TRACE(name + (client_side ? " client side" : " server side") + ", piece " +
                   std::to_string(piece));
      const Outcome o = Replay(records, client_side, piece);
      EXPECT_FALSE(o.failed) << o.failure;
      EXPECT_EQ(o.role, client_side ? Role::kClient : Role::kServer);
      EXPECT_EQ(o.exchanges, reference.exchanges);
      EXPECT_EQ(o.counters, reference.counters);
    }
  }
  return reference;
}

// nginx's view of the same requests: "$request_method $request_uri $status $request_length
// $bytes_sent", written by capture.py. nginx leaves out of $request_length a body it discards
// (as `return` does) when the body came in the same read as the head; then only the head is
// compared here, and ExpectAllBytesAccountedFor checks the rest against the wire.
void ExpectMatchesAccessLog(const std::vector<Exchange>& exchanges, const std::string& log_name,
                            bool log_has_request_body = true) {
  std::istringstream log(ReadFile(kTestdata / log_name));
  std::string method, uri;
  int status = 0;
  uint64_t request_length = 0, bytes_sent = 0;
  size_t i = 0;
  for (; log >> method >> uri >> status >> request_length >> bytes_sent; ++i) {
    SCOPED_TRACE(log_name + " line " + std::to_string(i + 1));
    ASSERT_LT(i, exchanges.size());
    const Exchange& e = exchanges[i];
    EXPECT_EQ(e.method, method);
    EXPECT_EQ(e.path, uri.substr(0, uri.find('?')));
    EXPECT_FALSE(e.truncated);
    EXPECT_EQ(e.status_code, status);
    if (log_has_request_body) {
      EXPECT_EQ(e.request_bytes, request_length);
    } else {
      EXPECT_GT(e.request_bytes, request_length);
    }
    EXPECT_EQ(e.response_bytes, bytes_sent);
    EXPECT_LT(e.request_start_ns, e.response_start_ns);
  }
  EXPECT_EQ(i, exchanges.size());
}

TEST(Http1Capture, GetKeepAliveTwoRequests) {
  const Outcome o = ReplayAllWays("get_keepalive-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "get_keepalive.log");
  const std::vector<Record> r = LoadRecords("get_keepalive-1.rec");
  ASSERT_EQ(o.exchanges.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(o.exchanges[i].version, "1.1");
    EXPECT_EQ(o.exchanges[i].request_start_ns, r[2 * i].ts_ns);
    EXPECT_EQ(o.exchanges[i].response_start_ns, r[2 * i + 1].ts_ns);
  }
  EXPECT_EQ(o.counters.unanswered_requests, 0u);
  EXPECT_EQ(o.counters.uncaptured_bytes, 0u);
}

TEST(Http1Capture, RedirectNotFoundServerError) {
  // nginx closes after the 500 (it turns keep-alive off for that status).
  const Outcome o = ReplayAllWays("status_codes-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "status_codes.log");
}

TEST(Http1Capture, PostWithBody) {
  const Outcome o = ReplayAllWays("post_body-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "post_body.log", /*log_has_request_body=*/false);
  ASSERT_EQ(o.exchanges.size(), 1u);
  EXPECT_EQ(o.exchanges[0].request_bytes, 141u + 34u);  // head + Content-Length: 34
}

TEST(Http1Capture, ChunkedGzipResponse) {
  const Outcome o = ReplayAllWays("chunked_gzip-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "chunked_gzip.log");
}

TEST(Http1Capture, ChunkExtensionsAndTrailers) {
  const Outcome o = ReplayAllWays("chunked_trailer-1.rec");
  const std::vector<Record> r = LoadRecords("chunked_trailer-1.rec");
  ASSERT_EQ(o.exchanges.size(), 1u);
  const Exchange& e = o.exchanges[0];
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.path, "/chunked");
  EXPECT_EQ(e.status_code, 200);
  EXPECT_EQ(e.request_bytes, 86u);
  EXPECT_EQ(e.response_bytes, 178u + 338u + 11u + 21u);
  EXPECT_EQ(e.response_start_ns, r[1].ts_ns);
}

TEST(Http1Capture, ExpectContinue) {
  const Outcome o = ReplayAllWays("expect_continue-1.rec");
  // nginx counts the interim "100 Continue" in $bytes_sent, and so does response_bytes.
  ExpectMatchesAccessLog(o.exchanges, "expect_continue.log");
  const std::vector<Record> r = LoadRecords("expect_continue-1.rec");
  ASSERT_EQ(o.exchanges.size(), 1u);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(o.exchanges[0].request_start_ns, r[0].ts_ns);
  EXPECT_EQ(o.exchanges[0].response_start_ns, r[3].ts_ns);  // the final response, not the 100
}

TEST(Http1Capture, Http10) {
  const Outcome o = ReplayAllWays("http10-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "http10.log");
  ASSERT_EQ(o.exchanges.size(), 1u);
  EXPECT_EQ(o.exchanges[0].version, "1.0");
}

TEST(Http1Capture, CloseDelimitedResponseEndsAtClose) {
  const Outcome o = ReplayAllWays("close_delimited-1.rec");
  ASSERT_EQ(o.exchanges.size(), 1u);
  EXPECT_EQ(o.exchanges[0].path, "/until-close");
  EXPECT_EQ(o.exchanges[0].version, "1.0");
  EXPECT_EQ(o.exchanges[0].request_bytes, 90u);
  EXPECT_EQ(o.exchanges[0].response_bytes, 1318u);

  // Without Close() the body could still go on.
  Connection conn;
  for (const Record& r : LoadRecords("close_delimited-1.rec")) {
    conn.Feed(r.to_server ? Direction::kSent : Direction::kReceived, r.bytes, r.bytes.size(),
              r.ts_ns);
  }
  EXPECT_TRUE(conn.TakeExchanges().empty());
  conn.Close(0);
  EXPECT_EQ(conn.TakeExchanges(), o.exchanges);
}

TEST(Http1Capture, HeadResponseHasNoBody) {
  const Outcome o = ReplayAllWays("head-1.rec");
  ExpectMatchesAccessLog(o.exchanges, "head.log");
}

TEST(Http1Capture, ExchangesBeforeCloseAreNotHeldBack) {
  // Keep-alive exchanges are reported as soon as the response ends, not at close.
  Connection conn;
  for (const Record& r : LoadRecords("get_keepalive-1.rec")) {
    conn.Feed(r.to_server ? Direction::kSent : Direction::kReceived, r.bytes, r.bytes.size(),
              r.ts_ns);
  }
  EXPECT_EQ(conn.TakeExchanges().size(), 2u);
}

TEST(Http1FuzzCorpus, ReplaysClean) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kTestdata / "fuzz")) {
    const std::string data = ReadFile(entry.path());
    EXPECT_EQ(CheckFuzzInput(reinterpret_cast<const uint8_t*>(data.data()), data.size()), "")
        << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5u);
}

TEST(Http1Detect, RequestsResponsesAndOthers) {
  using enum Detection;
  auto detect = [](std::string_view s) { return Detect(std::span<const char>(s)); };
  EXPECT_EQ(detect("GET / HTTP/1.1\r\n"), kRequest);
  EXPECT_EQ(detect("OPTIONS * HTTP/1.1"), kRequest);
  EXPECT_EQ(detect("PATCH /x"), kRequest);
  EXPECT_EQ(detect("HTTP/1.0 200 OK"), kResponse);
  EXPECT_EQ(detect("HTTP/1.1"), kResponse);
  EXPECT_EQ(detect(""), kNeedMore);
  EXPECT_EQ(detect("G"), kNeedMore);
  EXPECT_EQ(detect("H"), kNeedMore);
  EXPECT_EQ(detect("HTTP/1"), kNeedMore);
  EXPECT_EQ(detect("CONNECT"), kNeedMore);
  EXPECT_EQ(detect("GETX / HTTP/1.1"), kNotHttp);
  EXPECT_EQ(detect("get / HTTP/1.1"), kNotHttp);  // methods are case-sensitive
  EXPECT_EQ(detect("HTTP/2 200"), kNotHttp);
  EXPECT_EQ(detect("PRI * HTTP/2.0\r\n"), kNotHttp);  // the HTTP/2 preface
  EXPECT_EQ(detect("SSH-2.0-OpenSSH_9.2"), kNotHttp);
  EXPECT_EQ(detect(std::string_view("\x16\x03\x01\x02\x00", 5)), kNotHttp);  // TLS
}

TEST(Http1Path, TargetForms) {
  EXPECT_EQ(PathOfTarget("/a/b?x=1&y=2"), "/a/b");
  EXPECT_EQ(PathOfTarget("/a/b#frag"), "/a/b");
  EXPECT_EQ(PathOfTarget("/"), "/");
  EXPECT_EQ(PathOfTarget("/?q"), "/");
  EXPECT_EQ(PathOfTarget("http://example.com/p/q?z"), "/p/q");
  EXPECT_EQ(PathOfTarget("HTTPS://example.com:8443/p"), "/p");
  EXPECT_EQ(PathOfTarget("http://example.com"), "/");
  EXPECT_EQ(PathOfTarget("http://example.com?x=1"), "/");
  EXPECT_EQ(PathOfTarget("example.com:443"), "example.com:443");  // CONNECT
  EXPECT_EQ(PathOfTarget("*"), "*");                              // OPTIONS
}

TEST(Http1Path, Template) {
  EXPECT_EQ(TemplatePath("/users/42/orders"), "/users/{id}/orders");
  EXPECT_EQ(TemplatePath("/o/123e4567-e89b-12d3-a456-426614174000"), "/o/{id}");
  EXPECT_EQ(TemplatePath("/blob/9f1c2ab34de56f78"), "/blob/{id}");
  EXPECT_EQ(TemplatePath("/blob/9f1c2ab34de56f7"), "/blob/9f1c2ab34de56f7");  // 15 hex: a word?
  EXPECT_EQ(TemplatePath("/api/v2/items"), "/api/v2/items");
  EXPECT_EQ(TemplatePath("/api/v2/items/"), "/api/v2/items/");
  EXPECT_EQ(TemplatePath("/deadbeef"), "/deadbeef");
  EXPECT_EQ(TemplatePath("/1/2/3"), "/{id}/{id}/{id}");
  EXPECT_EQ(TemplatePath("/"), "/");
  EXPECT_EQ(TemplatePath(""), "");
  EXPECT_EQ(TemplatePath("*"), "*");
  EXPECT_EQ(TemplatePath("/a//7"), "/a//{id}");
}

}  // namespace
}  // namespace nodescope::sensor::http1
