// httpflow and dnsflow with real peers: curl against nginx (files, redirects, errors, POST, a
// gzip-chunked body, a proxied slow backend), keep-alive and not, held against nginx's access
// log; dig against dnsmasq between two namespaces over UDP and TCP, NXDOMAIN and a server that
// never answers; and a name resolved through that dnsmasq showing as dst_domain.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/integration/dnsmasq.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"
#include "tests/integration/nginx.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "l7-node";

// An HTTP/1.1 backend on 127.0.0.1 that waits `delay` before answering each request with a
// chunked body and closing: a latency the test knows, seen through nginx's proxy.
class SlowBackend {
 public:
  explicit SlowBackend(std::chrono::milliseconds delay) : delay_(delay) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(fd_, 16) == 0) {
      socklen_t len = sizeof(a);
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowBackend() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      std::this_thread::sleep_for(delay_);
      const std::string response =
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
      (void)!write(c, response.data(), response.size());
      close(c);
    }
  }

  std::chrono::milliseconds delay_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct HttpTotals {
  uint64_t count = 0, bytes_read = 0, bytes_written = 0;
  double latency_weighted = 0;  // sum of latency * count
};

using RequestKey = std::tuple<std::string, std::string, int>;  // method, path, status

// Both sides of every request key of nginx's access log: as many exchanges as the log has, the
// responses as nginx wrote them ($bytes_sent: status line, headers and body) read by curl and
// written by nginx, and what curl wrote is what nginx read.
void ExpectBothSidesMatchAccessLog(const std::map<RequestKey, HttpTotals>& access,
                                   std::map<RequestKey, HttpTotals>& client,
                                   std::map<RequestKey, HttpTotals>& server) {
  for (const auto& [key, a] : access) {
    SCOPED_TRACE(std::get<0>(key) + " " + std::get<1>(key) + " " +
                 std::to_string(std::get<2>(key)));
    EXPECT_EQ(client[key].count, a.count);
    EXPECT_EQ(server[key].count, a.count);
    EXPECT_EQ(client[key].bytes_read, a.bytes_written);
    EXPECT_EQ(server[key].bytes_written, a.bytes_written);
    EXPECT_EQ(client[key].bytes_written, server[key].bytes_read);
  }
}

class L7 : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(stack_.StartAggregator().ok()); }
  void TearDown() override { stack_.Stop(); }

  void StartSensor(const std::string& extra = "") {
    Status started = stack_.StartSensor(kHost, "interval: 1s\n" + extra);
    ASSERT_TRUE(started.ok()) << started.message();
  }

  // httpflow records of one side, summed per (method, path, status).
  std::map<RequestKey, HttpTotals> Http(const std::string& direction, const std::string& process,
                                        const std::string& port_tag, const std::string& port) {
    std::map<RequestKey, HttpTotals> out;
    for (const json& r : stack_.Records("httpflow")) {
      const json& t = r["tags"];
      const json& f = r["fields"];
      if (t.value("direction", "") != direction || t.value("process_name", "") != process ||
          t.value(port_tag, "") != port) {
        continue;
      }
      HttpTotals& h = out[{f.value("method", ""), f.value("path", ""), f.value("status_code", 0)}];
      const uint64_t count = f.value("count", 0);
      h.count += count;
      h.bytes_read += f.value("bytes_read", 0);
      h.bytes_written += f.value("bytes_written", 0);
      h.latency_weighted += static_cast<double>(f.value("latency", 0)) * count;
      EXPECT_EQ(f.value("http_version", ""), "1.1");
      EXPECT_FALSE(f.value("truncated", true));
    }
    return out;
  }

  static uint64_t Count(const std::map<RequestKey, HttpTotals>& m) {
    uint64_t n = 0;
    for (const auto& [k, v] : m) n += v.count;
    return n;
  }

  std::string Dump(const std::string& source) {
    std::string all;
    for (const json& r : stack_.Records(source)) all += r.dump() + "\n";
    return all;
  }

  void HttpRecordsMatchNginxAccessLog(bool tls);

  NodeStack stack_;
};

