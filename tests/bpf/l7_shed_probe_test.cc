// Shedding for resource limits in the ebpf-net probe (struct ns_l7_limit): with each attach
// strategy, real HTTP-like exchanges over loopback in this process while user space turns the
// payload off or samples connections, checked against the payload events, each connection's
// flags in `conns` (exact: the counters also count every other socket on the machine) and the
// counters. Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi/l7.h"
#include "sensor/bpf/environment.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/skeleton.h"
#include "tests/bpf/netflow_testing.h"
#include "tests/bpf/sockets.h"

namespace nodescope::sensor::bpf {
namespace {

using namespace std::chrono_literals;
using namespace testing;

const std::string kRequest = "GET /shed HTTP/1.1\r\nHost: a\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

struct Pair {
  int client = -1, server = -1;
  uint16_t client_port = 0, server_port = 0;
  ~Pair() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};

void Connect(Pair* pair) {
  const Loopback where{AF_INET, "127.0.0.1"};
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len = Address(where, 0, &ss);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&ss), len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  pair->server_port = LocalPort(listener);
  pair->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  len = Address(where, pair->server_port, &ss);
  ASSERT_EQ(connect(pair->client, reinterpret_cast<sockaddr*>(&ss), len), 0);
  pair->server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  ASSERT_GE(pair->server, 0);
  pair->client_port = LocalPort(pair->client);
}

void Move(int from, int to, const std::string& bytes) {
  ASSERT_EQ(write(from, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  std::string got(bytes.size(), '\0');
  size_t n = 0;
  while (n < got.size()) {
    ssize_t r = read(to, got.data() + n, got.size() - n);
    ASSERT_GT(r, 0);
    n += r;
  }
  ASSERT_EQ(got, bytes);
}

// One request and its response: four calls, two on each side.
void Exchange(const Pair& p) {
  ASSERT_NO_FATAL_FAILURE(Move(p.client, p.server, kRequest));
  ASSERT_NO_FATAL_FAILURE(Move(p.server, p.client, kResponse));
}

class L7Shed : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(PrepareEnvironment().ok());
    Result<netflow_bpf*> skel =
        LoadL7Capture(probe_, GetParam(), 0, [this](std::span<const std::byte> r) {
          ASSERT_GE(r.size(), sizeof(ns_l7_event));
          ns_l7_event e;
          std::memcpy(&e, r.data(), sizeof(e));
          events_.push_back(e);
        });
    ASSERT_TRUE(skel.ok()) << skel.status().message();
    conns_fd_ = bpf_map__fd((*skel)->maps.conns);
    limit_fd_ = bpf_map__fd((*skel)->maps.l7_limit);
  }

  void TearDown() override { probe_.Teardown(); }

  void SetLimit(uint32_t payload_off, uint32_t keep_one_in) {
    const uint32_t zero = 0;
    const ns_l7_limit limit{.payload_off = payload_off, .keep_one_in = keep_one_in};
    ASSERT_EQ(bpf_map_update_elem(limit_fd_, &zero, &limit, BPF_ANY), 0) << std::strerror(errno);
  }

  // The events of the connection whose local port is `sport` (and that started at `start_ns`,
  // when not 0: ports are reused), after draining the rings.
  std::vector<ns_l7_event> Events(uint16_t sport, uint64_t start_ns = 0) {
    EXPECT_TRUE(probe_.ring()->Poll(50ms).ok());
    std::vector<ns_l7_event> out;
    for (const ns_l7_event& e : events_) {
      if (e.sport == sport && e.protocol == IPPROTO_TCP &&
          (start_ns == 0 || e.conn_start_ns == start_ns)) {
        out.push_back(e);
      }
    }
    return out;
  }

  // The `conns` entry of the loopback TCP socket with these ports.
  std::optional<ns_conn> Conn(uint16_t sport, uint16_t dport) {
    return FindConn(conns_fd_, sport, dport, IPPROTO_TCP);
  }

  uint64_t Counter(int slot) { return probe_.KernelCounters()[slot]; }

  std::vector<ns_l7_event> events_;  // before probe_: its handler writes here until teardown
  LoadedProbe probe_{"netflow", NS_NETFLOW_CNT_MAX};
  int conns_fd_ = -1, limit_fd_ = -1;
};

constexpr uint8_t kShedBits = NS_CONN_L7_SHED | NS_CONN_L7_SAMPLED_OUT;

TEST_P(L7Shed, PayloadOffLeavesNewHttpConnectionsOutAndCountsThem) {
  SetLimit(1, 0);
  const uint64_t conns = Counter(NS_NETFLOW_CNT_L7_SHED_CONNS_PAYLOAD);
  const uint64_t calls = Counter(NS_NETFLOW_CNT_L7_SHED_CALLS_PAYLOAD);
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(&p));
  ASSERT_NO_FATAL_FAILURE(Exchange(p));
  ASSERT_NO_FATAL_FAILURE(Exchange(p));
  EXPECT_TRUE(Events(p.client_port).empty());
  EXPECT_TRUE(Events(p.server_port).empty());
  for (auto [sport, dport] :
       {std::pair{p.client_port, p.server_port}, {p.server_port, p.client_port}}) {
    std::optional<ns_conn> c = Conn(sport, dport);
    ASSERT_TRUE(c) << sport;
    EXPECT_EQ(c->flags & kShedBits, NS_CONN_L7_SHED) << sport;
    EXPECT_EQ((c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT, NS_L7_HTTP) << sport;
    EXPECT_EQ(c->bytes_written + c->bytes_read, 2 * (kRequest.size() + kResponse.size()));
  }
  // Both sockets, each call (the counters are the whole machine's: at least ours).
  EXPECT_GE(Counter(NS_NETFLOW_CNT_L7_SHED_CONNS_PAYLOAD) - conns, 2u);
  EXPECT_GE(Counter(NS_NETFLOW_CNT_L7_SHED_CALLS_PAYLOAD) - calls, 8u);

  // Not HTTP: classified as before, not marked, not counted as left out.
  Pair other;
  ASSERT_NO_FATAL_FAILURE(Connect(&other));
  ASSERT_NO_FATAL_FAILURE(Move(other.client, other.server, "SSH-2.0-OpenSSH_9.2\r\n"));
  std::optional<ns_conn> c = Conn(other.client_port, other.server_port);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->flags & kShedBits, 0);
  EXPECT_EQ((c->flags & NS_CONN_L7_MASK) >> NS_CONN_L7_SHIFT, NS_L7_NONE);

