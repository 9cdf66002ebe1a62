// Loads the ebpf-net probe with payload capture on, with each attach strategy, makes HTTP-like
// TCP exchanges and DNS-port UDP exchanges over loopback in this process through every kind of
// call the capture reads (write/read, send/recv, writev/readv, sendmsg/recvmsg, sendto/recvfrom,
// sendfile), and checks every field of the payload events, the bytes byte for byte, and that a
// connection of another protocol sends nothing. Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bpf/abi/l7.h"
#include "sensor/bpf/cpus.h"
#include "sensor/bpf/environment.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/skeleton.h"
#include "sensor/proc/mountinfo.h"
#include "tests/bpf/netflow_testing.h"
#include "tests/bpf/sockets.h"

namespace nodescope::sensor::bpf {
namespace {

using namespace std::chrono_literals;
using namespace testing;

constexpr uint32_t kCaptureBytes = 1024;  // smaller than some calls below, to see the cut

struct Payload {
  ns_l7_event e;
  std::string data;
};

class L7Capture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(PrepareEnvironment().ok());
    Result<netflow_bpf*> skel =
        LoadL7Capture(probe_, GetParam(), kCaptureBytes, [this](std::span<const std::byte> r) {
          ASSERT_GE(r.size(), sizeof(ns_l7_event));
          Payload p;
          std::memcpy(&p.e, r.data(), sizeof(p.e));
          ASSERT_EQ(r.size(), sizeof(ns_l7_event) + p.e.captured);
          p.data.assign(reinterpret_cast<const char*>(r.data()) + sizeof(p.e), p.e.captured);
          payloads_.push_back(std::move(p));
        });
    ASSERT_TRUE(skel.ok()) << skel.status().message();
    skel_ = *skel;
    // As the plugin does: the peer of an unconnected UDP socket (a resolver's client) comes from
    // the cgroup sendmsg/recvmsg hooks.
    Result<std::vector<proc::Mount>> mounts = proc::ReadMountInfo("/proc/self/mountinfo");
    ASSERT_TRUE(mounts.ok()) << mounts.status().message();
    std::optional<proc::Mount> v2 = proc::FindMount(*mounts, "cgroup2");
    ASSERT_TRUE(v2) << "no cgroup2 mount";
    Result<std::vector<LinkPtr>> links = AttachCgroupPrograms((*skel)->obj, v2->mount_point);
    ASSERT_TRUE(links.ok()) << links.status().message();
    probe_.AdoptLinks(std::move(links).value());
  }

  void TearDown() override { probe_.Teardown(); }

  netflow_bpf* skel_ = nullptr;

  // Every event of the connection whose local port is `sport`, in order, once `n` are there.
  std::vector<Payload> Events(uint16_t sport, size_t n) {
    std::vector<Payload> out;
    for (int i = 0; i < 30 && out.size() < n; ++i) {
      EXPECT_TRUE(probe_.ring()->Poll(100ms).ok());
      out.clear();
      for (const Payload& p : payloads_) {
        if (p.e.sport == sport) out.push_back(p);
      }
    }
    return out;
  }

  std::vector<Payload> payloads_;  // before probe_: its handler writes here until teardown
  LoadedProbe probe_{"netflow", NS_NETFLOW_CNT_MAX};
};

void ExpectEvent(const Payload& p, const Loopback& where, uint16_t sport, uint16_t dport,
                 uint8_t protocol, uint8_t l7, uint8_t direction, const std::string& bytes,
                 uint32_t len, uint8_t flags = 0) {
  EXPECT_EQ(p.e.sport, sport);
  EXPECT_EQ(p.e.dport, dport);
  EXPECT_EQ(std::vector<uint8_t>(p.e.saddr, p.e.saddr + 16), Stored(where));
  EXPECT_EQ(std::vector<uint8_t>(p.e.daddr, p.e.daddr + 16), Stored(where));
  EXPECT_EQ(p.e.family, where.family == AF_INET ? 4 : 6);
  EXPECT_EQ(p.e.protocol, protocol);
  EXPECT_EQ(p.e.l7, l7);
  EXPECT_EQ(p.e.direction, direction);
  EXPECT_EQ(p.e.len, len);
  EXPECT_EQ(p.e.flags, flags);
  EXPECT_EQ(p.data, bytes);
  EXPECT_EQ(p.e.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p.e.comm)), SelfComm());
  EXPECT_EQ(p.e.netns, SelfNetns());
  EXPECT_EQ(p.e.cgroup_id, SelfCgroupId());
  EXPECT_NE(p.e.sk, 0u);
  EXPECT_GT(p.e.ts_ns, 0u);
}

