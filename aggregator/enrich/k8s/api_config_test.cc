#include "aggregator/enrich/k8s/api_config.h"

#include <gtest/gtest.h>

#include <map>

#include "common/testing/temp_dir.h"

namespace nodescope::aggregator::enrich::k8s {
namespace {

using test::TempDir;

std::function<const char*(const char*)> Env(std::map<std::string, std::string> vars) {
  auto owned = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [owned](const char* name) -> const char* {
    auto it = owned->find(name);
    return it == owned->end() ? nullptr : it->second.c_str();
  };
}

const auto kNoEnv = Env({});

TEST(ApiConfigTest, InClusterUsesTheServiceEnvironmentTokenAndCa) {
  TempDir dir;
  dir.Write("token", "t0k3n\n");
  dir.Write("ca.crt", "-----BEGIN CERTIFICATE-----\n");
  K8sOptions options;
  options.bearer_token = dir.File("token");
  options.ca = dir.File("ca.crt");
  auto config = ResolveApiConfig(options, Env({{"KUBERNETES_SERVICE_HOST", "198.19.0.1"},
                                               {"KUBERNETES_SERVICE_PORT", "6443"}}));
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_TRUE(config->has_value());
  const ApiConfig& c = **config;
  EXPECT_EQ(c.origin, "in-cluster");
  EXPECT_EQ(c.host, "198.19.0.1");
  EXPECT_EQ(c.port, "6443");
  EXPECT_EQ(c.token_file, dir.File("token"));  // read at each request: it rotates
  EXPECT_EQ(c.ca_pem, "-----BEGIN CERTIFICATE-----\n");

  auto v6 = ResolveApiConfig(options, Env({{"KUBERNETES_SERVICE_HOST", "fd00:198:18::1"},
                                           {"KUBERNETES_SERVICE_PORT", "443"}}));
  ASSERT_TRUE(v6.ok()) << v6.status().message();
  EXPECT_EQ((*v6)->host, "fd00:198:18::1");
}

TEST(ApiConfigTest, OffOrOutsideAClusterMeansNoEnrichment) {
  K8sOptions options;
  auto outside = ResolveApiConfig(options, kNoEnv);
  ASSERT_TRUE(outside.ok());
  EXPECT_FALSE(outside->has_value());
  options.enrich = "off";
  auto off = ResolveApiConfig(options, Env({{"KUBERNETES_SERVICE_HOST", "198.19.0.1"}}));
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->has_value());
  options.enrich = "on";
  EXPECT_EQ(ResolveApiConfig(options, kNoEnv).status().message(),
            "config: key 'kubernetes_enrich': on, but neither kubernetes_url nor kubeconfig is "
            "set and KUBERNETES_SERVICE_HOST is not (not running in a cluster)");
}

TEST(ApiConfigTest, KubernetesUrlWithAnInlineToken) {
  K8sOptions options;
  options.url = "https://api.example.test:8443/";
  options.bearer_token_string = "abc";
  auto config = ResolveApiConfig(options, kNoEnv);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ((*config)->host, "api.example.test");
  EXPECT_EQ((*config)->port, "8443");
  EXPECT_EQ((*config)->token, "abc");
  EXPECT_EQ((*config)->ca_pem, "");  // the default CA file is absent here: the system's CAs

  options.url = "http://api.example.test";
  EXPECT_EQ(ResolveApiConfig(options, kNoEnv).status().message(),
            "config: key 'kubernetes_url': \"http://api.example.test\" is plain http; the API "
            "server is reached over https");
  options.url = "https://[fd00:198:18::1]:99999";
  EXPECT_EQ(ResolveApiConfig(options, kNoEnv).status().message(),
            "config: key 'kubernetes_url': \"https://[fd00:198:18::1]:99999\": port \"99999\" is "
            "not 1-65535");
  options.url = "https://api.example.test/prefix";
  EXPECT_NE(ResolveApiConfig(options, kNoEnv).status().message().find("a path after the host"),
            std::string::npos);
  options.url = "https://api.example.test";
  options.bearer_token_string = "";
  options.bearer_token = "/nonexistent/token";
  EXPECT_EQ(ResolveApiConfig(options, kNoEnv).status().message(),
            "config: key 'bearer_token': /nonexistent/token: cannot read it");
}

TEST(ApiConfigTest, KubeconfigCurrentContextWithDataAndRelativeFiles) {
  TempDir dir;
  dir.Write("certs/client.key", "KEY");
  dir.Write("kubeconfig", R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: staging
  cluster: {server: "https://198.18.9.9:6443"}
- name: prod
  cluster:
    server: https://[fd00:198:18::10]:6443
    certificate-authority-data: Q0EtUEVN
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key: certs/client.key
contexts:
- name: prod
  context: {cluster: prod, user: admin}
)");
  K8sOptions options;
  options.kubeconfig = dir.File("kubeconfig");
  auto config = ResolveApiConfig(options, kNoEnv);
  ASSERT_TRUE(config.ok()) << config.status().message();
  const ApiConfig& c = **config;
  EXPECT_EQ(c.host, "fd00:198:18::10");
  EXPECT_EQ(c.port, "6443");
  EXPECT_EQ(c.ca_pem, "CA-PEM");
  EXPECT_EQ(c.client_cert_pem, "CERT");
  EXPECT_EQ(c.client_key_pem, "KEY");
  EXPECT_EQ(c.origin, "kubeconfig " + dir.File("kubeconfig") + " (context prod)");
}

TEST(ApiConfigTest, KubeconfigErrorsNameTheField) {
  TempDir dir;
  K8sOptions options;
  options.kubeconfig = dir.File("kubeconfig");
  auto error = [&](const std::string& text) {
    dir.Write("kubeconfig", text);
    return ResolveApiConfig(options, kNoEnv).status().message();
  };
  const std::string at = "config: key 'kubeconfig': kubeconfig " + dir.File("kubeconfig");
  EXPECT_EQ(error("clusters: []\n"), at + ": current-context is not set");
  EXPECT_EQ(error("current-context: x\n"), at + ": no context named \"x\"");
  EXPECT_EQ(error("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"),
            at + ": no cluster named \"c\"");
  EXPECT_EQ(error("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                  "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {exec: {command: gke-gcloud-auth-plugin}}}]\n"),
            at + ": user u authenticates through an exec or auth-provider plugin, which the "
                 "aggregator does not run; use a token or a client certificate");
  EXPECT_EQ(error("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                  "clusters: [{name: c, cluster: {server: 'http://h'}}]\n"),
            at + ": clusters.c.server: \"http://h\" is plain http; the API server is reached "
                 "over https");
  EXPECT_NE(error("current-context: [\n").find(at + ": "), std::string::npos);
}

}  // namespace
}  // namespace nodescope::aggregator::enrich::k8s