  // Back on: a connection left out stays so until it closes; a new one is captured.
  SetLimit(0, 0);
  ASSERT_NO_FATAL_FAILURE(Exchange(p));
  EXPECT_TRUE(Events(p.client_port).empty());
  Pair fresh;
  ASSERT_NO_FATAL_FAILURE(Connect(&fresh));
  ASSERT_NO_FATAL_FAILURE(Exchange(fresh));
  // A loopback client mirrors its server: its first call is its only event.
  EXPECT_EQ(Events(fresh.client_port).size(), 1u);
  EXPECT_EQ(Events(fresh.server_port).size(), 2u);
  // Its close says nothing either: user space never saw the connection.
  close(p.client);
  close(p.server);
  p.client = p.server = -1;
  EXPECT_TRUE(Events(p.client_port).empty());
  EXPECT_TRUE(Events(p.server_port).empty());
}

TEST_P(L7Shed, PayloadOffEndsAStreamBeingParsedAtTheTotalsBeforeIt) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(&p));
  ASSERT_NO_FATAL_FAILURE(Move(p.client, p.server, kRequest));
  ASSERT_EQ(Events(p.client_port).size(), 1u);
  ASSERT_EQ(Events(p.server_port).size(), 1u);

  SetLimit(1, 0);
  ASSERT_NO_FATAL_FAILURE(Move(p.server, p.client, kResponse));
  ASSERT_NO_FATAL_FAILURE(Exchange(p));
  close(p.client);
  close(p.server);
  p.client = p.server = -1;
  // One end event each, like a close, with what the socket moved before the call left out; no
  // payload after it and no close.
  std::vector<ns_l7_event> s = Events(p.server_port);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].flags, NS_L7_CLOSED | NS_L7_SHED);
  EXPECT_EQ(s[1].l7, NS_L7_HTTP);
  EXPECT_EQ(s[1].sent, 0u);                 // the response was the call left out
  EXPECT_EQ(s[1].offset, kRequest.size());  // read before it
  EXPECT_EQ(s[1].conn_start_ns, s[0].conn_start_ns);
  std::vector<ns_l7_event> c = Events(p.client_port);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].flags, NS_L7_CLOSED | NS_L7_SHED);
  EXPECT_EQ(c[1].sent, kRequest.size());
  EXPECT_EQ(c[1].offset, 0u);  // reading the response was the call left out
}

TEST_P(L7Shed, SamplingKeepsOrLeavesOutWholeConnections) {
  // Captured before sampling starts: sampling never cuts it.
  Pair before;
  ASSERT_NO_FATAL_FAILURE(Connect(&before));
  ASSERT_NO_FATAL_FAILURE(Move(before.client, before.server, kRequest));

  SetLimit(0, 4);
  const uint64_t conns = Counter(NS_NETFLOW_CNT_L7_SHED_CONNS_SAMPLED);
  ASSERT_NO_FATAL_FAILURE(Move(before.server, before.client, kResponse));
  EXPECT_EQ(Events(before.server_port).size(), 2u);

  constexpr int kPairs = 40;
  int kept = 0, left_out = 0;
  for (int i = 0; i < kPairs; ++i) {
    Pair p;
    ASSERT_NO_FATAL_FAILURE(Connect(&p));
    ASSERT_NO_FATAL_FAILURE(Exchange(p));
    ASSERT_NO_FATAL_FAILURE(Exchange(p));
    for (auto [sport, dport] :
         {std::pair{p.client_port, p.server_port}, {p.server_port, p.client_port}}) {
      std::optional<ns_conn> c = Conn(sport, dport);
      ASSERT_TRUE(c);
      const size_t events = Events(sport, c->start_ns).size();
      if (c->flags & NS_CONN_L7_SHED) {
        EXPECT_EQ(c->flags & kShedBits, kShedBits);
        EXPECT_EQ(events, 0u);
        ++left_out;
      } else {
        // Every call of both exchanges; a loopback client mirrors its server (its first call
        // is its only event).
        EXPECT_EQ(events, sport == p.client_port ? 1u : 4u);
        ++kept;
      }
    }
  }
  // 1 in 4 kept, by a hash of each connection: not all, not none (each (3/4)^80 or so).
  std::printf("sampling 1 in 4: %d of %d connections kept\n", kept, 2 * kPairs);
  EXPECT_GT(kept, 0);
  EXPECT_GT(left_out, kept);
  EXPECT_GE(Counter(NS_NETFLOW_CNT_L7_SHED_CONNS_SAMPLED) - conns, static_cast<uint64_t>(left_out));
}

INSTANTIATE_TEST_SUITE_P(Strategies, L7Shed, ::testing::Values("tp_btf", "tracepoint"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace nodescope::sensor::bpf
