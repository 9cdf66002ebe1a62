// GET requests to the Kubernetes API over HTTPS (Boost.Beast + OpenSSL), whole or streamed line
// by line (a watch). One client per thread; Abort() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "aggregator/enrich/k8s/api_config.h"
#include "common/status.h"

namespace nodescope::aggregator::enrich::k8s {

// The bearer token: fixed, or read from a file again whenever the file changes (kubelet
// rewrites projected service-account tokens before they expire). Shared by every client.
class TokenSource {
 public:
  TokenSource(std::string token, std::string file)
      : token_(std::move(token)), file_(std::move(file)) {}
  // The current token; "" when there is none. A file that cannot be read keeps the last token
  // and says why in `error`.
  std::string Get(std::string* error);

 private:
  std::mutex mu_;
  std::string token_;
  const std::string file_;
  int64_t mtime_ns_ = -1;
};

class ApiClient {
 public:
  struct Response {
    int status = 0;
    std::string body;  // for a stream: the body of a non-200 answer
  };

  // The TLS context is built here: a bad CA or client key is an error now, not at first use.
  static Result<std::unique_ptr<ApiClient>> Create(const ApiConfig& config,
                                                   std::shared_ptr<TokenSource> token);
  ~ApiClient();

  // `target`: path and query. Fails (one line) when the server cannot be reached, TLS fails or the
  // answer is not HTTP; any HTTP status is a Response.
  Result<Response> Get(const std::string& target);
  // Calls `on_line` with every line of a 200 body as it arrives, until the server ends it, the
  // callback returns false, no byte arrives for `idle`, or Abort().
  Result<Response> Stream(const std::string& target, std::chrono::seconds idle,
                          const std::function<bool(std::string_view line)>& on_line);
  // Ends the request in flight and every later one, from any thread.
  void Abort();

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodescope::aggregator::enrich::k8s
