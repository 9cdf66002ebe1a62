// Where the Kubernetes API is and how to authenticate to it: in-cluster (service-account token
// and CA, KUBERNETES_SERVICE_HOST/PORT), a kubeconfig file, or an explicit kubernetes_url.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"

namespace nodescope::aggregator::enrich::k8s {

// The aggregator's options (names follow the reference collector's kubernetes_url and
// bearer_token / bearer_token_string).
struct K8sOptions {
  std::string enrich = "auto";  // auto: on when in a cluster or configured; on; off
  std::string url;              // kubernetes_url
  std::string kubeconfig;
  std::string bearer_token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string bearer_token_string;
  std::string ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
};

struct ApiConfig {
  std::string host;  // a name or an address (IPv6 without brackets)
  std::string port = "443";
  std::string ca_pem;           // trust anchors; empty with insecure: no verification
  bool insecure = false;        // kubeconfig insecure-skip-tls-verify
  std::string token;            // a fixed token, or
  std::string token_file;       // a file re-read whenever it changes (projected tokens rotate)
  std::string client_cert_pem;  // kubeconfig client certificates
  std::string client_key_pem;
  std::string origin;  // "in-cluster", "kubeconfig /path (context x)", "kubernetes_url"
};

// nullopt when enrichment is off (enrich: off, or auto outside a cluster with nothing
// configured). Errors are one line naming the option or kubeconfig field that is wrong.
Result<std::optional<ApiConfig>> ResolveApiConfig(
    const K8sOptions& options, const std::function<const char*(const char*)>& getenv);

// "https://host:port" (or without port: 443) into host and port; http:// is refused: a bearer
// token must not travel in clear.
Status ParseServerUrl(const std::string& url, ApiConfig* config);

}  // namespace nodescope::aggregator::enrich::k8s
