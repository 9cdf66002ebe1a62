// The parsers of the traffic-test tools, fed output captured from the real programs on the test
// machine (nginx 1.22.1, libbpf-tools tcplife 0.1, wrk 4.1.0, ns-delay-bridge).
#include <gtest/gtest.h>

#include "tests/integration/delay_line.h"
#include "tests/integration/nginx.h"
#include "tests/integration/tcplife.h"
#include "tests/integration/wrk.h"

namespace nodescope::test {
namespace {

// Two requests on one keep-alive connection, one over IPv6, and a request line holding a raw
// tab, which nginx's log escaping turns into "\x09" so it cannot split the line.
constexpr const char* kAccessLog[] = {
    "127.0.0.1\t45528\t127.0.0.1\t18124\t1\t1\t200\t1264\t1024\t85\t0.000\t1795323075.112\t25759\t"
    "GET /1k.bin HTTP/1.1",
    "127.0.0.1\t45528\t127.0.0.1\t18124\t1\t2\t404\t308\t153\t81\t0.000\t1795323075.113\t25759\t"
    "GET /nf HTTP/1.1",
    "::1\t57006\t::1\t18124\t2\t1\t200\t1264\t1024\t88\t0.000\t1795323075.127\t25759\t"
    "GET /1k.bin?a=%09b HTTP/1.1",
    "127.0.0.1\t45532\t127.0.0.1\t18124\t3\t1\t400\t309\t157\t0\t0.005\t1795323075.146\t25759\t"
    "GET /x\\x09y HTTP/1.1",
};

TEST(ParseAccessLogLine, ReadsEveryField) {
  auto e = ParseAccessLogLine(kAccessLog[0]);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->remote_addr, "127.0.0.1");
  EXPECT_EQ(e->remote_port, 45528);
  EXPECT_EQ(e->server_addr, "127.0.0.1");
  EXPECT_EQ(e->server_port, 18124);
  EXPECT_EQ(e->connection, 1u);
  EXPECT_EQ(e->connection_requests, 1u);
  EXPECT_EQ(e->status, 200);
  EXPECT_EQ(e->bytes_sent, 1264u);
  EXPECT_EQ(e->body_bytes_sent, 1024u);
  EXPECT_EQ(e->request_length, 85u);
  EXPECT_DOUBLE_EQ(e->request_time_s, 0.0);
  EXPECT_DOUBLE_EQ(e->msec, 1795323075.112);
  EXPECT_EQ(e->pid, 25759);
  EXPECT_EQ(e->request, "GET /1k.bin HTTP/1.1");
}

TEST(ParseAccessLogLine, KeepAliveIpv6AndEscapedTab) {
  auto second = ParseAccessLogLine(kAccessLog[1]);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->connection, 1u);
  EXPECT_EQ(second->connection_requests, 2u);
  EXPECT_EQ(second->status, 404);
  auto v6 = ParseAccessLogLine(kAccessLog[2]);
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->remote_addr, "::1");
  EXPECT_EQ(v6->remote_port, 57006);
  auto tab = ParseAccessLogLine(kAccessLog[3]);
  ASSERT_TRUE(tab.has_value());
  EXPECT_EQ(tab->status, 400);
  EXPECT_EQ(tab->request_length, 0u);
  EXPECT_DOUBLE_EQ(tab->request_time_s, 0.005);
  EXPECT_EQ(tab->request, "GET /x\\x09y HTTP/1.1");
}

TEST(ParseAccessLogLine, RejectsOtherLines) {
  const std::string line = kAccessLog[0];
  EXPECT_FALSE(ParseAccessLogLine("").has_value());
  EXPECT_FALSE(ParseAccessLogLine(line.substr(0, line.rfind('\t'))).has_value());  // one short
  EXPECT_FALSE(ParseAccessLogLine(line + "\textra").has_value());
  // nginx's default combined format, as the Debian config would write it.
  EXPECT_FALSE(ParseAccessLogLine("127.0.0.1 - - [22/Nov/2026:04:37:01 +0000] \"GET / HTTP/1.1\" "
                                  "200 615 \"-\" \"curl/7.88.1\"")
                   .has_value());
  std::string bad_number = line;
  bad_number.replace(bad_number.find("1264"), 4, "12x4");
  EXPECT_FALSE(ParseAccessLogLine(bad_number).has_value());
}

// `tcplife -w`, a curl to nginx on [::1] and on 127.0.0.1.
constexpr const char* kTcpLife[] = {
    "PID     COMM             LADDR                      LPORT RADDR                      RPORT "
    "TX_KB  RX_KB  MS",
    "25810   curl             ::1                        57252 ::1                        18124 "
    "0.08   1.24   6.33",
    "25806   nginx            ::1                        18124 ::1                        57252 "
    "1.24   0.08   6.35",
    "25811   curl             127.0.0.1                  35380 127.0.0.1                  18124 "
    "0.08   1.24   4.84",
};

TEST(ParseTcpLifeLine, ReadsWideLines) {
  EXPECT_FALSE(ParseTcpLifeLine(kTcpLife[0]).has_value());
  auto c = ParseTcpLifeLine(kTcpLife[1]);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->pid, 25810);
  EXPECT_EQ(c->comm, "curl");
  EXPECT_EQ(c->laddr, "::1");
  EXPECT_EQ(c->lport, 57252);
  EXPECT_EQ(c->raddr, "::1");
  EXPECT_EQ(c->rport, 18124);
  EXPECT_DOUBLE_EQ(c->tx_kb, 0.08);
  EXPECT_DOUBLE_EQ(c->rx_kb, 1.24);
  EXPECT_DOUBLE_EQ(c->ms, 6.33);
  auto s = ParseTcpLifeLine(kTcpLife[2]);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->comm, "nginx");
  EXPECT_EQ(s->lport, 18124);
  auto v4 = ParseTcpLifeLine(kTcpLife[3]);
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->laddr, "127.0.0.1");
}

