#include "aggregator/aggregator.h"

#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "aggregator/clock.h"

namespace nodescope::aggregator {

namespace {

constexpr auto kIdleTtl = std::chrono::hours(24);
constexpr auto kHousekeepingInterval = std::chrono::seconds(60);

// ":9970" (all interfaces, as config accepts it) in the form gRPC wants.
std::string GrpcAddress(const std::string& address) {
  if (!address.empty() && address[0] == ':') return "[::]" + address;
  return address;
}

// gRPC says only that it could not bind; a plain bind of the same address says why.
std::string BindError(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "not HOST:PORT";
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) return std::string("cannot resolve: ") + gai_strerror(rc);
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(result, &freeaddrinfo);
  int fd = socket(result->ai_family, result->ai_socktype | SOCK_CLOEXEC, result->ai_protocol);
  if (fd < 0) return std::strerror(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string why = "gRPC refused the address";
  if (bind(fd, result->ai_addr, result->ai_addrlen) != 0) why = std::strerror(errno);
  close(fd);
  return why;
}

// A label allow-list naming one label twice is a typo; the schema checks only the names.
Status CheckNoRepeats(const std::string& key, const std::vector<std::string>& labels) {
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (std::find(labels.begin(), it, *it) != it) {
      return Status::Error("config: key '" + key + "': \"" + *it + "\" is listed twice");
    }
  }
  return Status::Ok();
}

}  // namespace

void RegisterOptions(config::Schema* schema, Options* o) {
  schema->Address("listen", &o->listen,
                  "gRPC address for sensors (SensorService) and subscribers (ObserverService)");
  schema->Address("http_listen", &o->http_listen, "HTTP address of /metrics, /healthz, /readyz");
  schema->Int("history_size", &o->history_size, 1, 10'000'000,
              "records kept in memory per source for `observe --last` and since/until");
  schema->Int("subscriber_queue_size", &o->subscriber_queue_size, 1, 10'000'000,
              "records queued per subscriber before its records are dropped (and reported)");
  schema->Int("max_subscribers", &o->max_subscribers, 1, 100'000,
              "concurrent Subscribe streams; more are refused with RESOURCE_EXHAUSTED");
  schema->String("tls_cert", &o->tls.cert,
                 "PEM certificate (chain) of the gRPC listener; with tls_key, TLS is on for "
                 "sensors and subscribers (empty: plaintext)");
  schema->String("tls_key", &o->tls.key, "PEM private key of tls_cert");
  schema->String("tls_client_ca", &o->tls.client_ca,
                 "PEM CA bundle; when set, mutual TLS: every sensor and subscriber must present "
                 "a certificate it signed");
  schema->Dur("tls_reload_interval", &o->tls.reload_interval, std::chrono::seconds(1),
              std::chrono::hours(24),
              "how often the TLS files are re-read; new connections use a changed certificate, "
              "key or CA");
  schema->String("api_token", &o->api_token,
                 "file holding the bearer token ObserverService calls must carry "
                 "(authorization: Bearer <token>), re-read when it changes (empty: no token)");
  schema->Int("max_message_size", &o->max_message_size, 4096, 1 << 30,
              "largest gRPC message accepted, in bytes (a sensor batch, a request); a larger one "
              "is refused with RESOURCE_EXHAUSTED");
  schema->Int("max_requests_per_second", &o->max_requests_per_second, 0, 1'000'000,
              "ObserverService calls per second from one client address (token bucket, bursts "
              "of as many); more are refused with RESOURCE_EXHAUSTED (0: no limit)");
  schema->Dur("keepalive_time", &o->keepalive_time, std::chrono::seconds(10),
              std::chrono::hours(24),
              "a gRPC connection idle this long is pinged, so dead sensors and subscribers are "
              "noticed");
  schema->Dur("keepalive_timeout", &o->keepalive_timeout, std::chrono::seconds(1),
              std::chrono::minutes(10),
              "a keepalive ping unanswered this long closes the connection");
  schema->List("sinks", &o->sinks, {},
               "record sinks besides the history: jsonl:- (stdout), jsonl:/path/file.jsonl");
  schema->String("state_dir", &o->state_dir,
                 "directory keeping each sensor's last committed batch across restarts, so "
                 "resent batches are not duplicated (empty: in memory only)");
  schema->Choice("log_level", &o->log_level, {"trace", "debug", "info", "warn", "error"},
                 "log level (stderr)");
  schema->List("netflow_labels", &o->netflow_labels, kNetflowLabelNames,
               "labels of the nodescope_netflow_* metrics (server_port: the listening side's "
               "port)");
  schema->List("http_labels", &o->http_labels, kHttpLabelNames,
               "labels of nodescope_http_requests_total and "
               "nodescope_http_request_duration_seconds (path: templated, ids become {id})");
  schema->Int("maximum_dimensions", &o->maximum_dimensions, 1, 1'000'000,
              "netflow, http and dns metric label sets per host, each family on its own, and "
              "label sets per host of each kernel metric; label sets beyond it share one series "
              "whose labels but host are \"other\" (kernel: app and cgroup \"other\")");
  schema->Choice("kubernetes_enrich", &o->k8s.enrich, {"auto", "on", "off"},
                 "Kubernetes enrichment (src_k8s_*/dst_k8s_* tags): auto = on when running in a "
                 "cluster (KUBERNETES_SERVICE_HOST) or kubernetes_url/kubeconfig is set");
  schema->String("kubernetes_url", &o->k8s.url,
                 "API server, https://host:port (empty: in-cluster, or the kubeconfig's)");
  schema->String("kubeconfig", &o->k8s.kubeconfig,
                 "kubeconfig file for running outside the cluster (its current-context)");
  schema->String("bearer_token", &o->k8s.bearer_token,
                 "file holding the API token, re-read when it changes (service-account token)");
  schema->String("bearer_token_string", &o->k8s.bearer_token_string,
                 "the API token itself (instead of bearer_token)");
  schema->String("kubernetes_ca", &o->k8s.ca,
                 "CA bundle the API server's certificate is checked against (missing default: "
                 "the system's CAs)");
  schema->Dur("k8s_ip_history", &o->k8s_ip_history, std::chrono::seconds(10),
              std::chrono::hours(24),
              "how long a deleted pod still names the records observed while it held its IP, "
              "container or UID");
}