struct Fd {
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  int fd;
};

struct TcpPair {
  int client = -1, server = -1;
  uint16_t client_port = 0, server_port = 0;
  ~TcpPair() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};

void Connect(const Loopback& where, TcpPair* pair) {
  int listener = socket(where.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len = Address(where, 0, &ss);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&ss), len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  pair->server_port = LocalPort(listener);
  pair->client = socket(where.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  len = Address(where, pair->server_port, &ss);
  ASSERT_EQ(connect(pair->client, reinterpret_cast<sockaddr*>(&ss), len), 0);
  pair->server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  ASSERT_GE(pair->server, 0);
  pair->client_port = LocalPort(pair->client);
}

std::string ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += r;
  }
  out.resize(got);
  return out;
}

// Runs the calling thread on `cpu` only.
void PinTo(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0)
      << "CPU " << cpu << ": " << std::strerror(errno);
}

TEST_P(L7Capture, HttpThroughEveryCallKindBothSides) {
  for (const Loopback& where : {Loopback{AF_INET, "127.0.0.1"}, Loopback{AF_INET6, "::1"}}) {
    SCOPED_TRACE(where.address);
    TcpPair t;
    ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
    const std::string request = "GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n";
    const std::string body(3000, 'b');

    // client: write(); server: read()
    ASSERT_EQ(write(t.client, request.data(), request.size()),
              static_cast<ssize_t>(request.size()));
    std::string got(request.size(), '\0');
    ASSERT_EQ(read(t.server, got.data(), got.size()), static_cast<ssize_t>(got.size()));
    // server: writev(head, body) as nginx does; client: readv into two buffers
    iovec out[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(body.data()), body.size()}};
    ASSERT_EQ(writev(t.server, out, 2), static_cast<ssize_t>(head.size() + body.size()));
    std::string in1(head.size(), '\0'), in2(body.size(), '\0');
    iovec in[2] = {{in1.data(), in1.size()}, {in2.data(), in2.size()}};
    // writev returned, so all of it is queued on loopback: one readv takes it.
    ASSERT_EQ(readv(t.client, in, 2), static_cast<ssize_t>(head.size() + body.size()));
    // sendmsg / recvmsg, then send / recv
    msghdr msg{};
    iovec one = {const_cast<char*>(request.data()), request.size()};
    msg.msg_iov = &one;
    msg.msg_iovlen = 1;
    ASSERT_EQ(sendmsg(t.client, &msg, 0), static_cast<ssize_t>(request.size()));
    std::string got2(request.size(), '\0');
    iovec back = {got2.data(), got2.size()};
    msg.msg_iov = &back;
    ASSERT_EQ(recvmsg(t.server, &msg, MSG_WAITALL), static_cast<ssize_t>(request.size()));
    ASSERT_EQ(send(t.server, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    ASSERT_EQ(ReadExactly(t.client, head.size()), head);

    const std::string whole = head + body;
    const std::string cut = whole.substr(0, kCaptureBytes);
    std::vector<Payload> s = Events(t.server_port, 4);
    ASSERT_EQ(s.size(), 4u);
    // Both ends are on loopback: the client's bytes are copied nowhere. Its first call is said,
    // with the server socket whose copy has its bytes; the rest only keep their runs, which the
    // server's receives carry, and the client's close carries its last.
    close(t.client);
    close(t.server);  // the client's socket reaches CLOSE after the server's FIN
    t.client = t.server = -1;
    std::vector<Payload> c = Events(t.client_port, 2);
    ASSERT_EQ(c.size(), 2u);
    ExpectEvent(c[0], where, t.client_port, t.server_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, "",
                request.size(), NS_L7_MIRROR);
    EXPECT_EQ(c[0].e.peer, s[0].e.sk);
    EXPECT_EQ(c[0].e.conn_direction, NS_CONN_DIR_OUTGOING);
    EXPECT_EQ(c[0].e.offset, 0u);
    EXPECT_EQ(c[1].e.flags, NS_L7_CLOSED);
    // Runs: write() [0] and readv() [1], then sendmsg() [0] and the recv()s of the head [1].
    const ns_l7_runs& first = s[0].e.runs;
    EXPECT_GT(first.ts[0], 0u);
    EXPECT_LE(first.ts[0], s[0].e.ts_ns);
    EXPECT_EQ(first.off[0], 0u);
    EXPECT_EQ(first.moved[0], request.size());
    EXPECT_EQ(first.ts[1], 0u);
    EXPECT_EQ(first.moved[1], 0u);
    const ns_l7_runs& second = s[2].e.runs;
    EXPECT_EQ(second.off[0], request.size());
    EXPECT_EQ(second.moved[0], 2 * request.size());
    EXPECT_EQ(second.off[1], 0u);
    EXPECT_EQ(second.moved[1], whole.size());
    EXPECT_GT(second.ts[1], first.ts[0]);
    EXPECT_GT(second.ts[0], second.ts[1]);
    const ns_l7_runs& last = c[1].e.runs;
    EXPECT_EQ(last.ts[0], second.ts[0]);
    EXPECT_EQ(last.off[0], request.size());
    EXPECT_GT(last.ts[1], second.ts[0]);
    EXPECT_EQ(last.off[1], whole.size());
    EXPECT_EQ(last.moved[0], 2 * request.size());
    EXPECT_EQ(last.moved[1], whole.size() + head.size());
    for (const Payload* p : {&s[1], &s[3]}) {  // sends carry none
      EXPECT_EQ(p->e.runs.ts[0], 0u);
      EXPECT_EQ(p->e.runs.moved[0], 0u);
    }

    ExpectEvent(s[0], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
                request, request.size(), NS_L7_MIRRORED);
    ExpectEvent(s[1], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, cut,
                whole.size(), NS_L7_MIRRORED);
    ExpectEvent(s[2], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
                request, request.size(), NS_L7_MIRRORED);
    ExpectEvent(s[3], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND,
                head, head.size(), NS_L7_MIRRORED);
    EXPECT_EQ(s[0].e.conn_direction, NS_CONN_DIR_INCOMING);
  }
}

// The call kinds the test above gives the client, on the server, whose copy is the one parsed.
TEST_P(L7Capture, ReadvSendmsgAndWriteOnTheServer) {
  const Loopback where{AF_INET, "127.0.0.1"};
  TcpPair t;
  ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
  const std::string request = "POST /up HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
  const std::string head = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n";
  ASSERT_EQ(write(t.client, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string in1(10, '\0'), in2(request.size() - 10, '\0');
  iovec in[2] = {{in1.data(), in1.size()}, {in2.data(), in2.size()}};
  ASSERT_EQ(readv(t.server, in, 2), static_cast<ssize_t>(request.size()));
  msghdr msg{};
  iovec one = {const_cast<char*>(head.data()), head.size()};
  msg.msg_iov = &one;
  msg.msg_iovlen = 1;
  ASSERT_EQ(sendmsg(t.server, &msg, 0), static_cast<ssize_t>(head.size()));
  ASSERT_EQ(write(t.server, "ok", 2), 2);
  ASSERT_EQ(ReadExactly(t.client, head.size() + 2), head + "ok");

  std::vector<Payload> s = Events(t.server_port, 3);
  ASSERT_EQ(s.size(), 3u);
  ExpectEvent(s[0], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_RECV,
              request, request.size(), NS_L7_MIRRORED);
  ExpectEvent(s[1], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, head,
              head.size(), NS_L7_MIRRORED);
  ExpectEvent(s[2], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, "ok",
              2, NS_L7_MIRRORED);
  EXPECT_EQ(s[2].e.offset, head.size());
}

// A sendfile body is not an event: the next event's offset and the close's totals count it.
TEST_P(L7Capture, SendfileBytesAreCountedByTheNextEventAndTheClose) {
  const Loopback where{AF_INET, "127.0.0.1"};
  TcpPair t;
  ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
  ASSERT_EQ(send(t.server, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  FILE* file = tmpfile();
  ASSERT_NE(file, nullptr);
  const std::string body(5000, 'f');
  ASSERT_EQ(fwrite(body.data(), 1, body.size(), file), body.size());
  fflush(file);
  off_t offset = 0;
  ASSERT_EQ(sendfile(t.server, fileno(file), &offset, body.size()), 5000);
  fclose(file);
  ASSERT_EQ(ReadExactly(t.client, head.size() + body.size()).size(), head.size() + body.size());
  ASSERT_EQ(send(t.server, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  ASSERT_EQ(ReadExactly(t.client, head.size()), head);
  close(t.client);
  close(t.server);
  t.client = t.server = -1;

  std::vector<Payload> s = Events(t.server_port, 3);
  ASSERT_EQ(s.size(), 3u);
  ExpectEvent(s[0], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, head,
              head.size(), NS_L7_MIRRORED);
  ExpectEvent(s[1], where, t.server_port, t.client_port, IPPROTO_TCP, NS_L7_HTTP, NS_L7_SEND, head,
              head.size(), NS_L7_MIRRORED);
  EXPECT_EQ(s[1].e.offset, head.size() + body.size());
  EXPECT_EQ(s[2].e.flags, NS_L7_CLOSED);
  EXPECT_EQ(s[2].e.sent, 2 * head.size() + body.size());
  EXPECT_EQ(s[2].e.offset, 0u);  // the server read nothing
  EXPECT_EQ(s[2].e.conn_start_ns, s[0].e.conn_start_ns);
}

TEST(L7RingBytes, SixteenMiBSharedOutWithinTheBounds) {
  EXPECT_EQ(netflow::L7RingBytes(1), 4u << 20);
  EXPECT_EQ(netflow::L7RingBytes(2), 4u << 20);  // 8 MiB on this machine, as the fixed rings had
  EXPECT_EQ(netflow::L7RingBytes(4), 4u << 20);
  EXPECT_EQ(netflow::L7RingBytes(6), 2u << 20);  // a power of two: 2.67 MiB rounds down
  EXPECT_EQ(netflow::L7RingBytes(8), 2u << 20);
  EXPECT_EQ(netflow::L7RingBytes(64), 256u << 10);
  EXPECT_EQ(netflow::L7RingBytes(512), 256u << 10);  // the floor: 128 MiB in all
}

// The producer position of the payload ring in slot `cpu` of the rings' array (0 on failure, with
// a test failure), and the ring's size in `bytes`.
uint64_t RingProducer(int array_fd, uint32_t cpu, uint32_t* bytes) {
  uint32_t id = 0;
  EXPECT_EQ(bpf_map_lookup_elem(array_fd, &cpu, &id), 0) << "no ring for CPU " << cpu;
  Fd ring(bpf_map_get_fd_by_id(id));
  EXPECT_GE(ring.fd, 0) << std::strerror(errno);
  if (ring.fd < 0) return 0;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(ring.fd, &info, &len), 0);
  EXPECT_EQ(info.type, BPF_MAP_TYPE_RINGBUF);
  *bytes = info.max_entries;
  const long page = sysconf(_SC_PAGESIZE);
  void* at = mmap(nullptr, page, PROT_READ, MAP_SHARED, ring.fd, page);
  EXPECT_NE(at, MAP_FAILED) << std::strerror(errno);
  if (at == MAP_FAILED) return 0;
  const uint64_t pos = __atomic_load_n(static_cast<const unsigned long*>(at), __ATOMIC_ACQUIRE);
  munmap(at, page);
  return pos;
}

TEST_P(L7Capture, EachCpuWritesARingOfItsOwn) {
  const int cpus = libbpf_num_possible_cpus();
  ASSERT_GT(cpus, 0);
  Result<std::vector<int>> online = OnlineCpus();
  ASSERT_TRUE(online.ok()) << online.status().message();
  const int array_fd = bpf_map__fd(skel_->maps.l7_rings);
  std::vector<uint32_t> ids;
  // A ring in the slot of every CPU online, and none in the others'.
  for (uint32_t cpu = 0; cpu < uint32_t(cpus); ++cpu) {
    uint32_t id = 0;
    const bool is_online = std::count(online->begin(), online->end(), int(cpu)) > 0;
    if (!is_online) {
      EXPECT_NE(bpf_map_lookup_elem(array_fd, &cpu, &id), 0) << "a ring for offline CPU " << cpu;
      continue;
    }
    ASSERT_EQ(bpf_map_lookup_elem(array_fd, &cpu, &id), 0) << "no ring for CPU " << cpu;
    ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end()) << "two CPUs share a ring";

  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  const Loopback where{AF_INET, "127.0.0.1"};
  TcpPair t;
  ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
  const std::string get = "GET /cpu HTTP/1.1\r\n\r\n";
  int tried = 0;
  for (int cpu = 0; cpu < cpus; ++cpu) {
    if (!CPU_ISSET(cpu, &before)) continue;
    ASSERT_NO_FATAL_FAILURE(PinTo(cpu));
    uint32_t bytes = 0;
    const uint64_t start = RingProducer(array_fd, uint32_t(cpu), &bytes);
    EXPECT_EQ(bytes, netflow::L7RingBytes(int(online->size())));
    ASSERT_EQ(send(t.client, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
    ASSERT_EQ(ReadExactly(t.server, get.size()), get);
    ASSERT_TRUE(probe_.ring()->Poll(0ms).ok());  // flushes the batches
    EXPECT_GT(RingProducer(array_fd, uint32_t(cpu), &bytes), start)
        << "CPU " << cpu << "'s calls went to another ring";
    ++tried;
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(before), &before), 0);
  EXPECT_GT(tried, 0);
  // Every call, whichever CPU made it, is handed out in order (the client's first call sets
  // whether it mirrors the server, so the server's receives are the events).
  std::vector<Payload> s = Events(t.server_port, size_t(tried));
  ASSERT_EQ(s.size(), size_t(tried));
  for (size_t i = 1; i < s.size(); ++i) {
    EXPECT_LT(s[i - 1].e.ts_ns, s[i].e.ts_ns);
    EXPECT_EQ(s[i].e.offset, i * get.size());
  }
}

TEST_P(L7Capture, OtherProtocolsSendNothing) {
  const Loopback where{AF_INET, "127.0.0.1"};
  TcpPair t;
  ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
  const std::string hello = "SSH-2.0-OpenSSH_9.2\r\n";
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(send(t.client, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
    ASSERT_EQ(ReadExactly(t.server, hello.size()), hello);
  }
  // A later HTTP-looking call does not turn the connection on: the first payload decided.
  const std::string get = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(t.client, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  ASSERT_EQ(ReadExactly(t.server, get.size()), get);
  EXPECT_TRUE(Events(t.client_port, 1).empty());
  EXPECT_TRUE(Events(t.server_port, 1).empty());
}

TEST_P(L7Capture, DnsPortUdpWithSendtoAndRecvfrom) {
  // A resolver on port 53 of an address no one else uses; the client is unconnected, as dig.
  const Loopback where{AF_INET, "127.0.0.53"};
  Fd server_fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int server = server_fd.fd;
  sockaddr_storage ss;
  socklen_t len = Address(where, 53, &ss);
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&ss), len), 0)
      << "127.0.0.53:53 in use: " << std::strerror(errno);
  Fd client_fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int client = client_fd.fd;
  sockaddr_storage client_addr;
  socklen_t client_len = Address(where, 0, &client_addr);
  ASSERT_EQ(bind(client, reinterpret_cast<sockaddr*>(&client_addr), client_len), 0);
  const uint16_t client_port = LocalPort(client);
  std::string query("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  query += std::string(
      "\x07"
      "example\x04test\x00\x00\x01\x00\x01",
      18);
  std::string answer = query;
  answer[2] = '\x81';
  answer[3] = '\x80';
  ASSERT_EQ(sendto(client, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&ss), len),
            static_cast<ssize_t>(query.size()));
  char buf[512];
  sockaddr_storage from;
  socklen_t from_len = sizeof(from);
  ASSERT_EQ(recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len),
            static_cast<ssize_t>(query.size()));
  ASSERT_EQ(
      sendto(server, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len),
      static_cast<ssize_t>(answer.size()));
  ASSERT_EQ(recv(client, buf, sizeof(buf), 0), static_cast<ssize_t>(answer.size()));

  std::vector<Payload> c = Events(client_port, 2);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].e.l7, NS_L7_DNS);
  EXPECT_EQ(c[0].e.protocol, IPPROTO_UDP);
  EXPECT_EQ(c[0].e.direction, NS_L7_SEND);
  EXPECT_EQ(c[0].data, query);
  EXPECT_EQ(c[1].e.direction, NS_L7_RECV);
  EXPECT_EQ(c[1].data, answer);
  std::vector<Payload> s = Events(53, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].e.direction, NS_L7_RECV);
  EXPECT_EQ(s[0].data, query);
  EXPECT_EQ(s[1].e.direction, NS_L7_SEND);
  EXPECT_EQ(s[1].data, answer);
  // The client's records name the resolver as the peer.
  EXPECT_EQ(c[0].e.dport, 53);
  EXPECT_EQ(std::vector<uint8_t>(c[0].e.daddr, c[0].e.daddr + 16), Stored(where));
  EXPECT_EQ(s[0].e.dport, client_port);
}

TEST_P(L7Capture, SendmmsgAndRecvmmsgMessagesInOrder) {
  // As glibc's resolver: a connected UDP socket sends the A and AAAA queries with one sendmmsg;
  // the server takes both with one recvmmsg.
  const Loopback where{AF_INET, "127.0.0.53"};
  Fd server_fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_storage ss;
  socklen_t len = Address(where, 53, &ss);
  ASSERT_EQ(bind(server_fd.fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
  Fd client_fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(client_fd.fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
  const uint16_t client_port = LocalPort(client_fd.fd);
  std::string a("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01", 19);
  std::string aaaa = a;
  aaaa[1] = '\x02';
  aaaa[16] = '\x1c';
  iovec out[2] = {{a.data(), a.size()}, {aaaa.data(), aaaa.size()}};
  mmsghdr msgs[2] = {};
  msgs[0].msg_hdr.msg_iov = &out[0];
  msgs[0].msg_hdr.msg_iovlen = 1;
  msgs[1].msg_hdr.msg_iov = &out[1];
  msgs[1].msg_hdr.msg_iovlen = 1;
  ASSERT_EQ(sendmmsg(client_fd.fd, msgs, 2, 0), 2);
  char b1[64], b2[64];
  iovec in[2] = {{b1, sizeof(b1)}, {b2, sizeof(b2)}};
  mmsghdr got[2] = {};
  got[0].msg_hdr.msg_iov = &in[0];
  got[0].msg_hdr.msg_iovlen = 1;
  got[1].msg_hdr.msg_iov = &in[1];
  got[1].msg_hdr.msg_iovlen = 1;
  ASSERT_EQ(recvmmsg(server_fd.fd, got, 2, MSG_WAITFORONE, nullptr), 2);

  std::vector<Payload> c = Events(client_port, 2);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].data, a);
  EXPECT_EQ(c[1].data, aaaa);
  std::vector<Payload> s = Events(53, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].data, a);
  EXPECT_EQ(s[1].data, aaaa);
  EXPECT_EQ(s[1].e.direction, NS_L7_RECV);
}

// The smallest payload ring a big machine gets, written in full batches from one CPU and not read:
// the reader is woken once a quarter of it is used, long before it is full, so nothing is lost.
class L7RingWakeup : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(PrepareEnvironment().ok()); }
  void TearDown() override { probe_.Teardown(); }

  LoadedProbe probe_{"netflow", NS_NETFLOW_CNT_MAX};
  size_t events_ = 0;  // L7 records, to the probe's last drain in TearDown
};

