// netflow with real traffic: nginx and curl, UDP sockets, namespaces over veth, packet loss and a
// delay line. Every byte count is held against what the peers themselves say crossed the socket
// (nginx's access log: $request_length is what nginx read, $bytes_sent what it wrote; curl's own
// size_request) and against libbpf-tools' tcplife. netflow counts payload as the applications
// passed it through the socket calls: no TCP/IP headers, no retransmitted copies.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/delay_line.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"
#include "tests/integration/nginx.h"
#include "tests/integration/node_stack.h"
#include "tests/integration/packet_drop.h"
#include "tests/integration/tcplife.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "nf-node";

struct Totals {
  uint64_t bytes_read = 0, bytes_written = 0, retransmits = 0, established = 0, closed = 0;
  uint64_t records = 0;
  std::set<std::string> pids, names, netns, families;
  std::vector<int64_t> rtts;
};

class Netflow : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(stack_.StartAggregator().ok()); }
  void TearDown() override { stack_.Stop(); }

  void StartSensor(const std::string& extra = "") {
    Status started = stack_.StartSensor(kHost, "interval: 1s\n" + extra);
    ASSERT_TRUE(started.ok()) << started.message();
  }

  std::vector<json> Records() { return stack_.Records("netflow"); }

  // Sums the records whose tags include every `match` pair.
  Totals Sum(const std::map<std::string, std::string>& match) {
    Totals t;
    for (const json& r : Records()) {
      const json& tags = r["tags"];
      bool ok = true;
      for (const auto& [k, v] : match) ok &= tags.value(k, std::string("\x01")) == v;
      if (!ok) continue;
      const json& f = r["fields"];
      t.bytes_read += f.value("bytes_read", 0);
      t.bytes_written += f.value("bytes_written", 0);
      t.retransmits += f.value("retransmits", 0);
      t.established += f.value("tcp_established", 0);
      t.closed += f.value("tcp_closed", 0);
      if (f.value("rtt", 0) > 0) t.rtts.push_back(f.value("rtt", 0));
      ++t.records;
      t.pids.insert(tags.value("pid", ""));
      t.names.insert(tags.value("process_name", ""));
      t.netns.insert(tags.value("netns", ""));
      t.families.insert(tags.value("family", ""));
    }
    return t;
  }

  // Waits until the records matching `match` count `closed` TCP closes, and a further interval
  // so that nothing of those connections is still on its way.
  Totals WaitClosed(const std::map<std::string, std::string>& match, uint64_t closed) {
    bool done = WaitFor([&] { return Sum(match).closed >= closed; }, 20s);
    if (!done) {
      std::string all;
      for (const json& r : Records()) all += r.dump() + "\n";
      ADD_FAILURE() << "closed so far: " << Sum(match).closed << " of " << closed << "\n"
                    << stack_.sensor->Log() << "\nnetflow records:\n"
                    << all;
    }
    std::this_thread::sleep_for(1500ms);
    return Sum(match);
  }

  void LoopbackFilesAreExact(const std::string& sensor_extra);

  NodeStack stack_;
};

struct AccessTotals {
  uint64_t request_length = 0, bytes_sent = 0;
  std::set<std::string> pids;
};

AccessTotals SumAccess(const std::vector<AccessLogEntry>& log) {
  AccessTotals t;
  for (const auto& e : log) {
    t.request_length += e.request_length;
    t.bytes_sent += e.bytes_sent;
    t.pids.insert(std::to_string(e.pid));
  }
  return t;
}

