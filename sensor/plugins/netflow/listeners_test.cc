#include "sensor/plugins/netflow/listeners.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::netflow {
namespace {

// Captured from /proc/net/tcp and tcp6 on the project machine (sshd on 22, a client connection).
constexpr char kTcp[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "20339 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 "
    "51234 1 0000000000000000 20 4 30 10 -1\n";
constexpr char kTcp6[] =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 20341 1 0000000000000000 100 0 0 10 "
    "0\n";

TEST(Listeners, ParsesListenStateOnly) {
  EXPECT_EQ(ParseListeningPorts(kTcp), (std::set<uint16_t>{22}));
  EXPECT_EQ(ParseListeningPorts(kTcp6), (std::set<uint16_t>{8080}));
  EXPECT_TRUE(ParseListeningPorts("").empty());
  EXPECT_TRUE(ParseListeningPorts("header only\n garbage line\n").empty());
}

TEST(Listeners, ReadsBothFamiliesOfAPid) {
  test::TempDir root;
  root.Write("42/net/tcp", kTcp);
  root.Write("42/net/tcp6", kTcp6);
  Result<std::set<uint16_t>> ports = ListeningPorts(root.path(), 42);
  ASSERT_TRUE(ports.ok()) << ports.status().message();
  EXPECT_EQ(*ports, (std::set<uint16_t>{22, 8080}));
  EXPECT_FALSE(ListeningPorts(root.path(), 43).ok());
}

TEST(Listeners, SeesARealListenerOfThisProcess) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Result<std::set<uint16_t>> ports = ListeningPorts("/proc", getpid());
  close(fd);
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ(ports->count(ntohs(addr.sin_port)), 1u);
}

TEST(Listeners, EphemeralPortStart) {
  test::TempDir root;
  root.Write("sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
  Result<uint16_t> start = EphemeralPortStart(root.path());
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(*start, 32768);
  root.Write("sys/net/ipv4/ip_local_port_range", "banana\n");
  Result<uint16_t> bad = EphemeralPortStart(root.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("ip_local_port_range"), std::string::npos);
  EXPECT_TRUE(EphemeralPortStart("/proc").ok());
}

}  // namespace
}  // namespace nodescope::sensor::netflow