Status ValidateOptions(const Options& options) {
  for (const std::string& spec : options.sinks) {
    Status s = sinks::CheckSinkSpec(spec);
    if (!s.ok()) return s.Prefixed("config: key 'sinks': ");
  }
  Status s = CheckNoRepeats("netflow_labels", options.netflow_labels);
  if (s.ok()) s = CheckNoRepeats("http_labels", options.http_labels);
  if (s.ok()) s = enrich::k8s::ResolveApiConfig(options.k8s, getenv).status();
  if (s.ok()) s = tls::CheckServerOptions(options.tls).Prefixed("config: ");
  return s;
}

Status CheckFiles(const Options& options) {
  Status s = tls::CheckServerFiles(options.tls);
  if (s.ok() && !options.api_token.empty()) {
    s = api::BearerToken::ReadToken("api_token", options.api_token).status();
  }
  return s;
}

Result<std::unique_ptr<Aggregator>> Aggregator::Start(const Options& options) {
  std::unique_ptr<Aggregator> a(new Aggregator());

  auto api = enrich::k8s::ResolveApiConfig(options.k8s, getenv);
  if (!api.ok()) return api.status();
  if (api->has_value()) {
    a->k8s_state_ = std::make_unique<enrich::k8s::ClusterState>(options.k8s_ip_history.count());
    auto watcher = enrich::k8s::Watcher::Start(**api, a->k8s_state_.get(), a->metrics_.registry());
    if (!watcher.ok()) return watcher.status();
    a->k8s_watcher_ = std::move(watcher).value();
  } else {
    spdlog::info("kubernetes enrichment off: {}",
                 options.k8s.enrich == "off" ? "kubernetes_enrich is off"
                                             : "not in a cluster, no kubernetes_url or kubeconfig");
  }

  auto seqs = ingest::SeqStore::Open(options.state_dir, kIdleTtl);
  if (!seqs.ok()) return seqs.status();
  a->seqs_ = std::move(seqs).value();
  auto sinks = sinks::SinkSet::Open(options.sinks, &a->metrics_);
  if (!sinks.ok()) return sinks.status();
  a->sinks_ = std::move(sinks).value();

  api::HubOptions hub_options;
  hub_options.history_size = static_cast<size_t>(options.history_size);
  hub_options.subscriber_queue_size = static_cast<size_t>(options.subscriber_queue_size);
  a->hub_ = std::make_unique<api::Hub>(hub_options, &a->metrics_);
  a->netflow_metrics_ = std::make_unique<NetflowMetrics>(
      a->metrics_.registry(), options.netflow_labels, options.maximum_dimensions);
  a->http_metrics_ = std::make_unique<HttpMetrics>(a->metrics_.registry(), options.http_labels,
                                                   options.maximum_dimensions);
  a->dns_metrics_ =
      std::make_unique<DnsMetrics>(a->metrics_.registry(), options.maximum_dimensions);
  a->kernel_metrics_ = std::make_unique<KernelMetrics>(a->metrics_, options.maximum_dimensions,
                                                       a->k8s_state_.get());
  a->ingestor_ = std::make_unique<ingest::Ingestor>(
      a->seqs_.get(), a->hub_.get(), a->sinks_.get(), &a->sensors_, &a->metrics_,
      a->netflow_metrics_.get(), a->http_metrics_.get(), a->dns_metrics_.get(),
      a->kernel_metrics_.get(), a->k8s_state_.get());
  a->sensor_service_ = std::make_unique<ingest::SensorService>(
      a->ingestor_.get(), &a->sensors_, &a->metrics_, options.max_message_size);
  auto credentials = tls::MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  if (!options.api_token.empty()) {
    auto token = api::BearerToken::Open("api_token", options.api_token);
    if (!token.ok()) return token.status();
    a->api_token_ = std::move(token).value();
  }
  if (a->api_token_ && options.tls.cert.empty()) {
    spdlog::warn("api_token is set without tls_cert: subscribers send the token in clear");
  }
  a->rate_limiter_ = std::make_unique<api::RateLimiter>(options.max_requests_per_second);
  api::ObserverOptions observer_options;
  observer_options.max_subscribers = options.max_subscribers;
  observer_options.token = a->api_token_.get();
  observer_options.rate_limiter = a->rate_limiter_.get();
  observer_options.max_message_size = options.max_message_size;
  a->observer_service_ = std::make_unique<api::ObserverService>(observer_options, a->hub_.get(),
                                                                &a->sensors_, &a->metrics_);

  Aggregator* self = a.get();
  http::Handlers handlers = {
      {"/metrics",
       [self] {
         return http::HttpResponse{200, http::kMetricsContentType,
                                   http::SerializeMetrics(self->metrics_.registry())};
       }},
      {"/healthz",
       [] {
         return http::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
       }},
      {"/readyz",
       [self] {
         return self->ready_.load()
                    ? http::HttpResponse{200, "text/plain; charset=utf-8", "ready\n"}
                    : http::HttpResponse{503, "text/plain; charset=utf-8", "not ready\n"};
       }},
  };
  auto http_server = http::HttpServer::Start(options.http_listen, std::move(handlers));
  if (!http_server.ok()) return http_server.status();
  a->http_ = std::move(http_server).value();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(GrpcAddress(options.listen), *credentials, &port);
  // Without this a second aggregator on the same port would share it silently (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Both services read requests as bytes and refuse those over max_message_size themselves,
  // counted (aggregator/grpc_message.h); gRPC's own check would end the call before they see it.
  builder.SetMaxReceiveMessageSize(-1);
  const auto ms = [](config::Duration d) {
    return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options.keepalive_timeout));
  // gRPC's default (2) stops the server's pings on a connection that carries no data, which is
  // a quiet `observe --follow` or sensor: exactly the connections keepalive is for.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Sensors ping an idle stream every 20 s (their keepalive) to notice a dead aggregator; gRPC's
  // server default answers pings more often than every 5 minutes with GOAWAY "too_many_pings",
  // which would disconnect every quiet sensor.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.RegisterService(a->sensor_service_.get());
  builder.RegisterService(a->observer_service_.get());
  a->grpc_ = builder.BuildAndStart();
  if (a->grpc_ == nullptr || port == 0) {
    return Status::Error("grpc: cannot listen on " + options.listen + ": " +
                         BindError(options.listen));
  }
  a->grpc_port_ = static_cast<uint16_t>(port);
  a->ready_ = true;
  a->housekeeping_ = std::thread([self] { self->Housekeeping(); });
  spdlog::info("aggregator listening: grpc {} (port {}, {}{}), http {} (port {}), {} sink(s)",
               options.listen, a->grpc_port_,
               options.tls.cert.empty()        ? "plaintext"
               : options.tls.client_ca.empty() ? "TLS"
                                               : "mutual TLS",
               a->api_token_ ? ", bearer token required" : "", options.http_listen,
               a->http_->port(), a->sinks_->size());
  return a;
}

