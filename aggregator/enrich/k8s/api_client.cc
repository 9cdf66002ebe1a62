#include "aggregator/enrich/k8s/api_client.h"

#include <sys/stat.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

namespace nodescope::aggregator::enrich::k8s {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kRequestTimeout = std::chrono::seconds(60);
// A list page of 500 pods is a few MiB; this bounds what a broken server can make us hold.
constexpr uint64_t kMaxBody = 256ull << 20;

bool IsAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

std::string TokenSource::Get(std::string* error) {
  std::lock_guard lock(mu_);
  if (file_.empty()) return token_;
  struct stat st {};
  if (stat(file_.c_str(), &st) != 0) {
    *error = "bearer_token " + file_ + ": " + std::strerror(errno);
    return token_;
  }
  const int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (mtime != mtime_ns_) {
    std::ifstream in(file_);
    if (!in) {
      *error = "bearer_token " + file_ + ": cannot read it";
      return token_;
    }
    std::stringstream text;
    text << in.rdbuf();
    token_ = Trimmed(text.str());
    mtime_ns_ = mtime;
  }
  return token_;
}

struct ApiClient::Impl {
  Impl(const ApiConfig& c, std::shared_ptr<TokenSource> t)
      : config(c), token(std::move(t)), ctx(ssl::context::tls_client) {}

  ApiConfig config;
  std::shared_ptr<TokenSource> token;
  ssl::context ctx;
  asio::io_context ioc;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  std::atomic<bool> aborted{false};

  // Runs one asynchronous operation to completion on this thread; Abort() closes the socket
  // from inside the same io_context, which is what makes it safe from another thread.
  template <typename Start>
  boost::system::error_code Run(Start start) {
    // Abort() sets the flag before it posts the close: an operation started after this check
    // is closed by the posted handler, one not started yet never starts.
    if (aborted) return asio::error::operation_aborted;
    boost::system::error_code result = asio::error::would_block;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  std::string Where() const { return "kubernetes API " + config.host + ":" + config.port; }

  Status Open() {
    if (aborted) return Status::Error(Where() + ": stopped");
    stream.reset();
    buffer.clear();
    stream.emplace(ioc, ctx);
    if (!IsAddress(config.host)) {
      SSL_set_tlsext_host_name(stream->native_handle(), config.host.c_str());
    }
    if (!config.insecure) stream->set_verify_callback(ssl::host_name_verification(config.host));

    tcp::resolver resolver(ioc);
    tcp::resolver::results_type endpoints;
    auto ec = Run([&](auto handler) {
      resolver.async_resolve(config.host, config.port,
                             [&endpoints, handler](boost::system::error_code e,
                                                   tcp::resolver::results_type r) mutable {
                               endpoints = std::move(r);
                               handler(e);
                             });
    });
    if (ec) return Status::Error(Where() + ": cannot resolve: " + ec.message());
    beast::get_lowest_layer(*stream).expires_after(kConnectTimeout);
    ec = Run(
        [&](auto handler) { beast::get_lowest_layer(*stream).async_connect(endpoints, handler); });
    if (ec) return Status::Error(Where() + ": cannot connect: " + ec.message());
    ec = Run([&](auto handler) { stream->async_handshake(ssl::stream_base::client, handler); });
    if (ec) return Status::Error(Where() + ": TLS handshake: " + ec.message());
    return Status::Ok();
  }

  Status Send(const std::string& target) {
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, config.host);
    request.set(http::field::user_agent, "nodescope-aggregator/" NODESCOPE_VERSION);
    request.set(http::field::accept, "application/json");
    std::string token_error;
    std::string bearer = token->Get(&token_error);
    if (!token_error.empty()) return Status::Error(token_error);
    if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
    beast::get_lowest_layer(*stream).expires_after(kRequestTimeout);
    auto ec = Run([&](auto handler) { http::async_write(*stream, request, handler); });
    if (ec) return Status::Error(Where() + ": sending GET " + target + ": " + ec.message());
    return Status::Ok();
  }

