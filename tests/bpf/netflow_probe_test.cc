// Loads the netflow probe with each attach strategy, makes real TCP and UDP exchanges over
// loopback (IPv4 and IPv6) in this process and checks every field of the sockets' map entries
// and close events against what the test did. Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi/netflow.h"
#include "sensor/bpf/environment.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/skeleton.h"
#include "tests/bpf/netflow_testing.h"
#include "tests/bpf/sockets.h"

namespace nodescope::sensor::bpf {
namespace {

using namespace std::chrono_literals;
using namespace testing;

class NetflowProbe : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(PrepareEnvironment().ok());
    Result<netflow_bpf*> skel = LoadSkeleton<netflow_bpf>(
        probe_, netflow::kSkeleton, GetParam(), [this](std::span<const std::byte> r) {
          ASSERT_EQ(r.size(), sizeof(ns_conn_close));
          ns_conn_close e;
          std::memcpy(&e, r.data(), sizeof(e));
          closes_.push_back(e);
        });
    ASSERT_TRUE(skel.ok()) << skel.status().message();
    conns_fd_ = bpf_map__fd((*skel)->maps.conns);
  }

  void TearDown() override { probe_.Teardown(); }

  // The entry whose local/remote ports are these, read from the map.
  std::optional<ns_conn> Entry(uint16_t sport, uint16_t dport, uint8_t protocol) {
    return FindConn(conns_fd_, sport, dport, protocol);
  }

  std::optional<ns_conn> Closed(uint16_t sport, uint16_t dport) {
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(probe_.ring()->Poll(100ms).ok());
      for (const auto& e : closes_) {
        if (e.conn.sport == sport && e.conn.dport == dport) return e.conn;
      }
    }
    return std::nullopt;
  }

  std::vector<ns_conn_close> closes_;  // before probe_: its handler writes here until teardown
  LoadedProbe probe_{"netflow", NS_NETFLOW_CNT_MAX};
  int conns_fd_ = -1;
};

void ExpectSocket(const ns_conn& c, const Loopback& where, uint8_t protocol, uint8_t direction) {
  EXPECT_EQ(std::vector<uint8_t>(c.saddr, c.saddr + 16), Stored(where));
  EXPECT_EQ(std::vector<uint8_t>(c.daddr, c.daddr + 16), Stored(where));
  EXPECT_EQ(c.family, where.family == AF_INET ? 4 : 6);
  EXPECT_EQ(c.protocol, protocol);
  EXPECT_EQ(c.direction, direction);
  EXPECT_TRUE(c.flags & NS_CONN_PID_SET);
  EXPECT_FALSE(c.flags & NS_CONN_PREEXISTING);
  EXPECT_EQ(c.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.comm)), SelfComm());
  EXPECT_EQ(c.netns, SelfNetns());
  EXPECT_EQ(c.cgroup_id, SelfCgroupId());
  EXPECT_GT(c.start_ns, 0u);
}

