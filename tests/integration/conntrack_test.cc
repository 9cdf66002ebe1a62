// ebpf-conntrack with real DNAT: a client namespace whose nftables table (its own, removed at the
// end) DNATs the service address 198.18.100.1:80 to a backend namespace's nginx on
// 198.18.1.2:8080 (later 198.18.1.3:8080), over a veth pair. curl's netflow and httpflow records,
// read back from the aggregator's sink, must carry dst_nat_ip/dst_nat_port as the kernel's own
// conntrack table (`conntrack -L`) and nginx's access log say, connection by connection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/netns.h"
#include "tests/integration/nginx.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "ct-node";
constexpr char kService[] = "198.18.100.1";
constexpr char kClient[] = "198.18.1.1";
constexpr char kBackend1[] = "198.18.1.2";
constexpr char kBackend2[] = "198.18.1.3";

// One entry of `conntrack -L`: original and reply tuples.
struct CtLine {
  std::string src, dst, reply_src, reply_dst;
  int sport = 0, dport = 0, reply_sport = 0, reply_dport = 0;
};

std::vector<CtLine> ParseConntrackList(const std::string& out) {
  std::vector<CtLine> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    CtLine c;
    int src = 0, dst = 0, sport = 0, dport = 0;
    for (std::string w; words >> w;) {
      auto value = [&](const char* key) {
        return w.rfind(key, 0) == 0 ? w.substr(strlen(key)) : "";
      };
      if (auto v = value("src="); !v.empty()) (src++ == 0 ? c.src : c.reply_src) = v;
      if (auto v = value("dst="); !v.empty()) (dst++ == 0 ? c.dst : c.reply_dst) = v;
      if (auto v = value("sport="); !v.empty())
        (sport++ == 0 ? c.sport : c.reply_sport) = std::stoi(v);
      if (auto v = value("dport="); !v.empty())
        (dport++ == 0 ? c.dport : c.reply_dport) = std::stoi(v);
    }
    if (src == 2 && dst == 2) lines.push_back(c);
  }
  return lines;
}