Aggregator::~Aggregator() { Shutdown(); }

void Aggregator::Housekeeping() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, kHousekeepingInterval, [this] { return stopping_; })) {
    lock.unlock();
    const int64_t now = NowUnixNano();
    size_t seqs = seqs_->ForgetIdle(now);
    if (k8s_state_) k8s_state_->Prune(now);
    size_t sensors = sensors_.ForgetIdle(
        now, std::chrono::duration_cast<std::chrono::nanoseconds>(kIdleTtl).count());
    if (seqs + sensors > 0) {
      spdlog::debug("forgot {} sequence state(s) and {} sensor(s) idle for 24h", seqs, sensors);
    }
    lock.lock();
  }
}

void Aggregator::Shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  ready_ = false;
  if (housekeeping_.joinable()) housekeeping_.join();
  if (k8s_watcher_) k8s_watcher_->Stop();
  if (hub_) hub_->Close();
  if (sensor_service_) sensor_service_->CancelAll();
  if (grpc_) {
    grpc_->Shutdown(std::chrono::system_clock::now() + grace);
    grpc_->Wait();
  }
  if (http_) http_->Stop();
}

void Aggregator::ReopenSinks() {
  if (sinks_) sinks_->Reopen();
}

}  // namespace nodescope::aggregator