  // A fresh connection with the GET sent; closed again when either fails.
  Status Request(const std::string& target) {
    Status s = Open();
    if (s.ok()) s = Send(target);
    if (!s.ok()) Close();
    return s;
  }

  void Close() {
    if (!stream) return;
    boost::system::error_code ignored;
    beast::get_lowest_layer(*stream).socket().close(ignored);
    stream.reset();
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::Create(const ApiConfig& config,
                                                     std::shared_ptr<TokenSource> token) {
  auto impl = std::make_unique<Impl>(config, std::move(token));
  boost::system::error_code ec;
  if (config.insecure) {
    impl->ctx.set_verify_mode(ssl::verify_none);
  } else {
    impl->ctx.set_verify_mode(ssl::verify_peer);
    if (config.ca_pem.empty()) {
      impl->ctx.set_default_verify_paths(ec);
    } else {
      impl->ctx.add_certificate_authority(asio::buffer(config.ca_pem), ec);
    }
    if (ec) return Status::Error(config.origin + ": CA certificate: " + ec.message());
  }
  if (!config.client_cert_pem.empty()) {
    impl->ctx.use_certificate_chain(asio::buffer(config.client_cert_pem), ec);
    if (ec) return Status::Error(config.origin + ": client certificate: " + ec.message());
    impl->ctx.use_private_key(asio::buffer(config.client_key_pem), ssl::context::pem, ec);
    if (ec) return Status::Error(config.origin + ": client key: " + ec.message());
  }
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(impl)));
}

void ApiClient::Abort() {
  impl_->aborted = true;
  asio::post(impl_->ioc, [impl = impl_.get()] {
    if (impl->stream) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(*impl->stream).socket().close(ignored);
    }
  });
}

Result<ApiClient::Response> ApiClient::Get(const std::string& target) {
  Impl& d = *impl_;
  if (Status s = d.Request(target); !s.ok()) return s;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto ec = d.Run([&](auto handler) { http::async_read(*d.stream, d.buffer, parser, handler); });
  d.Close();
  if (ec) return Status::Error(d.Where() + ": reading GET " + target + ": " + ec.message());
  return Response{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

Result<ApiClient::Response> ApiClient::Stream(
    const std::string& target, std::chrono::seconds idle,
    const std::function<bool(std::string_view line)>& on_line) {
  Impl& d = *impl_;
  if (Status s = d.Request(target); !s.ok()) return s;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());  // a watch never ends by itself
  auto ec =
      d.Run([&](auto handler) { http::async_read_header(*d.stream, d.buffer, parser, handler); });
  if (ec) {
    d.Close();
    return Status::Error(d.Where() + ": reading GET " + target + ": " + ec.message());
  }
  Response response{static_cast<int>(parser.get().result_int()), {}};
  std::string pending;
  char chunk[64 * 1024];
  bool wanted = true;
  while (!parser.is_done() && wanted) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    beast::get_lowest_layer(*d.stream).expires_after(idle);
    // read_some: a watch event must be handled when its chunk arrives, not when 64 KiB of
    // events have (async_read returns only with a full buffer or the end of the body).
    ec = d.Run([&](auto handler) { http::async_read_some(*d.stream, d.buffer, parser, handler); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      d.Close();
      return Status::Error(d.Where() + ": reading GET " + target + ": " + ec.message());
    }
    const size_t n = sizeof(chunk) - parser.get().body().size;
    if (response.status != 200) {
      if (response.body.size() < (1u << 20)) response.body.append(chunk, n);
      continue;
    }
    pending.append(chunk, n);
    size_t start = 0;
    for (size_t nl; wanted && (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (!line.empty()) wanted = on_line(line);
    }
    pending.erase(0, start);
  }
  if (wanted && response.status == 200 && !pending.empty()) on_line(pending);
  d.Close();
  return response;
}

}  // namespace nodescope::aggregator::enrich::k8s
