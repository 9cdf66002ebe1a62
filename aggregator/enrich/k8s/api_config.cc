#include "aggregator/enrich/k8s/api_config.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace nodescope::aggregator::enrich::k8s {

namespace {

Result<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(what + " " + path + ": cannot read it");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::string> Base64(const std::string& text, const std::string& what) {
  std::string clean;
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return Status::Error(what + ": not base64");
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return Status::Error(what + ": not base64");
  size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// A named entry of a kubeconfig list (clusters, users, contexts): its inner map.
YAML::Node Named(const YAML::Node& list, const std::string& name) {
  if (!list.IsSequence()) return YAML::Node();
  for (const YAML::Node& entry : list) {
    if (entry["name"] && entry["name"].as<std::string>("") == name) return entry;
  }
  return YAML::Node();
}

std::string Text(const YAML::Node& node, const char* key) {
  return node && node[key] && node[key].IsScalar() ? node[key].as<std::string>() : std::string();
}

// A file named in a kubeconfig is relative to the kubeconfig's directory.
std::string Relative(const std::string& kubeconfig, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return (std::filesystem::path(kubeconfig).parent_path() / path).string();
}

// `data` (base64) or `file`, from a kubeconfig map.
Result<std::string> FileOrData(const std::string& kubeconfig, const YAML::Node& node,
                               const char* file_key, const std::string& data_key,
                               const std::string& where) {
  std::string data = Text(node, data_key.c_str());
  if (!data.empty()) return Base64(data, where + "." + data_key);
  std::string file = Text(node, file_key);
  if (file.empty()) return std::string();
  return ReadFile(Relative(kubeconfig, file), where + "." + file_key);
}

Result<ApiConfig> FromKubeconfig(const std::string& path) {
  const std::string what = "kubeconfig " + path;
  Result<std::string> text = ReadFile(path, "kubeconfig");
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Status::Error(what + ": " + e.what());
  }
  std::string context_name = Text(root, "current-context");
  if (context_name.empty()) return Status::Error(what + ": current-context is not set");
  YAML::Node context = Named(root["contexts"], context_name)["context"];
  if (!context) return Status::Error(what + ": no context named \"" + context_name + "\"");
  const std::string cluster_name = Text(context, "cluster");
  YAML::Node cluster = Named(root["clusters"], cluster_name)["cluster"];
  if (!cluster) return Status::Error(what + ": no cluster named \"" + cluster_name + "\"");
  ApiConfig config;
  config.origin = what + " (context " + context_name + ")";
  Status url = ParseServerUrl(Text(cluster, "server"), &config);
  if (!url.ok()) return url.Prefixed(what + ": clusters." + cluster_name + ".server: ");
  config.insecure = Text(cluster, "insecure-skip-tls-verify") == "true";
  Result<std::string> ca = FileOrData(path, cluster, "certificate-authority",
                                      "certificate-authority-data", what + ": cluster");
  if (!ca.ok()) return ca.status();
  config.ca_pem = std::move(ca).value();

  const std::string user_name = Text(context, "user");
  YAML::Node user = Named(root["users"], user_name)["user"];
  if (!user_name.empty() && !user) {
    return Status::Error(what + ": no user named \"" + user_name + "\"");
  }
  if (user && (user["exec"] || user["auth-provider"])) {
    return Status::Error(what + ": user " + user_name +
                         " authenticates through an exec or auth-provider plugin, which the "
                         "aggregator does not run; use a token or a client certificate");
  }
  config.token = Text(user, "token");
  config.token_file = Relative(path, Text(user, "tokenFile"));
  Result<std::string> cert =
      FileOrData(path, user, "client-certificate", "client-certificate-data", what + ": user");
  if (!cert.ok()) return cert.status();
  Result<std::string> key =
      FileOrData(path, user, "client-key", "client-key-data", what + ": user");
  if (!key.ok()) return key.status();
  config.client_cert_pem = std::move(cert).value();
  config.client_key_pem = std::move(key).value();
  return config;
}

}  // namespace