TEST_P(L7RingWakeup, ASmallRingWakesItsReaderBeforeItFills) {
  size_t& events = events_;
  Result<netflow_bpf*> skel = LoadL7Capture(
      probe_, GetParam(), 1024, [&events](std::span<const std::byte>) { ++events; },
      NS_L7_RING_MIN_BYTES);
  ASSERT_TRUE(skel.ok()) << skel.status().message();
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &before)) ++cpu;
  ASSERT_NO_FATAL_FAILURE(PinTo(cpu));

  const Loopback where{AF_INET, "127.0.0.1"};
  TcpPair t;
  ASSERT_NO_FATAL_FAILURE(Connect(where, &t));
  // HTTP by its first bytes; then calls of 1 KiB, each a server event of about 1.2 KiB: 120 of
  // them fill more than a quarter of the 256 KiB ring and less than the whole.
  const std::string get = "GET /fill HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(t.client, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  ASSERT_EQ(ReadExactly(t.server, get.size()).size(), get.size());
  const std::string body(1024, 'b');
  constexpr int kCalls = 120;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_EQ(send(t.client, body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
    ASSERT_EQ(ReadExactly(t.server, body.size()).size(), body.size());
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(before), &before), 0);

  // Woken, the wait ends at once; not woken, it would last its whole 10 s.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(probe_.ring()->Poll(10s).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "the reader was not woken";
  for (int i = 0; i < 20 && events < size_t(kCalls + 1); ++i) {
    ASSERT_TRUE(probe_.ring()->Poll(100ms).ok());
  }
  EXPECT_GE(events, size_t(kCalls + 1)) << "the server's calls";
  EXPECT_EQ(probe_.KernelCounters()[NS_NETFLOW_CNT_L7_RINGBUF_DROPS], 0u);
}

