// Debian's nginx as a real peer for traffic tests: its own prefix, config, files of exact sizes
// and an access log in a tab-separated format this file parses, so a test can hold a probe's
// byte counts against what nginx itself says it sent and received. And curl, the client side.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"

namespace nodescope::test {

struct NginxOptions {
  const Netns* ns = nullptr;  // where nginx runs; nullptr: the root namespace
  // IPv4 or IPv6 literals (no brackets) to listen on, all on the same port.
  std::vector<std::string> listen = {"127.0.0.1"};
  int port = 0;  // 0: a free one (FreePort)
  int worker_processes = 1;
  // URL path -> size in bytes of a file nginx serves there, e.g. {"/1m.bin", 1 << 20}.
  std::map<std::string, uint64_t> files;
  // URL path -> status of a `return` location (301 and 302 redirect to "/").
  std::map<std::string, int> returns;
  int keepalive_timeout_s = 65;  // 0 closes every connection after one response
  int keepalive_requests = 1000;
  bool sendfile = true;  // off: nginx copies through write(), as for generated content
  // URL path prefix -> upstream "http://host:port" nginx proxies it to (HTTP/1.1, keep-alive
  // off), e.g. a slow backend whose latency a test knows.
  std::map<std::string, std::string> proxies;
  // gzip text/plain responses (chunked: the length is unknown when the headers go out).
  bool gzip = false;
  // HTTPS with a self-signed certificate made at start (openssl); Url() then says https.
  bool tls = false;
};

// One access-log line. Everything nginx knows about the request, in its own terms:
// bytes_sent = status line + headers + body as written to the socket; body_bytes_sent = body
// only; request_length = request line + headers + body as read from the socket.
struct AccessLogEntry {
  std::string remote_addr;
  int remote_port = 0;
  std::string server_addr;
  int server_port = 0;
  uint64_t connection = 0;           // nginx's connection serial number
  uint64_t connection_requests = 0;  // 1 for the first request on a connection
  int status = 0;
  uint64_t bytes_sent = 0;
  uint64_t body_bytes_sent = 0;
  uint64_t request_length = 0;
  double request_time_s = 0;  // first byte read to last byte written, ms resolution
  double msec = 0;            // unix time of the log write, s with ms resolution
  pid_t pid = 0;              // the worker that served the request
  std::string request;        // "GET /1k.bin HTTP/1.1"
};

// Parses one line of the format Nginx writes; nullopt for anything else.
std::optional<AccessLogEntry> ParseAccessLogLine(const std::string& line);

class Nginx {
 public:
  // Writes the config and files, starts nginx in the foreground (master + workers) and waits
  // until every listen address accepts TCP connections.
  static Result<std::unique_ptr<Nginx>> Start(NginxOptions options);
  // Stops nginx (SIGQUIT, then SIGKILL to master and workers) and removes its directory.
  ~Nginx();
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  int port() const { return options_.port; }
  const NginxOptions& options() const { return options_; }
  // "http://addr:port/path", brackets added for IPv6; addr defaults to the first listen address.
  std::string Url(const std::string& path, const std::string& addr = "") const;
  pid_t master_pid() const { return process_->pid(); }
  std::vector<pid_t> worker_pids() const;
  // The file on disk behind a `files` path.
  std::string FilePath(const std::string& url_path) const;

  std::vector<AccessLogEntry> AccessLog() const;
  // Waits until the access log holds at least `n` entries; returns them (fewer on timeout).
  std::vector<AccessLogEntry> WaitForAccessLog(size_t n, std::chrono::milliseconds timeout) const;
  std::string ErrorLog() const;

 private:
  Nginx() = default;
  NginxOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Subprocess> process_;
};

// What curl says about one transfer (its -w variables).
struct CurlResult {
  int http_code = 0;
  uint64_t size_download = 0;  // body bytes received
  uint64_t size_header = 0;    // response header bytes received
  uint64_t size_request = 0;   // request bytes sent
  std::string local_ip;
  int local_port = 0;
  int num_connects = 0;
  std::string stderr_text;
};

// Runs curl (in `ns`, nullptr = root) for one URL, body discarded. Fails when curl does, not on
// an HTTP error status. `extra` goes before the URL (e.g. {"--max-time", "5"}).
Result<CurlResult> Curl(const Netns* ns, const std::string& url,
                        const std::vector<std::string>& extra = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Checks that a TCP connect to addr:port succeeds from inside `ns` (nullptr = root).
bool CanConnect(const Netns* ns, const std::string& addr, int port);

}  // namespace nodescope::test
