#include "common/http/server.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>
#include <vector>

namespace nodescope::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  Impl(Handlers h, ServerOptions o) : handlers(std::move(h)), options(o) {}

  // Declared before the io_context: destroying the io_context destroys pending handlers, which
  // release sessions, whose destructors still touch `connections`.
  Handlers handlers;
  ServerOptions options;
  std::atomic<int> connections{0};
  // Pointers so that Stop() can destroy them: destroying the io_context releases every session
  // (closing its socket) through the handlers it still holds.
  std::unique_ptr<asio::io_context> ioc = std::make_unique<asio::io_context>();
  std::unique_ptr<tcp::acceptor> acceptor = std::make_unique<tcp::acceptor>(*ioc);
  std::vector<std::thread> threads;
  std::once_flag stop_once;
  uint16_t port = 0;

  void Accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { server_->connections.fetch_sub(1, std::memory_order_relaxed); }

  void Read() {
    request_ = {};
    stream_.expires_after(server_->options.idle_timeout);
    bhttp::async_read(
        stream_, buffer_, request_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {
      // End of stream, timeout or a malformed request: nothing useful to answer.
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    response_ = Handle();
    stream_.expires_after(server_->options.idle_timeout);
    bhttp::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    if (ec) return;
    if (!response_.keep_alive()) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    Read();
  }

  bhttp::response<bhttp::string_body> Handle() {
    bhttp::response<bhttp::string_body> res;
    res.version(request_.version());
    res.keep_alive(request_.keep_alive());
    res.set(bhttp::field::server, "nodescope");
    HttpResponse out;
    const bool head = request_.method() == bhttp::verb::head;
    if (request_.method() != bhttp::verb::get && !head) {
      out = {405, "text/plain; charset=utf-8", "method not allowed\n"};
      res.set(bhttp::field::allow, "GET, HEAD");
    } else {
      std::string_view target(request_.target().data(), request_.target().size());
      std::string path(target.substr(0, target.find('?')));
      auto it = server_->handlers.find(path);
      if (it == server_->handlers.end()) {
        out = {404, "text/plain; charset=utf-8", "not found\n"};
      } else {
        try {
          out = it->second();
        } catch (const std::exception& e) {
          out = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what()};
        }
      }
    }
    res.result(static_cast<unsigned>(out.status));
    res.set(bhttp::field::content_type, out.content_type);
    res.body() = std::move(out.body);
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays that of the GET body
    return res;
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
  bhttp::response<bhttp::string_body> response_;
};

struct ParsedAddress {
  std::string host;
  std::string port;
};

Result<ParsedAddress> SplitAddress(const std::string& address) {
  ParsedAddress out;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find("]:");
    if (close == std::string::npos) return Status::Error("expected [V6]:PORT");
    out.host = address.substr(1, close - 1);
    out.port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return Status::Error("expected HOST:PORT");
    out.host = address.substr(0, colon);
    out.port = address.substr(colon + 1);
  }
  if (out.port.empty() || out.port.size() > 5 ||
      out.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(out.port) > 65535) {
    return Status::Error("port must be a number 0-65535");
  }
  return out;
}

Result<tcp::endpoint> Resolve(const ParsedAddress& address) {
  auto port = static_cast<uint16_t>(std::stoi(address.port));
  if (address.host.empty()) return tcp::endpoint(asio::ip::address_v6::any(), port);
  beast::error_code ec;
  asio::ip::address ip = asio::ip::make_address(address.host, ec);
  if (!ec) return tcp::endpoint(ip, port);
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(address.host, address.port, ec);
  if (ec || results.empty()) {
    return Status::Error("cannot resolve '" + address.host + "': " + ec.message());
  }
  return results.begin()->endpoint();
}

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      if (connections.fetch_add(1, std::memory_order_relaxed) >= options.max_connections) {
        connections.fetch_sub(1, std::memory_order_relaxed);
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Session>(std::move(socket), this)->Read();
      }
    }
    // Transient accept errors (EMFILE, ECONNABORTED) must not stop the listener.
    Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, Handlers handlers,
                                                      ServerOptions options) {
  const std::string prefix = "http: cannot listen on " + address + ": ";
  auto parsed = SplitAddress(address);
  if (!parsed.ok()) return parsed.status().Prefixed(prefix);
  auto endpoint = Resolve(*parsed);
  if (!endpoint.ok()) return endpoint.status().Prefixed(prefix);

  auto impl = std::make_unique<Impl>(std::move(handlers), options);
  beast::error_code ec;
  tcp::acceptor& acceptor = *impl->acceptor;
  acceptor.open(endpoint->protocol(), ec);
  if (ec && parsed->host.empty()) {
    // No IPv6 on this machine: all interfaces means all IPv4 interfaces.
    *endpoint = tcp::endpoint(asio::ip::address_v4::any(), endpoint->port());
    ec.clear();
    acceptor.open(endpoint->protocol(), ec);
  }
  if (ec) return Status::Error(prefix + ec.message());
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return Status::Error(prefix + ec.message());
  if (parsed->host.empty() && endpoint->address().is_v6()) {
    acceptor.set_option(asio::ip::v6_only(false), ec);
    if (ec) return Status::Error(prefix + ec.message());
  }
  acceptor.bind(*endpoint, ec);
  if (ec) return Status::Error(prefix + ec.message());
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Error(prefix + ec.message());
  impl->port = acceptor.local_endpoint(ec).port();
  if (ec) return Status::Error(prefix + ec.message());

  impl->Accept();
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([ioc = impl->ioc.get()] { ioc->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  std::call_once(impl_->stop_once, [this] {
    impl_->ioc->stop();
    for (std::thread& t : impl_->threads) t.join();
    impl_->threads.clear();
    impl_->acceptor.reset();
    impl_->ioc.reset();
  });
}

uint16_t HttpServer::port() const { return impl_->port; }

std::string SerializeMetrics(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace nodescope::http