// Servers start before the sensor in these tests: their readiness checks (a connect from this
// process) would otherwise be connections of their own in the records.
void Netflow::LoopbackFilesAreExact(const std::string& sensor_extra) {
  Result<std::unique_ptr<Nginx>> nginx =
      Nginx::Start({.files = {{"/1k.bin", 1024}, {"/1m.bin", 1 << 20}, {"/10m.bin", 10 << 20}},
                    .keepalive_timeout_s = 0});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  StartSensor(sensor_extra);
  Result<std::unique_ptr<TcpLife>> tcplife = TcpLife::Start({});
  ASSERT_TRUE(tcplife.ok()) << tcplife.status().message();
  const std::string port = std::to_string((*nginx)->port());
  uint64_t curl_request_bytes = 0;
  for (const char* path : {"/1k.bin", "/1m.bin", "/10m.bin"}) {
    Result<CurlResult> r = Curl(nullptr, (*nginx)->Url(path));
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->http_code, 200);
    curl_request_bytes += r->size_request;
  }
  AccessTotals access = SumAccess((*nginx)->WaitForAccessLog(3, 10s));

  Totals client = WaitClosed({{"dst_port", port}, {"direction", "outgoing"}}, 3);
  Totals server = WaitClosed({{"src_port", port}, {"direction", "incoming"}}, 3);

  EXPECT_EQ(client.bytes_written, curl_request_bytes);
  EXPECT_EQ(client.bytes_written, access.request_length);
  EXPECT_EQ(client.bytes_read, access.bytes_sent);
  EXPECT_EQ(client.established, 3u);
  EXPECT_EQ(client.closed, 3u);
  EXPECT_EQ(client.names, std::set<std::string>{"curl"});
  EXPECT_EQ(client.families, std::set<std::string>{"IPv4"});
  EXPECT_FALSE(client.rtts.empty());

  EXPECT_EQ(server.bytes_read, access.request_length);
  EXPECT_EQ(server.bytes_written, access.bytes_sent);
  EXPECT_EQ(server.established, 3u);
  EXPECT_EQ(server.closed, 3u);
  EXPECT_EQ(server.names, std::set<std::string>{"nginx"});
  EXPECT_EQ(server.pids, access.pids);  // the worker that served, not the master

  // The peer: tcplife prints each closed connection's bytes in KiB with two decimals.
  uint64_t seen = 0;
  double life_tx_kb = 0, life_rx_kb = 0;
  for (const TcpLifeConnection& c : (*tcplife)->Connections()) {
    if (c.lport != (*nginx)->port()) continue;
    life_tx_kb += c.tx_kb;
    life_rx_kb += c.rx_kb;
    ++seen;
  }
  ASSERT_EQ(seen, 3u) << (*tcplife)->Log();
  EXPECT_NEAR(life_tx_kb * 1024, double(server.bytes_written), 0.01 * server.bytes_written);
  EXPECT_NEAR(life_rx_kb * 1024, double(server.bytes_read), 0.01 * server.bytes_read + 16);

  // Prometheus on the aggregator: the same totals under the bounded label set.
  const std::string labels = std::string("{direction=\"incoming\",family=\"IPv4\",host=\"") +
                             kHost + "\",process_name=\"nginx\",server_port=\"" + port +
                             "\",transport=\"tcp\"}";
  const std::string metrics = HttpGet(stack_.http_port, "/metrics");
  EXPECT_EQ(MetricValue(metrics, "nodescope_netflow_bytes_written_total" + labels),
            double(server.bytes_written))
      << metrics;
  EXPECT_EQ(MetricValue(metrics, "nodescope_netflow_bytes_read_total" + labels),
            double(server.bytes_read));
  EXPECT_EQ(MetricValue(metrics, "nodescope_netflow_tcp_closed_total" + labels), 3.0);
}

TEST_F(Netflow, LoopbackFilesAreExactOnBothSidesAndAgreeWithTcplife) { LoopbackFilesAreExact(""); }

// The fallback strategy, forced: classic tracepoints read through CO-RE.
TEST_F(Netflow, LoopbackFilesAreExactWithTheTracepointStrategy) {
  LoopbackFilesAreExact("probe_strategies: {netflow: tracepoint}\n");
  EXPECT_NE(stack_.sensor->Log().find("probe netflow: attached with strategy tracepoint"),
            std::string::npos);
}