uint64_t NetnsInode(const Netns& ns) {
  struct stat st {};
  if (stat(("/run/netns/" + ns.name()).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

class Conntrack : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = Netns::Create("ctc");
    ASSERT_TRUE(client.ok()) << client.status().message();
    client_ = std::move(*client);
    auto backend = Netns::Create("ctb");
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    backend_ = std::move(*backend);
    const std::string base = UniqueIfName("");
    ASSERT_TRUE(AddVeth(*client_, base + "c", *backend_, base + "b").ok());
    ASSERT_TRUE(client_->Ip({"addr", "add", std::string(kClient) + "/24", "dev", base + "c"}).ok());
    for (const char* a : {kBackend1, kBackend2}) {
      ASSERT_TRUE(backend_->Ip({"addr", "add", std::string(a) + "/24", "dev", base + "b"}).ok());
    }
    // The service address needs a route before the output hook rewrites it.
    ASSERT_TRUE(client_->Ip({"route", "add", "198.18.100.0/24", "dev", base + "c"}).ok());
    table_ = "nst_ct_" + UniqueTag();
    for (char& c : table_) c = c == '-' ? '_' : c;
    Status nft =
        test::Run(client_->Exec({"nft", "add table ip " + table_ + "; add chain ip " + table_ +
                                            " out { type nat hook output priority -100; }"}));
    ASSERT_TRUE(nft.ok()) << nft.message();
    table_added_ = true;
    SetTarget(kBackend1);

    auto nginx = Nginx::Start({.ns = backend_.get(),
                               .listen = {kBackend1, kBackend2},
                               .port = 8080,
                               .files = {{"/1k.bin", 1024}, {"/1m.bin", 1 << 20}},
                               .keepalive_timeout_s = 0});
    ASSERT_TRUE(nginx.ok()) << nginx.status().message();
    nginx_ = std::move(*nginx);
    ASSERT_TRUE(stack_.StartAggregator().ok());
  }

  void TearDown() override {
    stack_.Stop();
    if (table_added_) {
      Status s = test::Run(client_->Exec({"nft", "delete table ip " + table_}));
      EXPECT_TRUE(s.ok()) << s.message();
    }
  }

  void SetTarget(const std::string& backend) {
    Status s = test::Run(client_->Exec({"nft", "flush chain ip " + table_ + " out; add rule ip " +
                                                   table_ + " out ip daddr " + kService +
                                                   " tcp dport 80 dnat to " + backend + ":8080"}));
    ASSERT_TRUE(s.ok()) << s.message();
  }

  void StartSensor(const std::string& plugins = "[ebpf-net, ebpf-conntrack]") {
    stack_.sensor_http_port = FreePort();
    stack_.dir.Write("sensor.yaml", "trace_server: 127.0.0.1:" + std::to_string(stack_.grpc_port) +
                                        "\npprof_port: " + std::to_string(stack_.sensor_http_port) +
                                        "\nhostname: " + kHost + "\ninterval: 1s\n" +
                                        "enabled_plugins: " + plugins + "\n");
    stack_.sensor = std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config",
                                 stack_.dir.File("sensor.yaml")},
        stack_.dir.File("sensor.log"));
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string log = stack_.sensor->Log();
          return log.find("probe netflow: attached") != std::string::npos &&
                 log.find("probe conntrack: attached") != std::string::npos;
        },
        60s))
        << stack_.sensor->Log();
  }

  CurlResult Get(const std::string& path) {
    Result<CurlResult> r = Curl(client_.get(), std::string("http://") + kService + path);
    EXPECT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.ok() ? r->http_code : 0, 200);
    return r.ok() ? *r : CurlResult{};
  }

  // This process's own TCP connection from the client namespace to the service, idle; -1 on
  // failure. The socket stays in the namespace it was made in.
  int ConnectToService(int* local_port) {
    int fd = -1;
    Status in = client_->RunIn([&] {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(80);
      inet_pton(AF_INET, kService, &a.sin_addr);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        fd = -1;
      }
    });
    EXPECT_TRUE(in.ok()) << in.message();
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    if (fd >= 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      *local_port = ntohs(local.sin_port);
    }
    return fd;
  }

  // Asks for 1 MiB on `fd` (Connection: close), reads to the end, closes; the bytes read.
  uint64_t FetchAndClose(int fd) {
    const std::string request =
        "GET /1m.bin HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n";
    EXPECT_EQ(write(fd, request.data(), request.size()), ssize_t(request.size()));
    uint64_t total = 0;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) total += n;
    close(fd);
    return total;
  }

  std::vector<CtLine> ConntrackList() {
    CommandResult r = RunCommand(
        client_->Exec({"conntrack", "-L", "-p", "tcp", "--orig-dst", kService, "--dport", "80"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseConntrackList(r.out);
  }

  // curl's outgoing records to the service, by "dst_nat_ip:dst_nat_port" ("" when untagged).
  struct Side {
    uint64_t closed = 0, bytes_read = 0, count = 0, records = 0;
    std::set<std::string> netns;
  };
  std::map<std::string, Side> ClientSide(const std::string& source,
                                         const std::string& process = "curl") {
    std::map<std::string, Side> out;
    for (const json& r : stack_.Records(source)) {
      const json& t = r["tags"];
      if (t.value("direction", "") != "outgoing" || t.value("dst_ip", "") != kService ||
          t.value("process_name", "") != process) {
        continue;
      }
      EXPECT_EQ(t.value("dst_port", ""), "80");
      EXPECT_EQ(t.value("src_port", ""), "*");
      const std::string nat = t.contains("dst_nat_ip")
                                  ? t.value("dst_nat_ip", "") + ":" + t.value("dst_nat_port", "")
                                  : "";
      Side& s = out[nat];
      s.closed += r["fields"].value("tcp_closed", 0);
      s.bytes_read += r["fields"].value("bytes_read", 0);
      s.count += r["fields"].value("count", 0);
      ++s.records;
      s.netns.insert(t.value("netns", ""));
    }
    return out;
  }

  std::string Dump(const std::string& source) {
    std::string all;
    for (const json& r : stack_.Records(source)) all += r.dump() + "\n";
    return all;
  }

  std::unique_ptr<Netns> client_, backend_;
  std::string table_;
  bool table_added_ = false;
  std::unique_ptr<Nginx> nginx_;
  NodeStack stack_;
};

TEST_F(Conntrack, DnatTargetOnNetflowAndHttpflowMatchesTheConntrackTable) {
  StartSensor();
  std::set<int> ports;
  for (int i = 0; i < 3; ++i) ports.insert(Get("/1k.bin").local_port);
  ASSERT_EQ(ports.size(), 3u);

  // The kernel's view: each of curl's connections was translated to backend 1.
  std::map<int, CtLine> by_port;
  for (const CtLine& c : ConntrackList()) by_port[c.sport] = c;
  for (int port : ports) {
    ASSERT_TRUE(by_port.count(port)) << "conntrack -L lacks port " << port;
    EXPECT_EQ(by_port[port].src, kClient);
    EXPECT_EQ(by_port[port].dst, kService);
    EXPECT_EQ(by_port[port].reply_src, kBackend1);
    EXPECT_EQ(by_port[port].reply_sport, 8080);
  }
  const std::string expected = std::string(kBackend1) + ":8080";
  ASSERT_TRUE(WaitFor([&] { return ClientSide("netflow")[expected].closed >= 3; }, 20s))
      << Dump("netflow") << stack_.sensor->Log();
  ASSERT_TRUE(WaitFor([&] { return ClientSide("httpflow")[expected].count >= 3; }, 20s))
      << Dump("httpflow");
  std::this_thread::sleep_for(1500ms);
  std::map<std::string, Side> netflow = ClientSide("netflow");
  std::map<std::string, Side> httpflow = ClientSide("httpflow");
  EXPECT_EQ(netflow.size(), 1u) << Dump("netflow");  // nothing untagged, nothing elsewhere
  EXPECT_EQ(netflow[expected].closed, 3u);
  EXPECT_EQ(httpflow.size(), 1u) << Dump("httpflow");
  EXPECT_EQ(httpflow[expected].count, 3u);
  const std::string client_netns = std::to_string(NetnsInode(*client_));
  EXPECT_EQ(netflow[expected].netns, std::set<std::string>{client_netns});

  // nginx's side of the same connections saw no DNAT of its own: no tags.
  for (const char* source : {"netflow", "httpflow"}) {
    for (const json& r : stack_.Records(source)) {
      if (r["tags"].value("process_name", "") == "nginx") {
        EXPECT_FALSE(r["tags"].contains("dst_nat_ip")) << r.dump();
      }
    }
  }

  // The translations themselves, as conntrack records: one NEW per connection, by port.
  std::set<int> announced;
  for (const json& r : stack_.Records("conntrack")) {
    const json& t = r["tags"];
    if (r["fields"].value("event", "") != "new" || t.value("dst_ip", "") != kService) continue;
    EXPECT_EQ(t.value("dst_nat_ip", ""), kBackend1);
    EXPECT_EQ(t.value("dst_nat_port", ""), "8080");
    EXPECT_EQ(t.value("netns", ""), client_netns);
    announced.insert(std::stoi(t.value("src_port", "0")));
  }
  EXPECT_EQ(announced, ports) << Dump("conntrack");

  const std::string status = HttpGet(stack_.sensor_http_port, "/debug/status");
  json st = json::parse(status, nullptr, false);
  bool found = false;
  for (const json& p : st["probes"]) {
    if (p.value("probe", "") != "conntrack") continue;
    found = true;
    EXPECT_EQ(p.value("strategy", ""), "ctnetlink");
    EXPECT_EQ(p.value("state", ""), "attached");
  }
  EXPECT_TRUE(found) << status;
  const std::string metrics = HttpGet(stack_.sensor_http_port, "/metrics");
  EXPECT_GE(
      MetricValue(metrics, "nodescope_sensor_events_total{source=\"conntrack\",event=\"new\"}"),
      3.0)
      << metrics;
  EXPECT_EQ(
      MetricValue(metrics, "nodescope_sensor_conntrack_netlink_errors_total{reason=\"overrun\"}"),
      0.0);
}

// A connection opened before the rule changes keeps its backend for its whole life, across
// intervals; connections after the change go to the new one. The long connection is this
// test's own socket: connected in the client namespace, idle over an interval flush, then
// asking for a file after the change.
TEST_F(Conntrack, ChangedTargetIsReflectedOnNewConnectionsOnly) {
  StartSensor();
  int long_port = 0;
  const int fd = ConnectToService(&long_port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::this_thread::sleep_for(1500ms);  // established, reported in an interval of its own
  SetTarget(kBackend2);
  std::set<int> new_ports;
  for (int i = 0; i < 2; ++i) new_ports.insert(Get("/1k.bin").local_port);
  const uint64_t long_read = FetchAndClose(fd);

  // What nginx served on which address, per client port.
  std::vector<AccessLogEntry> log = nginx_->WaitForAccessLog(3, 10s);
  ASSERT_EQ(log.size(), 3u);
  uint64_t new_bytes = 0;
  for (const AccessLogEntry& e : log) {
    if (e.remote_port == long_port) {
      EXPECT_EQ(e.server_addr, kBackend1);
      EXPECT_EQ(e.bytes_sent, long_read);
    } else {
      EXPECT_TRUE(new_ports.count(e.remote_port)) << e.remote_port;
      EXPECT_EQ(e.server_addr, kBackend2);
      new_bytes += e.bytes_sent;
    }
  }
  std::map<int, CtLine> by_port;
  for (const CtLine& c : ConntrackList()) by_port[c.sport] = c;
  EXPECT_EQ(by_port[long_port].reply_src, kBackend1);
  for (int p : new_ports) EXPECT_EQ(by_port[p].reply_src, kBackend2);

  const std::string old_target = std::string(kBackend1) + ":8080";
  const std::string new_target = std::string(kBackend2) + ":8080";
  const std::string self = "conntrack_test";  // this process's comm
  ASSERT_TRUE(WaitFor(
      [&] {
        return ClientSide("netflow", self)[old_target].closed >= 1 &&
               ClientSide("netflow")[new_target].closed >= 2;
      },
      20s))
      << Dump("netflow") << stack_.sensor->Log();
  std::this_thread::sleep_for(1500ms);
  std::map<std::string, Side> curl = ClientSide("netflow");
  EXPECT_EQ(curl.size(), 1u) << Dump("netflow");
  EXPECT_EQ(curl[new_target].closed, 2u);
  EXPECT_EQ(curl[new_target].bytes_read, new_bytes);
  // The long connection: a record before the change (established) and after it (the bytes),
  // every one naming the old backend.
  std::map<std::string, Side> own = ClientSide("netflow", self);
  EXPECT_EQ(own.size(), 1u) << Dump("netflow");
  EXPECT_GE(own[old_target].records, 2u) << Dump("netflow");
  EXPECT_EQ(own[old_target].closed, 1u);
  EXPECT_EQ(own[old_target].bytes_read, long_read);
  EXPECT_EQ(ClientSide("httpflow")[new_target].count, 2u) << Dump("httpflow");
  EXPECT_EQ(ClientSide("httpflow").size(), 1u) << Dump("httpflow");
  EXPECT_EQ(ClientSide("httpflow", self)[old_target].count, 1u) << Dump("httpflow");
  EXPECT_EQ(ClientSide("httpflow", self).size(), 1u) << Dump("httpflow");
}

// A connection older than the sensor: its translation comes from the dump made when the
// client's namespace was subscribed, and what netflow reports of it carries it.
TEST_F(Conntrack, ConnectionOlderThanTheSensorIsJoinedThroughTheDump) {
  int port = 0;
  const int fd = ConnectToService(&port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  StartSensor();
  const uint64_t read_bytes = FetchAndClose(fd);
  const std::string target = std::string(kBackend1) + ":8080";
  const std::string self = "conntrack_test";
  ASSERT_TRUE(WaitFor([&] { return ClientSide("netflow", self)[target].closed >= 1; }, 20s))
      << Dump("netflow") << stack_.sensor->Log();
  std::this_thread::sleep_for(1500ms);
  std::map<std::string, Side> netflow = ClientSide("netflow", self);
  EXPECT_EQ(netflow.size(), 1u) << Dump("netflow");   // nothing of it without the tags
  EXPECT_EQ(netflow[target].bytes_read, read_bytes);  // every byte came after the sensor started
  // No httpflow here: ebpf-net does not parse HTTP on connections older than the sensor.
  bool existing = false;
  for (const json& r : stack_.Records("conntrack")) {
    existing |= r["fields"].value("event", "") == "existing" &&
                r["tags"].value("src_port", "") == std::to_string(port) &&
                r["tags"].value("dst_nat_ip", "") == kBackend1;
  }
  EXPECT_TRUE(existing) << Dump("conntrack");
}

// A namespace created while the sensor runs is found by the rescan (every 3 s) and its DNAT
// joined like the others'.
TEST_F(Conntrack, NamespaceCreatedLaterIsSubscribed) {
  StartSensor();
  auto namespaces = [&] {
    return MetricValue(HttpGet(stack_.sensor_http_port, "/metrics"),
                       "nodescope_sensor_conntrack_namespaces");
  };
  // The sensor's own, the client's, the backend's (the endpoint is up shortly after the probes).
  ASSERT_TRUE(WaitFor([&] { return namespaces() >= 3.0; }, 10s));
  const double before = namespaces();
  auto late = Netns::Create("ctl");
  ASSERT_TRUE(late.ok()) << late.status().message();
  const std::string base = UniqueIfName("");
  ASSERT_TRUE(AddVeth(**late, base + "l", *backend_, base + "k").ok());
  ASSERT_TRUE((*late)->Ip({"addr", "add", "198.18.2.1/24", "dev", base + "l"}).ok());
  ASSERT_TRUE(backend_->Ip({"addr", "add", "198.18.2.2/24", "dev", base + "k"}).ok());
  ASSERT_TRUE((*late)->Ip({"route", "add", "198.18.1.0/24", "via", "198.18.2.2"}).ok());
  ASSERT_TRUE((*late)->Ip({"route", "add", "198.18.100.0/24", "via", "198.18.2.2"}).ok());
  // Its own table; deleted with the namespace, and explicitly below.
  const std::string table = table_ + "_late";
  Status nft = test::Run((*late)->Exec(
      {"nft", "add table ip " + table + "; add chain ip " + table +
                  " out { type nat hook output priority -100; }; add rule ip " + table +
                  " out ip daddr " + kService + " tcp dport 80 dnat to " + kBackend2 + ":8080"}));
  ASSERT_TRUE(nft.ok()) << nft.message();
  struct DropTable {
    const Netns* ns;
    std::string name;
    ~DropTable() { (void)test::Run(ns->Exec({"nft", "delete table ip " + name})); }
  } drop{late->get(), table};
  const std::string late_netns = std::to_string(NetnsInode(**late));
  ASSERT_TRUE(WaitFor([&] { return namespaces() > before; }, 10s));
  Result<CurlResult> r = Curl(late->get(), std::string("http://") + kService + "/1k.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->http_code, 200);
  const std::string target = std::string(kBackend2) + ":8080";
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = ClientSide("netflow");
        return s[target].closed >= 1 && s[target].netns.count(late_netns);
      },
      20s))
      << Dump("netflow") << stack_.sensor->Log();
  bool announced = false;
  for (const json& rec : stack_.Records("conntrack")) {
    announced |= rec["tags"].value("netns", "") == late_netns &&
                 rec["tags"].value("src_port", "") == std::to_string(r->local_port) &&
                 rec["tags"].value("dst_nat_ip", "") == kBackend2;
  }
  EXPECT_TRUE(announced) << Dump("conntrack");
}

// Traffic in a namespace without DNAT (the client straight to a backend address, which the
// table's rule does not match): records without dst_nat tags, no conntrack errors, and the
// sensor stops cleanly (NodeStack::Stop checks exit code 0).
TEST_F(Conntrack, NamespacesWithoutDnatRunCleanly) {
  StartSensor();
  Result<CurlResult> r = Curl(client_.get(), std::string("http://") + kBackend1 + ":8080/1k.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const json& rec : stack_.Records("netflow")) {
          const json& t = rec["tags"];
          if (t.value("process_name", "") == "curl" && t.value("dst_ip", "") == kBackend1 &&
              rec["fields"].value("tcp_closed", 0) == 1) {
            EXPECT_FALSE(t.contains("dst_nat_ip")) << rec.dump();
            return true;
          }
        }
        return false;
      },
      20s))
      << Dump("netflow");
  const std::string client_netns = std::to_string(NetnsInode(*client_));
  for (const json& rec : stack_.Records("conntrack")) {
    EXPECT_NE(rec["tags"].value("netns", ""), client_netns) << rec.dump();
  }
  const std::string metrics = HttpGet(stack_.sensor_http_port, "/metrics");
  for (const char* reason : {"overrun", "malformed", "socket"}) {
    EXPECT_EQ(MetricValue(metrics, std::string("nodescope_sensor_conntrack_netlink_errors_total{"
                                               "reason=\"") +
                                       reason + "\"}"),
              0.0)
        << metrics;
  }
  EXPECT_GE(MetricValue(metrics, "nodescope_sensor_conntrack_namespaces"), 3.0) << metrics;
  const std::string log = stack_.sensor->Log();
  EXPECT_EQ(log.find("[error]"), std::string::npos) << log;
  EXPECT_EQ(log.find("probe conntrack: netns"), std::string::npos) << log;
}

}  // namespace
}  // namespace nodescope::test
