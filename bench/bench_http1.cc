// HTTP/1.x parser throughput on one core, in requests per second, for three synthetic client-side
// workloads fed in the syscall-sized chunks the probe would report, next to a baseline that only
// memchr-scans the same bytes for CRLF. Prints figures; never passes or fails.
//
//   bench_http1 [seconds per workload, default 1]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sensor/protocols/http1/parser.h"

namespace {

using nodescope::sensor::http1::Connection;
using nodescope::sensor::http1::Direction;
using nodescope::sensor::http1::Exchange;

constexpr size_t kWindow = 4096;               // a typical capture window
constexpr int kExchangesPerConnection = 1000;  // keep-alive connections are long-lived

struct Syscall {
  Direction direction;
  std::string bytes;
};

struct Workload {
  std::string name;
  std::vector<Syscall> calls;  // one connection
  int requests = 0;
};

std::string Request(int i) {
  return "GET /api/v1/users/" + std::to_string(10000 + i) +
         "/profile?fields=name,email HTTP/1.1\r\n"
         "Host: api.internal.example.com\r\n"
         "User-Agent: Go-http-client/1.1\r\n"
         "Accept: application/json\r\n"
         "Accept-Encoding: gzip\r\n\r\n";
}

std::string ResponseHead(std::string_view framing) {
  return "HTTP/1.1 200 OK\r\n"
         "Server: nginx/1.22.1\r\n"
         "Date: Mon, 30 Nov 2026 11:39:29 GMT\r\n"
         "Content-Type: application/json\r\n" +
         std::string(framing) +
         "Connection: keep-alive\r\n"
         "Cache-Control: no-store\r\n\r\n";
}

std::string JsonBody(size_t n) {
  std::string body = "{\"name\":\"user\",\"email\":\"user@example.com\",\"bio\":\"";
  body.resize(n - 2, 'x');
  return body + "\"}";
}

Workload KeepAlive() {
  Workload w{"keep-alive GET, 1 syscall per message", {}, 0};
  const std::string body = JsonBody(180);
  const std::string response =
      ResponseHead("Content-Length: " + std::to_string(body.size()) + "\r\n") + body;
  for (int i = 0; i < kExchangesPerConnection; ++i) {
    w.calls.push_back({Direction::kSent, Request(i)});
    w.calls.push_back({Direction::kReceived, response});
    ++w.requests;
  }
  return w;
}

Workload Pipelined() {
  Workload w{"pipelined GET, 16 per write, 4 KiB reads", {}, 0};
  const std::string body = JsonBody(180);
  const std::string response =
      ResponseHead("Content-Length: " + std::to_string(body.size()) + "\r\n") + body;
  for (int batch = 0; batch < kExchangesPerConnection / 16; ++batch) {
    std::string requests, responses;
    for (int i = 0; i < 16; ++i) {
      requests += Request(batch * 16 + i);
      responses += response;
      ++w.requests;
    }
    w.calls.push_back({Direction::kSent, requests});
    for (size_t off = 0; off < responses.size(); off += 4096) {
      w.calls.push_back({Direction::kReceived, responses.substr(off, 4096)});
    }
  }
  return w;
}

Workload Chunked() {
  Workload w{"chunked responses, head + 4 chunk writes + last", {}, 0};
  const std::string head = ResponseHead("Transfer-Encoding: chunked\r\n");
  const std::string chunk = "200\r\n" + std::string(512, 'c') + "\r\n";
  for (int i = 0; i < kExchangesPerConnection; ++i) {
    w.calls.push_back({Direction::kSent, Request(i)});
    w.calls.push_back({Direction::kReceived, head});
    for (int c = 0; c < 4; ++c) w.calls.push_back({Direction::kReceived, chunk});
    w.calls.push_back({Direction::kReceived, "0\r\n\r\n"});
    ++w.requests;
  }
  return w;
}

size_t Bytes(const Workload& w) {
  size_t n = 0;
  for (const Syscall& s : w.calls) n += s.bytes.size();
  return n;
}

// One pass over a connection; returns a checksum so nothing is optimized away.
uint64_t ParseOnce(const Workload& w) {
  Connection conn;
  uint64_t ts = 0;
  for (const Syscall& s : w.calls) {
    const size_t captured = std::min(s.bytes.size(), kWindow);
    conn.Feed(s.direction, std::span<const char>(s.bytes.data(), captured), s.bytes.size(), ++ts);
  }
  conn.Close(++ts);
  uint64_t sum = 0;
  for (const Exchange& e : conn.TakeExchanges()) sum += e.response_bytes + e.status_code;
  if (conn.failed()) {
    fmt::print(stderr, "{}: parser failed: {}\n", w.name, conn.failure());
    std::exit(1);
  }
  return sum;
}

uint64_t ScanOnce(const Workload& w) {
  uint64_t crlf = 0;
  for (const Syscall& s : w.calls) {
    const char* p = s.bytes.data();
    const char* end = p + std::min(s.bytes.size(), kWindow);
    while (p < end) {
      const void* nl = std::memchr(p, '\n', end - p);
      if (nl == nullptr) break;
      const char* q = static_cast<const char*>(nl);
      crlf += q > s.bytes.data() && q[-1] == '\r';
      p = q + 1;
    }
  }
  return crlf;
}

// Best of three runs of `seconds` each: the least disturbed by other work on a shared machine.
template <typename F>
double SecondsPerPass(F pass, double seconds, uint64_t& sink) {
  using Clock = std::chrono::steady_clock;
  double best = 1e30;
  for (int run = 0; run < 3; ++run) {
    const auto start = Clock::now();
    int passes = 0;
    double elapsed = 0;
    do {
      sink += pass();
      ++passes;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < seconds / 3);
    best = std::min(best, elapsed / passes);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  uint64_t sink = 0;
  fmt::print("http1 parser, one thread, capture window {} B, {} exchanges per connection\n",
             kWindow, kExchangesPerConnection);
  fmt::print("{:<48} {:>12} {:>10} {:>14} {:>8}\n", "workload", "requests/s", "MB/s", "memchr MB/s",
             "ratio");
  for (const Workload& w : {KeepAlive(), Pipelined(), Chunked()}) {
    const double bytes = static_cast<double>(Bytes(w));
    const double parse = SecondsPerPass([&] { return ParseOnce(w); }, seconds, sink);
    const double scan = SecondsPerPass([&] { return ScanOnce(w); }, seconds, sink);
    fmt::print("{:<48} {:>12.0f} {:>10.0f} {:>14.0f} {:>7.1f}x\n", w.name, w.requests / parse,
               bytes / parse / 1e6, bytes / scan / 1e6, parse / scan);
  }
  fmt::print(
      "ratio = parser time / memchr-scan time over the same captured bytes "
      "(checksum {})\n",
      sink % 10);
  return 0;
}