TEST_F(Netflow, ThousandShortConnectionsFoldIntoFewRecords) {
  Result<std::unique_ptr<Nginx>> nginx =
      Nginx::Start({.files = {{"/1k.bin", 1024}}, .keepalive_timeout_s = 0});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  StartSensor();
  // One curl, 1,000 URLs, one connection each (Connection: close), one after the other.
  Result<CurlResult> r =
      Curl(nullptr, (*nginx)->Url("/1k.bin") + "?n=[1-1000]", {"-H", "Connection: close"}, 120s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  AccessTotals access = SumAccess((*nginx)->WaitForAccessLog(1000, 30s));
  const std::string port = std::to_string((*nginx)->port());
  Totals client = WaitClosed({{"dst_port", port}, {"process_name", "curl"}}, 1000);
  Totals server = WaitClosed({{"src_port", port}, {"process_name", "nginx"}}, 1000);
  EXPECT_EQ(client.established, 1000u);
  EXPECT_EQ(client.closed, 1000u);
  EXPECT_EQ(server.established, 1000u);
  EXPECT_EQ(server.closed, 1000u);
  EXPECT_EQ(client.bytes_read, access.bytes_sent);
  EXPECT_EQ(client.bytes_written, access.request_length);
  EXPECT_EQ(server.bytes_read, access.request_length);
  EXPECT_EQ(server.bytes_written, access.bytes_sent);
  // Folded: one record per side per 1 s interval, not one per connection.
  EXPECT_LE(client.records, 40u);
  EXPECT_LE(server.records, 40u);
  for (const json& rec : Records()) {
    if (rec["tags"].value("dst_port", "") == port) EXPECT_EQ(rec["tags"]["src_port"], "*");
  }
}

TEST_F(Netflow, NamespacesOverIpv4AndIpv6) {
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  const Endpoint& a = (*pair)->a();
  const Endpoint& b = (*pair)->b();
  Result<std::unique_ptr<Nginx>> nginx = Nginx::Start({.ns = a.ns,
                                                       .listen = {a.ipv4, a.ipv6},
                                                       .files = {{"/1m.bin", 1 << 20}},
                                                       .keepalive_timeout_s = 0});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  StartSensor();
  for (const std::string& addr : {a.ipv4, a.ipv6}) {
    Result<CurlResult> r = Curl(b.ns, (*nginx)->Url("/1m.bin", addr));
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->size_download, uint64_t{1} << 20);
  }
  std::vector<AccessLogEntry> log = (*nginx)->WaitForAccessLog(2, 10s);
  ASSERT_EQ(log.size(), 2u);
  const std::string port = std::to_string((*nginx)->port());
  for (const auto& [addr, family] : {std::pair{a.ipv4, "IPv4"}, std::pair{a.ipv6, "IPv6"}}) {
    AccessTotals access;
    for (const auto& e : log) {
      if (e.server_addr == addr) access = SumAccess({e});
    }
    Totals client = WaitClosed({{"dst_ip", addr}, {"dst_port", port}}, 1);
    Totals server = WaitClosed({{"src_ip", addr}, {"src_port", port}}, 1);
    EXPECT_EQ(client.families, std::set<std::string>{family});
    EXPECT_EQ(server.families, std::set<std::string>{family});
    EXPECT_EQ(client.bytes_read, access.bytes_sent) << family;
    EXPECT_EQ(client.bytes_written, access.request_length) << family;
    EXPECT_EQ(server.bytes_read, access.request_length) << family;
    EXPECT_EQ(server.bytes_written, access.bytes_sent) << family;
    EXPECT_EQ(client.names, std::set<std::string>{"curl"});
    EXPECT_EQ(server.names, std::set<std::string>{"nginx"});
    // Two namespaces: two different netns tags.
    ASSERT_EQ(client.netns.size(), 1u);
    ASSERT_EQ(server.netns.size(), 1u);
    EXPECT_NE(*client.netns.begin(), *server.netns.begin());
  }
}