// "GET /x?y HTTP/1.1" -> ("GET", "/x").
std::pair<std::string, std::string> MethodPath(const std::string& request) {
  std::istringstream in(request);
  std::string method, target;
  in >> method >> target;
  return {method, target.substr(0, target.find('?'))};
}

// The same requests over plain HTTP and, with `tls`, over HTTPS (OpenSSL uprobes: curl and nginx
// both use the host's libssl.so.3), held against nginx's access log the same way.
void L7::HttpRecordsMatchNginxAccessLog(bool tls) {
  SlowBackend backend(50ms);
  ASSERT_GT(backend.port(), 0);
  Result<std::unique_ptr<Nginx>> started =
      Nginx::Start({.files = {{"/1k.bin", 1024}, {"/10m.bin", 10 << 20}, {"/text.txt", 20000}},
                    .returns = {{"/moved", 301}, {"/err", 500}, {"/post", 200}},
                    .proxies = {{"/slow", "http://127.0.0.1:" + std::to_string(backend.port())}},
                    .gzip = true,
                    .tls = tls});
  ASSERT_TRUE(started.ok()) << started.status().message();
  Nginx& nginx = **started;
  StartSensor(tls ? "l7net_enabled: [httpflow, httpflow-tls]\n" : "");
  const std::vector<std::string> insecure =
      tls ? std::vector<std::string>{"-k"} : std::vector<std::string>{};
  if (tls) {
    // The status names the library watched and what the uprobes cannot see.
    const std::string status = HttpGet(stack_.sensor_http_port, "/debug/status");
    EXPECT_NE(status.find("\"probe\": \"httpflow-tls\""), std::string::npos) << status;
    EXPECT_NE(status.find("statically linked OpenSSL"), std::string::npos) << status;
  }

  // Keep-alive: one curl, five requests on one connection (the text file gzip-chunked).
  std::vector<std::string> keepalive = {Which("curl"), "-s", "--compressed"};
  keepalive.insert(keepalive.end(), insecure.begin(), insecure.end());
  const std::vector<std::string> paths = {"/1k.bin", "/moved", "/missing", "/err", "/text.txt"};
  for (const std::string& p : paths) {
    keepalive.insert(keepalive.end(), {"-o", "/dev/null", nginx.Url(p + "?q=1")});
  }
  CommandResult ka = RunCommand(keepalive);
  ASSERT_EQ(ka.exit_code, 0) << ka.err;
  // One connection each.
  for (const std::string& p :
       {"/1k.bin", "/1k.bin", "/missing", "/slow/a", "/slow/a", "/slow/b", "/10m.bin"}) {
    Result<CurlResult> r = Curl(nullptr, nginx.Url(p), insecure);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  // A 1 MiB request body.
  TempDir body;
  body.Write("1m.bin", std::string(1 << 20, 'p'));
  std::vector<std::string> post_args = {"--data-binary", "@" + body.File("1m.bin"), "-H",
                                        "Expect:"};
  post_args.insert(post_args.end(), insecure.begin(), insecure.end());
  Result<CurlResult> post = Curl(nullptr, nginx.Url("/post"), post_args);
  ASSERT_TRUE(post.ok()) << post.status().message();
  const size_t requests = paths.size() + 7 + 1;

  std::vector<AccessLogEntry> log = nginx.WaitForAccessLog(requests, 10s);
  ASSERT_EQ(log.size(), requests);
  std::map<RequestKey, HttpTotals> access;
  std::map<std::string, double> request_time;  // path -> sum of $request_time
  for (const AccessLogEntry& e : log) {
    auto [method, path] = MethodPath(e.request);
    HttpTotals& h = access[{method, path, e.status}];
    ++h.count;
    h.bytes_written += e.bytes_sent;
    request_time[path] += e.request_time_s;
  }

  const std::string port = std::to_string(nginx.port());
  std::map<RequestKey, HttpTotals> client, server;
  bool all = WaitFor(
      [&] {
        client = Http("outgoing", "curl", "dst_port", port);
        server = Http("incoming", "nginx", "src_port", port);
        return Count(client) >= requests && Count(server) >= requests;
      },
      20s);
  ASSERT_TRUE(all) << "curl " << Count(client) << ", nginx " << Count(server) << " of " << requests
                   << "\n"
                   << HttpGet(stack_.sensor_http_port, "/metrics") << stack_.sensor->Log()
                   << Dump("httpflow");

  ExpectBothSidesMatchAccessLog(access, client, server);
  uint64_t sent_total = 0, client_read = 0, server_written = 0;
  for (const auto& [key, a] : access) {
    sent_total += a.bytes_written;
    client_read += client[key].bytes_read;
    server_written += server[key].bytes_written;
  }
  EXPECT_EQ(client.size(), access.size());
  EXPECT_EQ(server.size(), access.size());
  EXPECT_EQ(client_read, sent_total);
  EXPECT_EQ(server_written, sent_total);
  EXPECT_GT((client[{"POST", "/post", 200}].bytes_written), uint64_t{1} << 20);
  if (!tls) {
    // Both ends are on loopback: curl's side came from nginx's parse (its payload was not
    // copied), and still matched the access log above.
    const double mirrored = MetricValue(
        HttpGet(stack_.sensor_http_port, "/metrics"),
        R"(nodescope_sensor_events_total{source="httpflow",event="exchange_mirrored"})");
    EXPECT_GE(mirrored, static_cast<double>(requests) / 2);
  }

  // Latency: nginx's $request_time (first request byte read to last response byte written, ms
  // resolution) against nginx's own record (first request byte read to first response byte
  // written) for the 50 ms backend; the tiny body makes first and last byte the same moment.
  // curl's record adds loopback both ways on top.
  for (const std::string& path : {"/slow/a", "/slow/b"}) {
    SCOPED_TRACE(path);
    const RequestKey key{"GET", path, 200};
    const double nginx_s = request_time[path] / static_cast<double>(access[key].count);
    const double server_s = server[key].latency_weighted / server[key].count / 1e9;
    const double client_s = client[key].latency_weighted / client[key].count / 1e9;
    EXPECT_GE(nginx_s, 0.050);
    EXPECT_NEAR(server_s, nginx_s, 0.1 * nginx_s + 0.001);  // + the log's 1 ms resolution
    // Over TLS both ends time the SSL call's return: nginx's SSL_write returns after the bytes
    // left, when curl may already hold them, so the client can read a hair shorter. In the
    // clear, curl's side is timed by its own calls (mirrored: by their runs), which enclose
    // nginx's: strictly longer, where the server's times standing in would make it equal.
    if (!tls) EXPECT_GT(client_s, server_s);
    EXPECT_NEAR(client_s, nginx_s, 0.1 * nginx_s + 0.001);
  }
  // nginx's own requests to the backend: its outgoing side.
  std::map<RequestKey, HttpTotals> proxied =
      Http("outgoing", "nginx", "dst_port", std::to_string(backend.port()));
  EXPECT_EQ((proxied[RequestKey{"GET", "/slow/a", 200}].count), 2u);

  // Prometheus: the aggregator's counters agree with the records.
  const std::string metrics = HttpGet(stack_.http_port, "/metrics");
  double not_found = 0;
  std::istringstream lines(metrics);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("nodescope_http_requests_total{", 0) == 0 &&
        line.find("direction=\"outgoing\"") != std::string::npos &&
        line.find("status_code=\"404\"") != std::string::npos &&
        line.find("process_name=\"curl\"") != std::string::npos) {
      not_found += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  EXPECT_EQ(not_found, static_cast<double>((access[{"GET", "/missing", 404}].count))) << metrics;
  EXPECT_NE(metrics.find("nodescope_http_request_duration_seconds_bucket{"), std::string::npos);
}

TEST_F(L7, HttpRecordsMatchNginxAccessLogOnBothSides) { HttpRecordsMatchNginxAccessLog(false); }

TEST_F(L7, HttpsRecordsMatchNginxAccessLogOnBothSides) { HttpRecordsMatchNginxAccessLog(true); }

// httpflow-tls's coverage text from the sensor's status.
std::string TlsCoverage(int sensor_port) {
  json status = json::parse(HttpGet(sensor_port, "/debug/status"), nullptr, false);
  if (!status.is_object()) return "";
  for (const json& p : status.value("probes", json::array())) {
    if (p.value("probe", "") == "httpflow-tls") return p.value("coverage", "");
  }
  return "";
}

// A curl started after the sensor, loading a COPY of libssl.so.3 and libcrypto.so.3 through
// LD_LIBRARY_PATH: the copy is found through the exec and probed, and the client side is
// recorded as with the host's library (the server, nginx, through the host's). wget (GnuTLS)
// against the same nginx is listed as not covered, and nothing else changes.
TEST_F(L7, HttpsThroughACopyOfLibsslAndGnuTlsListedAsNotCovered) {
  SlowBackend backend(600ms);  // keeps wget running past the sensor's look at its libraries
  ASSERT_GT(backend.port(), 0);
  Result<std::unique_ptr<Nginx>> started =
      Nginx::Start({.files = {{"/1k.bin", 1024}, {"/text.txt", 20000}},
                    .returns = {},
                    .proxies = {{"/slow", "http://127.0.0.1:" + std::to_string(backend.port())}},
                    .tls = true});
  ASSERT_TRUE(started.ok()) << started.status().message();
  Nginx& nginx = **started;
  const std::string host_lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  ASSERT_TRUE(std::filesystem::exists(host_lib));
  TempDir libs;
  for (const char* lib : {"libssl.so.3", "libcrypto.so.3"}) {
    std::filesystem::copy_file(std::string("/usr/lib/x86_64-linux-gnu/") + lib, libs.File(lib));
  }
  const std::string copy = libs.File("libssl.so.3");
  StartSensor("l7net_enabled: [httpflow, httpflow-tls]\n");
  ASSERT_TRUE(WaitFor([&] { return !TlsCoverage(stack_.sensor_http_port).empty(); }, 10s));
  EXPECT_EQ(TlsCoverage(stack_.sensor_http_port).find(copy), std::string::npos)
      << "nothing maps the copy yet";

  // curl reads its URLs from a FIFO: it maps the copy (ld.so) and waits, started after the
  // sensor; the requests go out once the status says the copy is probed.
  ASSERT_EQ(mkfifo(libs.File("urls").c_str(), 0600), 0);
  const std::vector<std::string> paths = {"/1k.bin", "/text.txt", "/missing"};
  Subprocess curl({Which("curl"), "-s", "-k", "-K", libs.File("urls")}, libs.File("curl.log"),
                  {{"LD_LIBRARY_PATH", libs.path()}});
  const bool covered = WaitFor(
      [&] {
        return TlsCoverage(stack_.sensor_http_port).find(copy + " (1 process)") !=
               std::string::npos;
      },
      10s);
  {
    // Written even when the wait failed, so curl ends either way.
    std::ofstream urls(libs.File("urls"));
    for (const std::string& p : paths) {
      urls << "url = \"" << nginx.Url(p) << "\"\noutput = \"/dev/null\"\n";
    }
  }
  ASSERT_TRUE(covered) << TlsCoverage(stack_.sensor_http_port) << stack_.sensor->Log();
  ASSERT_EQ(curl.Wait(20s), 0) << curl.Log();
  // A second curl on the copy, one request per connection: covered from its first call.
  for (const char* p : {"/1k.bin", "/text.txt"}) {
    CommandResult r = RunCommand({Which("env"), "LD_LIBRARY_PATH=" + libs.path(), Which("curl"),
                                  "-s", "-k", "-o", "/dev/null", nginx.Url(p)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const size_t requests = paths.size() + 2;

  // wget links GnuTLS: not covered, said in the status; its request still reaches nginx.
  // Processes already running may map GnuTLS too: wget is one more process seen with it.
  // The file is libgnutls.so.30 with the version ld.so resolved the link to.
  auto gnutls_processes = [&](const std::string& coverage) {
    const size_t at = coverage.find("libgnutls.so.30");
    if (at == std::string::npos) return 0;
    const std::string reason = " (GnuTLS: not OpenSSL 3, ";
    const size_t r = coverage.find(reason, at);
    return r == std::string::npos ? -1 : std::atoi(coverage.c_str() + r + reason.size());
  };
  const int gnutls_before = gnutls_processes(TlsCoverage(stack_.sensor_http_port));
  ASSERT_GE(gnutls_before, 0);
  CommandResult wget = RunCommand(
      {Which("wget"), "-q", "--no-check-certificate", "-O", "/dev/null", nginx.Url("/slow/wget")});
  ASSERT_EQ(wget.exit_code, 0) << wget.err;
  std::vector<AccessLogEntry> log = nginx.WaitForAccessLog(requests + 1, 10s);
  ASSERT_EQ(log.size(), requests + 1);

  std::map<RequestKey, HttpTotals> access;
  for (const AccessLogEntry& e : log) {
    auto [method, path] = MethodPath(e.request);
    if (path == "/slow/wget") continue;
    HttpTotals& h = access[{method, path, e.status}];
    ++h.count;
    h.bytes_written += e.bytes_sent;
  }
  const std::string port = std::to_string(nginx.port());
  std::map<RequestKey, HttpTotals> client, server;
  bool all = WaitFor(
      [&] {
        client = Http("outgoing", "curl", "dst_port", port);
        server = Http("incoming", "nginx", "src_port", port);
        return Count(client) >= requests && Count(server) >= requests + 1;
      },
      20s);
  ASSERT_TRUE(all) << "curl " << Count(client) << ", nginx " << Count(server) << " of " << requests
                   << "\n"
                   << stack_.sensor->Log() << Dump("httpflow");
  ExpectBothSidesMatchAccessLog(access, client, server);
  EXPECT_EQ(client.size(), access.size());
  // nginx's side of wget's request is seen (the host's libssl); wget's own is not.
  EXPECT_EQ((server[RequestKey{"GET", "/slow/wget", 200}].count), 1u);
  EXPECT_TRUE(Http("outgoing", "wget", "dst_port", port).empty());

  std::string coverage;
  const bool listed = WaitFor(
      [&] {
        coverage = TlsCoverage(stack_.sensor_http_port);
        return gnutls_processes(coverage) > gnutls_before;
      },
      10s);
  EXPECT_TRUE(listed) << coverage;
  // Both libssl files covered: the host's (nginx, found at start) and the copy (two curls).
  EXPECT_NE(coverage.find(host_lib + " ("), std::string::npos) << coverage;
  // The FIFO curl for certain; the short-lived ones only if still running at the sensor's look.
  const size_t at = coverage.find(copy + " (");
  ASSERT_NE(at, std::string::npos) << coverage;
  const int copy_processes = std::atoi(coverage.c_str() + at + copy.size() + 2);
  EXPECT_GE(copy_processes, 1) << coverage;
  EXPECT_LE(copy_processes, 3) << coverage;
  const size_t not_covered = coverage.find("not covered:");
  ASSERT_NE(not_covered, std::string::npos) << coverage;
  EXPECT_LT(coverage.find(copy), not_covered) << coverage;
  EXPECT_GT(coverage.find("libgnutls.so.30"), not_covered) << coverage;
  // One log line per file: the copy probed once, GnuTLS reported once.
  const std::string sensor_log = stack_.sensor->Log();
  auto occurrences = [&](const std::string& text) {
    size_t n = 0;
    for (size_t at = sensor_log.find(text); at != std::string::npos;
         at = sensor_log.find(text, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(occurrences("httpflow-tls: " + copy + " (dev"), 1u) << sensor_log;
  size_t gnutls_lines = 0;
  std::istringstream lines(sensor_log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("libgnutls.so.30") != std::string::npos &&
        line.find("is not probed: GnuTLS: not OpenSSL 3") != std::string::npos) {
      ++gnutls_lines;
    }
  }
  EXPECT_EQ(gnutls_lines, 1u) << sensor_log;
}

// The copy of libssl.so.3 sits on a tmpfs only a private mount namespace sees: the sensor
// reaches it through /proc/<pid>/map_files (or the process's root), probes it, and curl's requests
// are recorded.
TEST_F(L7, HttpsThroughALibsslCopyInAnotherMountNamespace) {
  Result<std::unique_ptr<Nginx>> started =
      Nginx::Start({.files = {{"/1k.bin", 1024}, {"/text.txt", 20000}},
                    .returns = {},
                    .proxies = {},
                    .tls = true});
  ASSERT_TRUE(started.ok()) << started.status().message();
  Nginx& nginx = **started;
  TempDir dir;
  const std::string mnt = dir.File("ns");
  std::filesystem::create_directories(mnt);
  ASSERT_EQ(mkfifo(dir.File("urls").c_str(), 0600), 0);
  StartSensor("l7net_enabled: [httpflow, httpflow-tls]\n");
  ASSERT_TRUE(WaitFor([&] { return !TlsCoverage(stack_.sensor_http_port).empty(); }, 10s));

  const std::string script =
      "mount -t tmpfs nstls " + mnt + " && cp /usr/lib/x86_64-linux-gnu/libssl.so.3 " +
      "/usr/lib/x86_64-linux-gnu/libcrypto.so.3 " + mnt + "/ && LD_LIBRARY_PATH=" + mnt + " exec " +
      Which("curl") + " -s -k -K " + dir.File("urls");
  Subprocess curl({Which("unshare"), "-m", "--propagation", "private", "/bin/sh", "-c", script},
                  dir.File("curl.log"));
  const std::string copy = mnt + "/libssl.so.3";
  const bool covered = WaitFor(
      [&] {
        return TlsCoverage(stack_.sensor_http_port).find(copy + " (1 process)") !=
               std::string::npos;
      },
      10s);
  const bool visible = std::filesystem::exists(copy);  // from here: it must not be
  {
    std::ofstream urls(dir.File("urls"));  // written either way, so curl ends
    for (const char* p : {"/1k.bin", "/text.txt", "/missing"}) {
      urls << "url = \"" << nginx.Url(p) << "\"\noutput = \"/dev/null\"\n";
    }
  }
  ASSERT_EQ(curl.Wait(20s), 0) << curl.Log();
  ASSERT_TRUE(covered) << TlsCoverage(stack_.sensor_http_port) << stack_.sensor->Log();
  EXPECT_FALSE(visible);

  std::vector<AccessLogEntry> log = nginx.WaitForAccessLog(3, 10s);
  ASSERT_EQ(log.size(), 3u);
  std::map<RequestKey, HttpTotals> access;
  for (const AccessLogEntry& e : log) {
    auto [method, path] = MethodPath(e.request);
    HttpTotals& h = access[{method, path, e.status}];
    ++h.count;
    h.bytes_written += e.bytes_sent;
  }
  const std::string port = std::to_string(nginx.port());
  std::map<RequestKey, HttpTotals> client;
  ASSERT_TRUE(WaitFor(
      [&] {
        client = Http("outgoing", "curl", "dst_port", port);
        return Count(client) >= 3;
      },
      20s))
      << stack_.sensor->Log() << Dump("httpflow");
  EXPECT_EQ(client.size(), access.size());
  for (const auto& [key, a] : access) {
    SCOPED_TRACE(std::get<1>(key));
    EXPECT_EQ(client[key].count, a.count);
    EXPECT_EQ(client[key].bytes_read, a.bytes_written);
  }
}

struct DnsTotals {
  uint64_t count = 0, latency_max = 0;
};

TEST_F(L7, DnsOverUdpAndTcpNxdomainTimeoutsAndDomains) {
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  const Endpoint& server = (*pair)->a();
  const Endpoint& client = (*pair)->b();
  const int x = (*pair)->subnet();
  // A second address on the server side where a socket takes queries and never answers.
  ASSERT_TRUE(AddAddresses(*server.ns, server.veth, x, 3).ok());
  const std::string silent = SubnetIpv4(x, 3);
  int silent_fd = -1;
  ASSERT_TRUE(server.ns
                  ->RunIn([&] {
                    silent_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                    sockaddr_in a{};
                    a.sin_family = AF_INET;
                    a.sin_port = htons(53);
                    inet_pton(AF_INET, silent.c_str(), &a.sin_addr);
                    if (bind(silent_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
                      close(silent_fd);
                      silent_fd = -1;
                    }
                  })
                  .ok());
  ASSERT_GE(silent_fd, 0);
  Result<std::unique_ptr<Nginx>> nginx =
      Nginx::Start({.ns = server.ns, .listen = {server.ipv4}, .files = {{"/1k.bin", 1024}}});
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  Result<std::unique_ptr<Dnsmasq>> dns = Dnsmasq::Start({.ns = server.ns,
                                                         .listen = server.ipv4,
                                                         .addresses = {{"web.test", server.ipv4}},
                                                         .nxdomains = {"nx.test"}});
  ASSERT_TRUE(dns.ok()) << dns.status().message();
  StartSensor("dns_timeout: 1s\n");

  auto dig = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {Which("dig"), "+tries=1", "+time=2"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(client.ns->Exec(argv));
  };
  CommandResult ok = dig({"@" + server.ipv4, "web.test", "A"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  ASSERT_NE(ok.out.find("status: NOERROR"), std::string::npos) << ok.out;
  CommandResult nx = dig({"@" + server.ipv4, "host.nx.test", "A"});
  ASSERT_NE(nx.out.find("status: NXDOMAIN"), std::string::npos) << nx.out;
  CommandResult tcp = dig({"+tcp", "@" + server.ipv4, "web.test", "A"});
  ASSERT_NE(tcp.out.find("status: NOERROR"), std::string::npos) << tcp.out;
  CommandResult lost = dig({"+time=1", "@" + silent, "web.test", "A"});
  EXPECT_NE(lost.exit_code, 0);  // dig gives up: no servers could be reached
  EXPECT_EQ((*dns)->Queries(), 3) << (*dns)->Log();

  // A name the resolver of the client namespace (ip netns exec mounts /etc/netns/NAME/*)
  // resolves through dnsmasq: its connection's records carry it as dst_domain.
  const std::string etc = "/etc/netns/" + client.ns->name();
  std::filesystem::create_directories(etc);
  struct RemoveEtc {
    std::string dir;
    ~RemoveEtc() { std::filesystem::remove_all(dir); }
  } remove_etc{etc};
  std::ofstream(etc + "/resolv.conf") << "nameserver " << server.ipv4 << "\n";
  const std::string url = "http://web.test:" + std::to_string((*nginx)->port()) + "/1k.bin";
  Result<CurlResult> r = Curl(client.ns, url);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->http_code, 200);

  // dig's records (outgoing) and dnsmasq's (incoming), per transport and rcode.
  std::map<std::tuple<std::string, std::string, std::string, int>, DnsTotals> seen;
  auto collect = [&] {
    seen.clear();
    for (const json& rec : stack_.Records("dnsflow")) {
      const json& t = rec["tags"];
      const json& f = rec["fields"];
      const std::string name = t.value("process_name", "");
      if (name != "dig" && name != "dnsmasq" && name != "curl") continue;
      DnsTotals& d = seen[{t.value("process_name", ""), t.value("direction", ""),
                           t.value("transport", ""), f.value("rcode", 0)}];
      d.count += f.value("count", 0);
      d.latency_max = std::max<uint64_t>(d.latency_max, f.value("latency_max", 0));
      EXPECT_LE(f.value("latency", 0), f.value("latency_max", 0));
    }
  };
  const auto dig_timeout =
      std::make_tuple(std::string("dig"), std::string("outgoing"), std::string("udp"), -1);
  bool done = WaitFor(
      [&] {
        collect();
        return seen[dig_timeout].count >= 1;
      },
      20s);
  ASSERT_TRUE(done) << stack_.sensor->Log() << Dump("dnsflow");
  std::this_thread::sleep_for(1500ms);  // one more interval: nothing else on its way
  collect();
  using K = std::tuple<std::string, std::string, std::string, int>;
  EXPECT_EQ((seen[K{"dig", "outgoing", "udp", 0}].count), 1u) << Dump("dnsflow");
  EXPECT_EQ((seen[K{"dig", "outgoing", "udp", 3}].count), 1u);
  EXPECT_EQ((seen[K{"dig", "outgoing", "tcp", 0}].count), 1u);
  EXPECT_EQ((seen[K{"dig", "outgoing", "udp", -1}].count), 1u);
  // curl's resolver (glibc: A and AAAA in one sendmmsg); dnsmasq refuses AAAA for a name it
  // only has an IPv4 address for, having no upstream.
  EXPECT_EQ((seen[K{"curl", "outgoing", "udp", 0}].count), 1u);
  EXPECT_EQ((seen[K{"curl", "outgoing", "udp", 5}].count), 1u);
  // dnsmasq saw both clients: every query it logged, with its answer.
  EXPECT_EQ((*dns)->Queries(), 5) << (*dns)->Log();
  EXPECT_EQ((seen[K{"dnsmasq", "incoming", "udp", 0}].count), 2u);
  EXPECT_EQ((seen[K{"dnsmasq", "incoming", "udp", 3}].count), 1u);
  EXPECT_EQ((seen[K{"dnsmasq", "incoming", "udp", 5}].count), 1u);
  EXPECT_EQ((seen[K{"dnsmasq", "incoming", "tcp", 0}].count), 1u);
  EXPECT_GT((seen[K{"dig", "outgoing", "udp", 0}].latency_max), 0u);

  // curl's connection to web.test: netflow and httpflow name the server.
  const std::string port = std::to_string((*nginx)->port());
  bool named = WaitFor(
      [&] {
        for (const json& rec : stack_.Records("netflow")) {
          const json& t = rec["tags"];
          if (t.value("process_name", "") == "curl" && t.value("dst_ip", "") == server.ipv4 &&
              t.value("dst_port", "") == port) {
            return t.value("dst_domain", "") == "web.test";
          }
        }
        return false;
      },
      10s);
  EXPECT_TRUE(named) << Dump("netflow");
  bool http_named = false;
  for (const json& rec : stack_.Records("httpflow")) {
    const json& t = rec["tags"];
    if (t.value("process_name", "") == "curl" && t.value("dst_port", "") == port) {
      http_named = t.value("dst_domain", "") == "web.test";
    }
  }
  EXPECT_TRUE(http_named) << Dump("httpflow");
  close(silent_fd);
}

}  // namespace
}  // namespace nodescope::test