TEST(ParseTcpLifeLine, CommWithSpacesAndJunk) {
  std::string line = kTcpLife[3];
  line.replace(line.find("curl      "), 10, "Web Content");
  auto c = ParseTcpLifeLine(line);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->comm, "Web Content");
  EXPECT_EQ(c->lport, 35380);
  EXPECT_FALSE(ParseTcpLifeLine("libbpf: loading object 'tcplife_bpf' from buffer").has_value());
  EXPECT_FALSE(ParseTcpLifeLine("").has_value());
}

// The connections above moved a 1 KiB file: request 85 B (curl) and response 1264 B (nginx's
// bytes_sent). 1264 B alone would print as 1.23 KiB; with the FIN it is 1265 B, 1.24 KiB.
TEST(TcpLifeMatchesPayload, CountsSynAndFin) {
  EXPECT_TRUE(TcpLifeKbMatches(1.24, 1265));
  EXPECT_FALSE(TcpLifeKbMatches(1.24, 1264));
  auto client = ParseTcpLifeLine(kTcpLife[1]);
  auto server = ParseTcpLifeLine(kTcpLife[2]);
  ASSERT_TRUE(client.has_value() && server.has_value());
  EXPECT_TRUE(TcpLifeMatchesPayload(*client, 85, 1264, /*connector=*/true));
  EXPECT_TRUE(TcpLifeMatchesPayload(*server, 1264, 85, /*connector=*/false));
  EXPECT_FALSE(TcpLifeMatchesPayload(*server, 1260, 85, /*connector=*/false));
}

constexpr char kWrkWithLatency[] =
    "Running 1s test @ http://127.0.0.1:18124/1k.bin\n"
    "  1 threads and 4 connections\n"
    "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n"
    "    Latency   618.73us    1.03ms   8.87ms   85.39%\n"
    "    Req/Sec    20.52k     8.57k   29.39k    36.36%\n"
    "  Latency Distribution\n"
    "     50%  133.00us\n"
    "     75%  366.00us\n"
    "     90%    2.28ms\n"
    "     99%    4.16ms\n"
    "  22488 requests in 1.10s, 27.11MB read\n"
    "Requests/sec:  20372.00\n"
    "Transfer/sec:     24.56MB\n";

constexpr char kWrkNon2xx[] =
    "Running 1s test @ http://127.0.0.1:18124/nf\n"
    "  1 threads and 2 connections\n"
    "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n"
    "    Latency   541.41us    1.04ms  10.21ms   85.04%\n"
    "    Req/Sec    24.82k    13.39k   41.51k    30.00%\n"
    "  24651 requests in 1.01s, 7.24MB read\n"
    "  Non-2xx or 3xx responses: 24651\n"
    "Requests/sec:  24483.29\n"
    "Transfer/sec:      7.19MB\n";

TEST(ParseWrkOutput, ReadsSummaryAndLatencyDistribution) {
  auto r = ParseWrkOutput(kWrkWithLatency);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->requests, 22488u);
  EXPECT_DOUBLE_EQ(r->duration_s, 1.10);
  EXPECT_DOUBLE_EQ(r->bytes_read, 27.11 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(r->requests_per_sec, 20372.00);
  EXPECT_DOUBLE_EQ(r->transfer_bytes_per_sec, 24.56 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(r->latency_avg_us, 618.73);
  EXPECT_DOUBLE_EQ(r->latency_max_us, 8870);
  EXPECT_DOUBLE_EQ(r->latency_p50_us, 133);
  EXPECT_DOUBLE_EQ(r->latency_p90_us, 2280);
  EXPECT_DOUBLE_EQ(r->latency_p99_us, 4160);
  EXPECT_EQ(r->non_2xx_3xx, 0u);
  EXPECT_EQ(r->socket_errors, 0u);
}

TEST(ParseWrkOutput, ErrorsAndMissingSummary) {
  auto r = ParseWrkOutput(kWrkNon2xx);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->non_2xx_3xx, 24651u);
  EXPECT_DOUBLE_EQ(r->latency_p99_us, 0);  // run without --latency
  // The socket-error line as wrk's source prints it (no run here produced one).
  std::string with_errors = kWrkNon2xx;
  with_errors.insert(with_errors.find("Requests/sec"),
                     "  Socket errors: connect 1, read 20, write 0, timeout 3\n");
  auto e = ParseWrkOutput(with_errors);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->socket_errors, 24u);
  std::string cut = kWrkNon2xx;
  EXPECT_FALSE(ParseWrkOutput(cut.substr(0, cut.find("Requests/sec"))).ok());
  EXPECT_FALSE(ParseWrkOutput("unable to connect to 127.0.0.1:1 Connection refused\n").ok());
}

TEST(ParseDelayBridgeStats, ReadsTheClosingLine) {
  DelayBridgeStats s;
  ASSERT_TRUE(ParseDelayBridgeStats(
      "a_to_b_frames=428 a_to_b_bytes=30277 b_to_a_frames=431 b_to_a_bytes=11565155 dropped=0 "
      "late_frames=2 max_late_us=4507",
      &s));
  EXPECT_EQ(s.a_to_b_frames, 428u);
  EXPECT_EQ(s.a_to_b_bytes, 30277u);
  EXPECT_EQ(s.b_to_a_frames, 431u);
  EXPECT_EQ(s.b_to_a_bytes, 11565155u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.late_frames, 2u);
  EXPECT_EQ(s.max_late_us, 4507);
  EXPECT_FALSE(ParseDelayBridgeStats("ready", &s));
}

}  // namespace
}  // namespace nodescope::test