// A CPU brought online after the sensor started: the probe counts its events until user space
// gives it a ring (L7Rings::Cover), then they arrive like any other CPU's. The hotplug is played
// by leaving one online CPU out of the rings made at start, as if it had been offline then.
class L7RingsForCpus : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(PrepareEnvironment().ok());
    ASSERT_EQ(sched_getaffinity(0, sizeof(before_), &before_), 0);
  }
  void TearDown() override {
    sched_setaffinity(0, sizeof(before_), &before_);
    probe_.Teardown();
  }

  // Loads the probe with rings for every CPU online but `late_` (the second this test may run
  // on; `early_` is the first) and connects `t_`. Skips without two such CPUs.
  void LoadWithoutLate() {
    Result<std::vector<int>> online = OnlineCpus();
    ASSERT_TRUE(online.ok()) << online.status().message();
    online_ = *online;
    std::vector<int> usable;
    for (int cpu : online_) {
      if (CPU_ISSET(cpu, &before_)) usable.push_back(cpu);
    }
    if (usable.size() < 2) GTEST_SKIP() << "needs two CPUs this test may run on";
    early_ = usable[0];
    late_ = usable[1];
    std::vector<int> at_start;
    for (int cpu : online_) {
      if (cpu != late_) at_start.push_back(cpu);
    }
    Result<netflow_bpf*> skel = LoadL7Capture(
        probe_, GetParam(), 1024,
        [this](std::span<const std::byte> r) {
          Payload p;
          std::memcpy(&p.e, r.data(), sizeof(p.e));
          p.data.assign(reinterpret_cast<const char*>(r.data()) + sizeof(p.e), p.e.captured);
          events_.push_back(p);
        },
        0, &rings_, &at_start);
    ASSERT_TRUE(skel.ok()) << skel.status().message();
    ASSERT_EQ(rings_->rings(), int(at_start.size()));
    array_fd_ = bpf_map__fd((*skel)->maps.l7_rings);
    EXPECT_FALSE(HasRing(late_)) << "CPU " << late_ << " has a ring";
    ASSERT_NO_FATAL_FAILURE(Connect(Loopback{AF_INET, "127.0.0.1"}, &t_));
  }

  bool HasRing(int cpu) const {
    uint32_t slot = uint32_t(cpu), id = 0;
    return bpf_map_lookup_elem(array_fd_, &slot, &id) == 0;
  }

  // One request from `cpu`: the server's receive is the event (its client mirrors it).
  void Exchange(int cpu) {
    ASSERT_NO_FATAL_FAILURE(PinTo(cpu));
    ASSERT_EQ(send(t_.client, kGet.data(), kGet.size(), 0), static_cast<ssize_t>(kGet.size()));
    ASSERT_EQ(ReadExactly(t_.server, kGet.size()), kGet);
    ASSERT_EQ(sched_setaffinity(0, sizeof(before_), &before_), 0);
    ASSERT_TRUE(probe_.ring()->Poll(0ms).ok());  // flushes the batches
  }

  std::vector<Payload> ServerReceives() const {
    std::vector<Payload> out;
    for (const Payload& p : events_) {
      if (p.e.sport == t_.server_port && p.e.direction == NS_L7_RECV &&
          !(p.e.flags & NS_L7_CLOSED)) {
        out.push_back(p);
      }
    }
    return out;
  }

  // The first exchange, from `late_`, is lost and counted as no_ring; returns that count.
  uint64_t LoseOneExchange() {
    EXPECT_NO_FATAL_FAILURE(Exchange(late_));
    EXPECT_TRUE(ServerReceives().empty()) << "an event from a CPU without a ring";
    const uint64_t lost = probe_.KernelCounters()[NS_NETFLOW_CNT_L7_NO_RING];
    EXPECT_GT(lost, 0u) << "the events of a CPU without a ring were not counted";
    EXPECT_EQ(probe_.KernelCounters()[NS_NETFLOW_CNT_L7_RINGBUF_DROPS], 0u);
    return lost;
  }

  // Cover gave `late_` its ring: the next exchanges, from it and from `early_`, arrive, with
  // offsets that say where the lost first one's bytes were.
  void ExpectBothArrive(uint64_t lost) {
    ASSERT_NO_FATAL_FAILURE(Exchange(late_));
    ASSERT_NO_FATAL_FAILURE(Exchange(early_));
    for (int i = 0; i < 20 && ServerReceives().size() < 2; ++i) {
      ASSERT_TRUE(probe_.ring()->Poll(50ms).ok());
    }
    std::vector<Payload> got = ServerReceives();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].e.offset, kGet.size());
    EXPECT_EQ(got[0].data, kGet);
    EXPECT_EQ(got[1].e.offset, 2 * kGet.size());
    EXPECT_EQ(probe_.KernelCounters()[NS_NETFLOW_CNT_L7_NO_RING], lost);
    EXPECT_EQ(probe_.KernelCounters()[NS_NETFLOW_CNT_L7_RINGBUF_DROPS], 0u);
  }

  static inline const std::string kGet = "GET /late HTTP/1.1\r\n\r\n";
  LoadedProbe probe_{"netflow", NS_NETFLOW_CNT_MAX};
  std::vector<Payload> events_;  // every L7 record, to the probe's last drain in TearDown
  cpu_set_t before_;             // the CPUs this test may run on
  std::vector<int> online_;
  int early_ = -1, late_ = -1;
  std::unique_ptr<netflow::L7Rings> rings_;
  int array_fd_ = -1;
  TcpPair t_;
};