Status ParseServerUrl(const std::string& url, ApiConfig* config) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind("http://", 0) == 0) {
    return Status::Error("\"" + url + "\" is plain http; the API server is reached over https");
  }
  if (url.rfind(kScheme, 0) != 0) return Status::Error("\"" + url + "\" is not an https:// URL");
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) {
      return Status::Error("\"" + url + "\": a path after the host is not supported");
    }
    rest.resize(slash);
  }
  std::string host = rest;
  std::string port = "443";
  if (!rest.empty() && rest[0] == '[') {  // [v6]:port
    size_t close = rest.find(']');
    if (close == std::string::npos) return Status::Error("\"" + url + "\": unclosed [");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Status::Error("\"" + url + "\": junk after ]");
      port = rest.substr(close + 2);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return Status::Error("\"" + url + "\" has no host");
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      port.size() > 5 || std::stoi(port) == 0 || std::stoi(port) > 65535) {
    return Status::Error("\"" + url + "\": port \"" + port + "\" is not 1-65535");
  }
  config->host = host;
  config->port = port;
  return Status::Ok();
}

Result<std::optional<ApiConfig>> ResolveApiConfig(
    const K8sOptions& options, const std::function<const char*(const char*)>& getenv) {
  if (options.enrich == "off") return std::optional<ApiConfig>();
  if (!options.kubeconfig.empty()) {
    Result<ApiConfig> config = FromKubeconfig(options.kubeconfig);
    if (!config.ok()) return config.status().Prefixed("config: key 'kubeconfig': ");
    return std::optional<ApiConfig>(std::move(config).value());
  }
  ApiConfig config;
  if (!options.url.empty()) {
    Status s = ParseServerUrl(options.url, &config);
    if (!s.ok()) return s.Prefixed("config: key 'kubernetes_url': ");
    config.origin = "kubernetes_url";
  } else {
    const char* host = getenv("KUBERNETES_SERVICE_HOST");
    const char* port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || *host == '\0') {
      if (options.enrich == "on") {
        return Status::Error(
            "config: key 'kubernetes_enrich': on, but neither kubernetes_url nor kubeconfig is "
            "set and KUBERNETES_SERVICE_HOST is not (not running in a cluster)");
      }
      return std::optional<ApiConfig>();
    }
    std::string h = host;
    std::string url = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" +
                      (port != nullptr && *port != '\0' ? port : "443");
    Status s = ParseServerUrl(url, &config);
    if (!s.ok()) return s.Prefixed("KUBERNETES_SERVICE_HOST/PORT: ");
    config.origin = "in-cluster";
  }
  // The defaults are the service-account files; outside a pod they do not exist, and then the
  // system's CAs and no token are what a kubernetes_url user gets. A path the user set must exist.
  const K8sOptions defaults;
  auto missing_default = [](const std::string& path, const std::string& default_path) {
    return path == default_path && !std::filesystem::exists(path);
  };
  if (!options.bearer_token_string.empty()) {
    config.token = options.bearer_token_string;
  } else if (!options.bearer_token.empty() &&
             !missing_default(options.bearer_token, defaults.bearer_token)) {
    std::ifstream probe(options.bearer_token);
    if (!probe) {
      return Status::Error("config: key 'bearer_token': " + options.bearer_token +
                           ": cannot read it");
    }
    config.token_file = options.bearer_token;
  }
  if (!options.ca.empty() && !missing_default(options.ca, defaults.ca)) {
    Result<std::string> ca = ReadFile(options.ca, "config: key 'kubernetes_ca':");
    if (!ca.ok()) return ca.status();
    config.ca_pem = std::move(ca).value();
  }
  return std::optional<ApiConfig>(std::move(config));
}

}  // namespace nodescope::aggregator::enrich::k8s