// An unconnected UDP socket on 127.0.0.1 and a port the kernel picked (in *addr); -1 on failure.
int UdpServer(sockaddr_in* addr) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// Connected UDP sockets in this process: 7 x 1000 bytes one way, 5 x 1500 back.
TEST_F(Netflow, UdpBytesAreExactBothWays) {
  StartSensor();
  int server = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(server, 0);
  ASSERT_GE(client, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string server_port = std::to_string(ntohs(addr.sin_port));
  std::string out(1000, 'q'), back(1500, 'r');
  char buf[4096];
  for (int i = 0; i < 7; ++i) ASSERT_EQ(send(client, out.data(), out.size(), 0), 1000);
  sockaddr_in from{};
  socklen_t from_len = sizeof(from);
  ASSERT_EQ(recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len),
            1000);
  // Like socat's UDP-LISTEN: connect to the first sender, then talk to it alone.
  ASSERT_EQ(connect(server, reinterpret_cast<sockaddr*>(&from), from_len), 0);
  for (int i = 1; i < 7; ++i) ASSERT_EQ(recv(server, buf, sizeof(buf), 0), 1000);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(send(server, back.data(), back.size(), 0), 1500);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(recv(client, buf, sizeof(buf), 0), 1500);

  auto settled = [&](const std::map<std::string, std::string>& m, uint64_t r, uint64_t w) {
    return WaitFor(
        [&] {
          Totals t = Sum(m);
          return t.bytes_read >= r && t.bytes_written >= w;
        },
        10s);
  };
  std::map<std::string, std::string> c = {{"transport", "udp"}, {"dst_port", server_port}};
  std::map<std::string, std::string> s = {{"transport", "udp"}, {"src_port", server_port}};
  EXPECT_TRUE(settled(c, 7500, 7000));
  EXPECT_TRUE(settled(s, 7000, 7500));
  std::this_thread::sleep_for(2500ms);  // nothing more may arrive
  close(client);
  close(server);
  Totals ct = Sum(c), st = Sum(s);
  EXPECT_EQ(ct.bytes_written, 7000u);
  EXPECT_EQ(ct.bytes_read, 7500u);
  EXPECT_EQ(st.bytes_read, 7000u);
  EXPECT_EQ(st.bytes_written, 7500u);
  EXPECT_EQ(ct.pids, std::set<std::string>{std::to_string(getpid())});
  EXPECT_EQ(ct.established + ct.closed + st.established + st.closed, 0u);
  for (const json& r : Records()) {
    if (r["tags"].value("src_port", "") == server_port) {
      EXPECT_EQ(r["tags"]["direction"], "incoming");
    }
  }
}

// Short-lived UDP clients, as dig or a resolver library make them: a socket per query, closed at
// once. UDP has no close to see, so an entry stays until its address is reused; a new socket
// soon takes a freed one's memory (the map key), and that entry's last bytes must reach the
// records then, not vanish. Also every socket that lived between two walks must be counted.
TEST_F(Netflow, ShortLivedUdpSocketsAreExact) {
  StartSensor();
  sockaddr_in addr{};
  const int server = UdpServer(&addr);
  ASSERT_GE(server, 0);
  const std::string server_port = std::to_string(ntohs(addr.sin_port));
  constexpr int kQueries = 2000;
  char buf[512] = {};
  for (int i = 0; i < kQueries; ++i) {
    int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(send(client, buf, 40, 0), 40);
    sockaddr_in from{};
    socklen_t from_len = sizeof(from);
    ASSERT_EQ(recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len),
              40);
    ASSERT_EQ(sendto(server, buf, 90, 0, reinterpret_cast<sockaddr*>(&from), from_len), 90);
    ASSERT_EQ(recv(client, buf, sizeof(buf), 0), 90);
    close(client);
    if (i % 100 == 99) std::this_thread::sleep_for(20ms);  // let RCU free the closed ones
  }
  std::map<std::string, std::string> clients = {{"transport", "udp"}, {"dst_port", server_port}};
  const bool settled = WaitFor(
      [&] {
        Totals t = Sum(clients);
        return t.bytes_written >= 40u * kQueries && t.bytes_read >= 90u * kQueries;
      },
      20s);
  std::this_thread::sleep_for(2500ms);  // nothing more may arrive
  close(server);
  Totals t = Sum(clients);
  EXPECT_TRUE(settled);
  EXPECT_EQ(t.bytes_written, 40u * kQueries);
  EXPECT_EQ(t.bytes_read, 90u * kQueries);
  const std::string metrics = HttpGet(stack_.sensor_http_port, "/metrics");
  EXPECT_EQ(MetricSum(metrics, "nodescope_sensor_dropped_total"), 0) << metrics;
}