TEST_P(NetflowProbe, TcpEveryFieldBothSidesAndTheCloseEvents) {
  for (const Loopback& where : {Loopback{AF_INET, "127.0.0.1"}, Loopback{AF_INET6, "::1"}}) {
    SCOPED_TRACE(where.address);
    int listener = socket(where.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss;
    socklen_t len = Address(where, 0, &ss);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&ss), len), 0);
    ASSERT_EQ(listen(listener, 1), 0);
    const uint16_t server_port = LocalPort(listener);
    int client = socket(where.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    len = Address(where, server_port, &ss);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&ss), len), 0);
    int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(server, 0);
    const uint16_t client_port = LocalPort(client);

    std::string request(1234, 'q'), response(4321, 'r');
    char buf[8192];
    ASSERT_EQ(send(client, request.data(), request.size(), 0), 1234);
    // MSG_PEEK first: peeked bytes are read again and must not count twice.
    ASSERT_GT(recv(server, buf, sizeof(buf), MSG_PEEK), 0);
    size_t got = 0;
    while (got < request.size()) got += recv(server, buf, sizeof(buf), 0);
    ASSERT_EQ(write(server, response.data(), response.size()), 4321);
    got = 0;
    while (got < response.size()) got += read(client, buf, sizeof(buf));

    std::optional<ns_conn> c = Entry(client_port, server_port, IPPROTO_TCP);
    std::optional<ns_conn> s = Entry(server_port, client_port, IPPROTO_TCP);
    ASSERT_TRUE(c && s);
    ExpectSocket(*c, where, IPPROTO_TCP, NS_CONN_DIR_OUTGOING);
    ExpectSocket(*s, where, IPPROTO_TCP, NS_CONN_DIR_INCOMING);
    EXPECT_TRUE(c->flags & NS_CONN_ESTABLISHED);
    EXPECT_TRUE(s->flags & NS_CONN_ESTABLISHED);
    EXPECT_EQ(c->bytes_written, 1234u);
    EXPECT_EQ(c->bytes_read, 4321u);
    EXPECT_EQ(s->bytes_read, 1234u);
    EXPECT_EQ(s->bytes_written, 4321u);
    EXPECT_GT(c->srtt_us, 0u);
    EXPECT_EQ(c->total_retrans, 0u);

    close(client);
    close(server);
    std::optional<ns_conn> cc = Closed(client_port, server_port);
    std::optional<ns_conn> sc = Closed(server_port, client_port);
    ASSERT_TRUE(cc && sc);
    EXPECT_EQ(cc->bytes_written, 1234u);
    EXPECT_EQ(sc->bytes_written, 4321u);
    EXPECT_GT(sc->srtt_us, 0u);
    EXPECT_FALSE(Entry(client_port, server_port, IPPROTO_TCP));  // deleted at close
    EXPECT_FALSE(Entry(server_port, client_port, IPPROTO_TCP));
    close(listener);
  }
}

TEST_P(NetflowProbe, UdpConnectedSocketsBothWays) {
  for (const Loopback& where : {Loopback{AF_INET, "127.0.0.1"}, Loopback{AF_INET6, "::1"}}) {
    SCOPED_TRACE(where.address);
    int a = socket(where.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int b = socket(where.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss;
    socklen_t len = Address(where, 0, &ss);
    ASSERT_EQ(bind(b, reinterpret_cast<sockaddr*>(&ss), len), 0);
    const uint16_t b_port = LocalPort(b);
    len = Address(where, b_port, &ss);
    ASSERT_EQ(connect(a, reinterpret_cast<sockaddr*>(&ss), len), 0);
    const uint16_t a_port = LocalPort(a);
    len = Address(where, a_port, &ss);
    ASSERT_EQ(connect(b, reinterpret_cast<sockaddr*>(&ss), len), 0);
    char buf[2048] = {};
    for (int i = 0; i < 3; ++i) ASSERT_EQ(send(a, buf, 700, 0), 700);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(recv(b, buf, sizeof(buf), 0), 700);
    ASSERT_EQ(send(b, buf, 1500, 0), 1500);
    ASSERT_EQ(recv(a, buf, sizeof(buf), 0), 1500);

    std::optional<ns_conn> ea = Entry(a_port, b_port, IPPROTO_UDP);
    std::optional<ns_conn> eb = Entry(b_port, a_port, IPPROTO_UDP);
    ASSERT_TRUE(ea && eb);
    ExpectSocket(*ea, where, IPPROTO_UDP, NS_CONN_DIR_OUTGOING);  // sent first
    ExpectSocket(*eb, where, IPPROTO_UDP, NS_CONN_DIR_INCOMING);  // received first
    EXPECT_EQ(ea->bytes_written, 2100u);
    EXPECT_EQ(ea->bytes_read, 1500u);
    EXPECT_EQ(eb->bytes_read, 2100u);
    EXPECT_EQ(eb->bytes_written, 1500u);
    EXPECT_EQ(ea->flags & NS_CONN_ESTABLISHED, 0);
    close(a);
    close(b);
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, NetflowProbe,
                         ::testing::Values(std::string(kTpBtf), std::string(kTracepoint)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::sensor::bpf
