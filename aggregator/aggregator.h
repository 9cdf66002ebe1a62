// The aggregator assembled: gRPC (ingest + observer), HTTP (/metrics, /healthz, /readyz), the
// hub, sinks and dedup state. main.cc and the tests start it the same way.
#pragma once

#include <grpcpp/server.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aggregator/api/bearer_token.h"
#include "aggregator/api/hub.h"
#include "aggregator/api/rate_limit.h"
#include "aggregator/enrich/k8s/api_config.h"
#include "aggregator/enrich/k8s/cluster_state.h"
#include "aggregator/enrich/k8s/watcher.h"
#include "aggregator/api/observer.h"
#include "aggregator/http_metrics.h"
#include "aggregator/ingest/dedup.h"
#include "aggregator/ingest/ingestor.h"
#include "aggregator/ingest/sensors.h"
#include "aggregator/ingest/service.h"
#include "aggregator/kernel_metrics.h"
#include "aggregator/metrics.h"
#include "aggregator/netflow_metrics.h"
#include "aggregator/sinks/sinks.h"
#include "common/config.h"
#include "common/http/server.h"
#include "common/tls/grpc_tls.h"

namespace nodescope::aggregator {

struct Options {
  std::string listen = "0.0.0.0:9970";
  std::string http_listen = "0.0.0.0:9971";
  int64_t history_size = 65536;
  int64_t subscriber_queue_size = 8192;
  int64_t max_subscribers = 64;
  // The gRPC listener: TLS (tls_cert, tls_key, tls_client_ca, tls_reload_interval), the observer
  // API's bearer token file, limits and keepalive.
  tls::ServerOptions tls;
  std::string api_token;
  int64_t max_message_size = 64 << 20;
  int64_t max_requests_per_second = 100;
  config::Duration keepalive_time = std::chrono::minutes(1);
  config::Duration keepalive_timeout = std::chrono::seconds(20);
  std::vector<std::string> sinks;
  std::string state_dir;
  std::string log_level = "info";
  std::vector<std::string> netflow_labels = kDefaultNetflowLabels;
  std::vector<std::string> http_labels = kDefaultHttpLabels;
  int64_t maximum_dimensions = kDefaultMaximumDimensions;
  enrich::k8s::K8sOptions k8s;
  config::Duration k8s_ip_history = std::chrono::minutes(10);
};

void RegisterOptions(config::Schema* schema, Options* options);
// What the schema cannot check alone (each sinks entry, a netflow or http label listed twice). One
// line naming the key.
Status ValidateOptions(const Options& options);
// Reads the files the options name (TLS certificates and key, api_token): done at start, not for
// --print-config, whose configuration may name files that exist only where it will run. One line
// naming the option and the file.
Status CheckFiles(const Options& options);

class Aggregator {
 public:
  // Listening or opening a sink/state_dir fails with one line, e.g.
  // "grpc: cannot listen on 0.0.0.0:9970: Address already in use".
  static Result<std::unique_ptr<Aggregator>> Start(const Options& options);
  ~Aggregator();

  // Stops accepting, ends subscriptions and sensor streams (waiting up to `grace` for them),
  // then the HTTP server. Sinks write each batch as it commits: nothing is left to flush.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  void ReopenSinks();

  uint16_t grpc_port() const { return grpc_port_; }
  // Null when Kubernetes enrichment is off.
  const enrich::k8s::Watcher* k8s_watcher() const { return k8s_watcher_.get(); }
  uint16_t http_port() const { return http_->port(); }
  Metrics& metrics() { return metrics_; }

 private:
  Aggregator() = default;
  void Housekeeping();

  Metrics metrics_;
  // Their families live in metrics_' registry.
  std::unique_ptr<NetflowMetrics> netflow_metrics_;
  std::unique_ptr<HttpMetrics> http_metrics_;
  std::unique_ptr<DnsMetrics> dns_metrics_;
  std::unique_ptr<KernelMetrics> kernel_metrics_;
  std::unique_ptr<enrich::k8s::ClusterState> k8s_state_;
  std::unique_ptr<enrich::k8s::Watcher> k8s_watcher_;
  std::unique_ptr<ingest::SeqStore> seqs_;
  std::unique_ptr<sinks::SinkSet> sinks_;
  ingest::SensorRegistry sensors_;
  std::unique_ptr<api::Hub> hub_;
  std::unique_ptr<api::BearerToken> api_token_;
  std::unique_ptr<api::RateLimiter> rate_limiter_;
  std::unique_ptr<ingest::Ingestor> ingestor_;
  std::unique_ptr<ingest::SensorService> sensor_service_;
  std::unique_ptr<api::ObserverService> observer_service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<http::HttpServer> http_;
  uint16_t grpc_port_ = 0;
  std::atomic<bool> ready_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread housekeeping_;
};

}  // namespace nodescope::aggregator