// A server on an unconnected socket (recvfrom/sendto, as DNS servers do) answering two clients
// on different addresses: one record per client, exact both ways.
TEST_F(Netflow, UnconnectedUdpServerIsSplitPerPeer) {
  StartSensor();
  ASSERT_EQ(stack_.sensor->Log().find("not split per peer"), std::string::npos)
      << stack_.sensor->Log();
  sockaddr_in addr{};
  const int server = UdpServer(&addr);
  ASSERT_GE(server, 0);
  const std::string server_port = std::to_string(ntohs(addr.sin_port));
  char buf[4096] = {};
  const std::map<std::string, int> sizes = {{"127.0.0.2", 300}, {"127.0.0.3", 500}};
  for (const auto& [client_ip, size] : sizes) {
    int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, client_ip.c_str(), &local.sin_addr);
    ASSERT_EQ(bind(client, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(sendto(client, buf, size, 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
                size);
      sockaddr_in from{};
      socklen_t from_len = sizeof(from);
      ASSERT_EQ(
          recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len),
          size);
      ASSERT_EQ(sendto(server, buf, 2 * size, 0, reinterpret_cast<sockaddr*>(&from), from_len),
                2 * size);
      ASSERT_EQ(recv(client, buf, sizeof(buf), 0), 2 * size);
    }
    close(client);
  }
  for (const auto& [client_ip, size] : sizes) {
    std::map<std::string, std::string> m = {
        {"transport", "udp"}, {"src_port", server_port}, {"dst_ip", client_ip}};
    uint64_t in = 4 * size, out = 8 * size;
    EXPECT_TRUE(WaitFor(
        [&] {
          Totals t = Sum(m);
          return t.bytes_read >= in && t.bytes_written >= out;
        },
        10s))
        << client_ip;
  }
  std::this_thread::sleep_for(2500ms);
  close(server);
  for (const auto& [client_ip, size] : sizes) {
    Totals t = Sum({{"transport", "udp"}, {"src_port", server_port}, {"dst_ip", client_ip}});
    EXPECT_EQ(t.bytes_read, uint64_t(4 * size)) << client_ip;
    EXPECT_EQ(t.bytes_written, uint64_t(8 * size)) << client_ip;
    Totals c = Sum({{"transport", "udp"}, {"dst_port", server_port}, {"src_ip", client_ip}});
    EXPECT_EQ(c.bytes_written, uint64_t(4 * size)) << client_ip;
    EXPECT_EQ(c.bytes_read, uint64_t(8 * size)) << client_ip;
  }
  EXPECT_EQ(Sum({{"transport", "udp"}, {"src_port", server_port}, {"dst_ip", "0.0.0.0"}}).records,
            0u);
}

TEST_F(Netflow, RetransmissionsFromInducedLossAreCounted) {
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  const Endpoint& a = (*pair)->a();
  const Endpoint& b = (*pair)->b();
  Result<std::unique_ptr<Nginx>> nginx = Nginx::Start({.ns = a.ns,
                                                       .listen = {a.ipv4},
                                                       .files = {{"/10m.bin", 10 << 20}},
                                                       .keepalive_timeout_s = 0});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  StartSensor();
  // The client's side loses every 5th packet from the server: nginx must retransmit.
  Result<std::unique_ptr<PacketDrop>> drop =
      PacketDrop::Create({.ns = b.ns,
                          .port = (*nginx)->port(),
                          .hook = PacketDropOptions::Hook::kInput,
                          .every_nth = 5});
  ASSERT_TRUE(drop.ok()) << drop.status().message();
  Result<CurlResult> r = Curl(b.ns, (*nginx)->Url("/10m.bin"), {}, 120s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size_download, uint64_t{10} << 20);
  Result<PacketDropCounters> dropped = (*drop)->Counters();
  ASSERT_TRUE(dropped.ok());
  ASSERT_GT(dropped->dropped_packets, 0u);
  AccessTotals access = SumAccess((*nginx)->WaitForAccessLog(1, 10s));
  Totals server = WaitClosed({{"src_port", std::to_string((*nginx)->port())}}, 1);
  // Every lost packet is sent again at least once; a lost GSO super-frame is several segments.
  EXPECT_GE(server.retransmits, dropped->dropped_packets);
  EXPECT_EQ(server.bytes_written, access.bytes_sent);  // retransmitted copies are not payload
}