TEST_P(L7RingsForCpus, ACpuBroughtOnlineLaterGetsItsRingAndUntilThenIsCounted) {
  ASSERT_NO_FATAL_FAILURE(LoadWithoutLate());
  if (IsSkipped()) return;
  const uint64_t lost = LoseOneExchange();

  Result<std::vector<int>> added = rings_->Cover(online_);
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(*added, std::vector<int>{late_});
  EXPECT_EQ(rings_->rings(), int(online_.size()));
  ASSERT_TRUE(HasRing(late_)) << "CPU " << late_ << " got no ring";
  Result<std::vector<int>> again = rings_->Cover(online_);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->empty()) << "a second look makes no ring";

  ASSERT_NO_FATAL_FAILURE(ExpectBothArrive(lost));
}

// Leaves exactly one file descriptor free below RLIMIT_NOFILE while it lives: the next one opened
// gets it, the one after fails (EMFILE).
class OneDescriptorLeft {
 public:
  OneDescriptorLeft() {
    EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0);
    // Every hole below the highest descriptor filled, the next one opened is just above it.
    int highest = -1;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
      highest = std::max(highest, std::stoi(entry.path().filename().string()));
    }
    for (;;) {
      const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        ADD_FAILURE() << "open /dev/null: " << std::strerror(errno);
        return;
      }
      if (fd > highest) {
        close(fd);
        rlimit one = saved_;
        one.rlim_cur = rlim_t(fd) + 1;
        EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &one), 0) << std::strerror(errno);
        return;
      }
      fillers_.push_back(fd);
    }
  }
  ~OneDescriptorLeft() {
    setrlimit(RLIMIT_NOFILE, &saved_);
    for (int fd : fillers_) close(fd);
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

TEST_P(L7RingsForCpus, ARingTheReaderCannotTakeIsTakenOutAndTheNextLookRetries) {
  ASSERT_NO_FATAL_FAILURE(LoadWithoutLate());
  if (IsSkipped()) return;
  {
    // The ring is made (its descriptor the last one left) but the reader cannot take it (it
    // keeps a copy of the descriptor).
    OneDescriptorLeft limit;
    Result<std::vector<int>> added = rings_->Cover(online_);
    ASSERT_FALSE(added.ok()) << "the reader took a ring with no descriptor left";
    EXPECT_NE(added.status().message().find("ring buffer"), std::string::npos)
        << added.status().message();
  }
  EXPECT_FALSE(HasRing(late_)) << "a ring no one reads was left in the array";
  EXPECT_EQ(rings_->rings(), int(online_.size()) - 1);
  // Its events are counted as no_ring, not lost to a ring that fills.
  const uint64_t lost = LoseOneExchange();

  Result<std::vector<int>> added = rings_->Cover(online_);
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(*added, std::vector<int>{late_});
  ASSERT_TRUE(HasRing(late_));
  ASSERT_NO_FATAL_FAILURE(ExpectBothArrive(lost));
}

INSTANTIATE_TEST_SUITE_P(Strategies, L7RingsForCpus,
                         ::testing::Values(std::string(kTpBtf), std::string(kTracepoint)),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Strategies, L7RingWakeup,
                         ::testing::Values(std::string(kTpBtf), std::string(kTracepoint)),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Strategies, L7Capture,
                         ::testing::Values(std::string(kTpBtf), std::string(kTracepoint)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nodescope::sensor::bpf
