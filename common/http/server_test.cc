#include "common/http/server.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace nodescope::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// A blocking Beast client holding one connection, so keep-alive can be observed.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  bhttp::response<bhttp::string_body> Send(bhttp::verb method, const std::string& target,
                                           bool keep_alive = true) {
    bhttp::request<bhttp::string_body> req(method, target, 11);
    req.set(bhttp::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    bhttp::write(socket_, req);
    bhttp::response<bhttp::string_body> res;
    if (method == bhttp::verb::head) {
      bhttp::response_parser<bhttp::string_body> parser;
      parser.skip(true);
      bhttp::read(socket_, buffer_, parser);
      return parser.release();
    }
    bhttp::read(socket_, buffer_, res);
    return res;
  }
  // True when the server closed the connection (a read sees end of stream).
  bool ServerClosed() {
    char c;
    beast::error_code ec;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

Handlers TestHandlers(std::atomic<int>* calls) {
  return {
      {"/hello",
       [calls] {
         calls->fetch_add(1);
         return HttpResponse{200, "text/plain", "hi\n"};
       }},
      {"/json",
       [] {
         return HttpResponse{503, "application/json", "{\"ready\":false}"};
       }},
      {"/throws", []() -> HttpResponse { throw std::runtime_error("boom"); }},
  };
}

TEST(HttpServer, ServesHandlersAndErrors) {
  std::atomic<int> calls{0};
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls));
  ASSERT_TRUE(server.ok()) << server.status().message();
  ASSERT_NE((*server)->port(), 0);
  Client client((*server)->port());

  auto res = client.Send(bhttp::verb::get, "/hello");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "hi\n");
  EXPECT_EQ(res[bhttp::field::content_type], "text/plain");
  EXPECT_EQ(calls.load(), 1);

  res = client.Send(bhttp::verb::get, "/hello?x=1");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(calls.load(), 2);

  res = client.Send(bhttp::verb::get, "/json");
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res.body(), "{\"ready\":false}");
  EXPECT_EQ(res[bhttp::field::content_type], "application/json");

  res = client.Send(bhttp::verb::get, "/missing");
  EXPECT_EQ(res.result_int(), 404);

  res = client.Send(bhttp::verb::post, "/hello");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[bhttp::field::allow], "GET, HEAD");
  EXPECT_EQ(calls.load(), 2);

  res = client.Send(bhttp::verb::head, "/hello");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[bhttp::field::content_length], "3");
  EXPECT_TRUE(res.body().empty());

  res = client.Send(bhttp::verb::get, "/throws");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(res.body(), "internal error: boom");
}

TEST(HttpServer, KeepAliveAndClose) {
  std::atomic<int> calls{0};
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls));
  ASSERT_TRUE(server.ok()) << server.status().message();
  Client client((*server)->port());
  for (int i = 0; i < 5; ++i) {
    auto res = client.Send(bhttp::verb::get, "/hello");
    ASSERT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.keep_alive());
  }
  auto res = client.Send(bhttp::verb::get, "/hello", /*keep_alive=*/false);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(client.ServerClosed());
  EXPECT_EQ(calls.load(), 6);
}

TEST(HttpServer, ConcurrentClients) {
  std::atomic<int> calls{0};
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls));
  ASSERT_TRUE(server.ok()) << server.status().message();
  const uint16_t port = (*server)->port();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      Client client(port);
      for (int i = 0; i < 50; ++i) {
        if (client.Send(bhttp::verb::get, "/hello").body() == "hi\n") ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_EQ(calls.load(), 400);
}

TEST(HttpServer, ConnectionsBeyondTheLimitAreClosed) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_connections = 1;
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls), options);
  ASSERT_TRUE(server.ok()) << server.status().message();
  Client first((*server)->port());
  EXPECT_EQ(first.Send(bhttp::verb::get, "/hello").result_int(), 200);
  Client second((*server)->port());
  EXPECT_TRUE(second.ServerClosed());
  EXPECT_EQ(first.Send(bhttp::verb::get, "/hello").result_int(), 200);
}

TEST(HttpServer, IdleConnectionTimesOut) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.idle_timeout = std::chrono::milliseconds(200);
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls), options);
  ASSERT_TRUE(server.ok()) << server.status().message();
  Client client((*server)->port());
  EXPECT_EQ(client.Send(bhttp::verb::get, "/hello").result_int(), 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ServerClosed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(HttpServer, BindConflictIsOneClearLine) {
  std::atomic<int> calls{0};
  auto first = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls));
  ASSERT_TRUE(first.ok()) << first.status().message();
  const std::string address = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HttpServer::Start(address, TestHandlers(&calls));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            "http: cannot listen on " + address + ": Address already in use");
}

TEST(HttpServer, BadAddresses) {
  auto no_port = HttpServer::Start("127.0.0.1", {});
  ASSERT_FALSE(no_port.ok());
  EXPECT_EQ(no_port.status().message(), "http: cannot listen on 127.0.0.1: expected HOST:PORT");
  auto big_port = HttpServer::Start("127.0.0.1:70000", {});
  ASSERT_FALSE(big_port.ok());
  EXPECT_EQ(big_port.status().message(),
            "http: cannot listen on 127.0.0.1:70000: port must be a number 0-65535");
  auto not_local = HttpServer::Start("192.0.2.1:0", {});
  ASSERT_FALSE(not_local.ok());
  EXPECT_EQ(not_local.status().message(),
            "http: cannot listen on 192.0.2.1:0: Cannot assign requested address");
}

TEST(HttpServer, AllInterfacesAndLocalhost) {
  std::atomic<int> calls{0};
  auto any = HttpServer::Start(":0", TestHandlers(&calls));
  ASSERT_TRUE(any.ok()) << any.status().message();
  Client client((*any)->port());  // connects over 127.0.0.1
  EXPECT_EQ(client.Send(bhttp::verb::get, "/hello").result_int(), 200);

  auto named = HttpServer::Start("localhost:0", TestHandlers(&calls));
  ASSERT_TRUE(named.ok()) << named.status().message();
}

TEST(HttpServer, StopFreesThePortAndClosesConnections) {
  std::atomic<int> calls{0};
  auto server = HttpServer::Start("127.0.0.1:0", TestHandlers(&calls));
  ASSERT_TRUE(server.ok()) << server.status().message();
  const uint16_t port = (*server)->port();
  Client client(port);
  EXPECT_EQ(client.Send(bhttp::verb::get, "/hello").result_int(), 200);
  (*server)->Stop();
  EXPECT_TRUE(client.ServerClosed());
  (*server)->Stop();  // idempotent
  auto again = HttpServer::Start("127.0.0.1:" + std::to_string(port), TestHandlers(&calls));
  EXPECT_TRUE(again.ok()) << again.status().message();
}

TEST(SerializeMetrics, TextFormat) {
  prometheus::Registry registry;
  auto& family = prometheus::BuildCounter()
                     .Name("nodescope_test_total")
                     .Help("A test counter.")
                     .Register(registry);
  family.Add({{"source", "process"}}).Increment(3);
  std::string text = SerializeMetrics(registry);
  EXPECT_NE(text.find("# HELP nodescope_test_total A test counter.\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE nodescope_test_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nodescope_test_total{source=\"process\"} 3\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace nodescope::http