TEST_F(Netflow, RttFollowsADelayLine) {
  Result<std::unique_ptr<DelayLine>> line = DelayLine::Create(10ms);
  ASSERT_TRUE(line.ok()) << line.status().message();
  Result<std::unique_ptr<Nginx>> nginx = Nginx::Start({.ns = (*line)->a().ns,
                                                       .listen = {(*line)->a().ipv4},
                                                       .files = {{"/1m.bin", 1 << 20}},
                                                       .keepalive_timeout_s = 0});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  StartSensor();
  for (int i = 0; i < 3; ++i) {
    Result<CurlResult> r = Curl((*line)->b().ns, (*nginx)->Url("/1m.bin"), {}, 60s);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  const std::string port = std::to_string((*nginx)->port());
  Totals client = WaitClosed({{"dst_port", port}}, 3);
  Totals server = WaitClosed({{"src_port", port}}, 3);
  // 10 ms each way: the kernel's smoothed RTT is 20 ms, within 20%.
  for (const Totals* t : {&client, &server}) {
    ASSERT_FALSE(t->rtts.empty());
    for (int64_t rtt : t->rtts) {
      EXPECT_NEAR(double(rtt), 20000.0, 4000.0);
    }
  }
}

// The sockets are SOCK_CLOEXEC: a sensor started later must not inherit (and keep open) them.
TEST_F(Netflow, ConnectionOlderThanTheSensorReportsDeltasFromItsStart) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  std::string before(1000, 'b');
  ASSERT_EQ(write(client, before.data(), before.size()), 1000);
  char buf[65536];
  ASSERT_EQ(read(server, buf, sizeof(buf)), 1000);

  StartSensor();
  std::string after(5000, 'a');
  ASSERT_EQ(write(client, after.data(), after.size()), 5000);
  size_t got = 0;
  while (got < 5000) {
    ssize_t n = read(server, buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got += n;
  }
  std::string reply(3000, 'r');
  ASSERT_EQ(write(server, reply.data(), reply.size()), 3000);
  got = 0;
  while (got < 3000) {
    ssize_t n = read(client, buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got += n;
  }
  close(client);
  close(server);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  Totals c = WaitClosed({{"dst_port", port}, {"transport", "tcp"}}, 1);
  Totals s = WaitClosed({{"src_port", port}, {"transport", "tcp"}}, 1);
  close(listener);
  EXPECT_EQ(c.bytes_written, 5000u);  // not the 1000 sent before the sensor started
  EXPECT_EQ(c.bytes_read, 3000u);
  EXPECT_EQ(c.established, 0u);
  EXPECT_EQ(c.closed, 1u);
  EXPECT_EQ(s.bytes_read, 5000u);
  EXPECT_EQ(s.bytes_written, 3000u);
  EXPECT_EQ(s.pids, std::set<std::string>{std::to_string(getpid())});
  for (const json& r : Records()) {
    if (r["tags"].value("src_port", "") == port) EXPECT_EQ(r["tags"]["direction"], "incoming");
    if (r["tags"].value("dst_port", "") == port) EXPECT_EQ(r["tags"]["direction"], "outgoing");
  }
}

TEST_F(Netflow, PortFilterExcludesAServer) {
  Result<std::unique_ptr<Nginx>> kept = Nginx::Start({.files = {{"/1k.bin", 1024}}});
  Result<std::unique_ptr<Nginx>> excluded = Nginx::Start({.files = {{"/1k.bin", 1024}}});
  ASSERT_TRUE(kept.ok() && excluded.ok());
  const std::string kept_port = std::to_string((*kept)->port());
  const std::string excluded_port = std::to_string((*excluded)->port());
  StartSensor("ports: \"!" + excluded_port + "\"\nservice_names: {\"" + kept_port +
              "\": kept-web}\n");
  ASSERT_TRUE(Curl(nullptr, (*excluded)->Url("/1k.bin")).ok());
  ASSERT_TRUE(Curl(nullptr, (*kept)->Url("/1k.bin")).ok());
  Totals t = WaitClosed({{"dst_port", kept_port}}, 1);
  EXPECT_EQ(Sum({{"dst_port", excluded_port}}).records, 0u);
  EXPECT_EQ(Sum({{"src_port", excluded_port}}).records, 0u);
  EXPECT_EQ(Sum({{"dst_port", kept_port}, {"dst_service_name", "kept-web"}}).records, t.records);
}

}  // namespace
}  // namespace nodescope::test
