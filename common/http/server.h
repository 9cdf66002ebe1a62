// A small HTTP/1.1 server for self endpoints (/metrics, /healthz, /readyz, /debug/status):
// GET handlers by exact path, 404 for other paths, 405 for other methods, keep-alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace prometheus {
class Registry;
}

namespace nodescope::http {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Called on a server thread for each GET (or HEAD) of its path; must be thread-safe.
using Handler = std::function<HttpResponse()>;
using Handlers = std::map<std::string, Handler>;

struct ServerOptions {
  int threads = 2;
  // Connections beyond this are closed as soon as they are accepted.
  int max_connections = 32;
  // A keep-alive connection idle (or a request not complete) this long is closed.
  std::chrono::milliseconds idle_timeout{30000};
};

class HttpServer {
 public:
  // Listens on "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces); port 0 picks a free port.
  // Error: "http: cannot listen on 127.0.0.1:6061: Address already in use".
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& address, Handlers handlers,
                                                   ServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Closes the listener and every connection and joins the server threads. Idempotent.
  void Stop();
  uint16_t port() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The registry in the Prometheus text exposition format (version 0.0.4).
std::string SerializeMetrics(prometheus::Registry& registry);
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace nodescope::http
