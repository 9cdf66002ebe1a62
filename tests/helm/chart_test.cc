// helm/nodescope rendered without a cluster: the objects, their names, selectors, pod specs and
// RBAC, with the default values and with tests/helm/all-plugins.yaml.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "common/testing/temp_dir.h"
#include "tests/helm/render.h"

namespace nodescope::test {
namespace {

const std::string kSensor = std::string(kFullname) + "-sensor";
const std::string kAggregator = std::string(kFullname) + "-aggregator";

std::string AllPlugins() { return SourceDir() + "/tests/helm/all-plugins.yaml"; }

// Every label of `selector` is on `labels` with the same value (how Kubernetes selects).
bool Selects(const YAML::Node& selector, const YAML::Node& labels) {
  auto want = StringMap(selector);
  auto have = StringMap(labels);
  if (want.empty()) return false;  // an empty selector would select everything
  return std::all_of(want.begin(), want.end(), [&](const auto& kv) {
    auto it = have.find(kv.first);
    return it != have.end() && it->second == kv.second;
  });
}

class Chart : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    r_ = RenderChart(GetParam() ? std::vector<std::string>{AllPlugins()}
                                : std::vector<std::string>{});
    ASSERT_TRUE(r_.ok) << r_.error;
  }
  YAML::Node Sensor() const { return r_.Get("DaemonSet", kSensor); }
  YAML::Node Aggregator() const { return r_.Get("Deployment", kAggregator); }
  YAML::Node SensorContainer() const {
    return Named(Sensor()["spec"]["template"]["spec"]["containers"], "sensor");
  }
  YAML::Node AggregatorContainer() const {
    return Named(Aggregator()["spec"]["template"]["spec"]["containers"], "aggregator");
  }
  Render r_;
};

TEST_P(Chart, RendersExactlyTheExpectedObjects) {
  std::multiset<std::pair<std::string, std::string>> want = {
      {"ServiceAccount", kSensor},  {"ServiceAccount", kAggregator},
      {"ConfigMap", kSensor},       {"ConfigMap", kAggregator},
      {"ClusterRole", kAggregator}, {"ClusterRoleBinding", kAggregator},
      {"Service", kAggregator},     {"DaemonSet", kSensor},
      {"Deployment", kAggregator}};
  if (GetParam()) want.insert({"ServiceMonitor", kAggregator});
  std::multiset<std::pair<std::string, std::string>> have;
  for (const auto& d : r_.docs) {
    have.insert({d["kind"].as<std::string>(""), d["metadata"]["name"].as<std::string>("")});
  }
  EXPECT_EQ(have, want) << r_.text;
  ASSERT_EQ(r_.sources.size(), r_.docs.size()) << "one # Source: line per document";
  for (const auto& d : r_.docs) {
    const std::string kind = d["kind"].as<std::string>("");
    const auto labels = StringMap(d["metadata"]["labels"]);
    EXPECT_EQ(
        labels.count("app.kubernetes.io/instance") ? labels.at("app.kubernetes.io/instance") : "",
        kRelease)
        << kind;
    EXPECT_EQ(labels.count("app.kubernetes.io/managed-by"), 1u) << kind;
    if (kind != "ClusterRole" && kind != "ClusterRoleBinding") {
      EXPECT_EQ(d["metadata"]["namespace"].as<std::string>(""), kNamespace) << kind;
    } else {
      EXPECT_FALSE(d["metadata"]["namespace"]) << kind << " is cluster-scoped";
    }
  }
}

TEST_P(Chart, SelectorsMatchTheirOwnPodsOnly) {
  const YAML::Node ds = Sensor(), dep = Aggregator();
  ASSERT_TRUE(ds.IsMap() && dep.IsMap());
  const YAML::Node ds_pod = ds["spec"]["template"]["metadata"]["labels"];
  const YAML::Node dep_pod = dep["spec"]["template"]["metadata"]["labels"];
  EXPECT_TRUE(Selects(ds["spec"]["selector"]["matchLabels"], ds_pod));
  EXPECT_FALSE(Selects(ds["spec"]["selector"]["matchLabels"], dep_pod));
  EXPECT_TRUE(Selects(dep["spec"]["selector"]["matchLabels"], dep_pod));
  EXPECT_FALSE(Selects(dep["spec"]["selector"]["matchLabels"], ds_pod));
  const YAML::Node svc = r_.Get("Service", kAggregator);
  EXPECT_TRUE(Selects(svc["spec"]["selector"], dep_pod)) << "the Service must reach the aggregator";
  EXPECT_FALSE(Selects(svc["spec"]["selector"], ds_pod)) << "the Service must not reach sensors";
  if (GetParam()) {
    const YAML::Node sm = r_.Get("ServiceMonitor", kAggregator);
    EXPECT_TRUE(Selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]));
    EXPECT_EQ(Strings(sm["spec"]["namespaceSelector"]["matchNames"]),
              std::set<std::string>{kNamespace});
    const YAML::Node ep = sm["spec"]["endpoints"][0];
    EXPECT_TRUE(Named(svc["spec"]["ports"], ep["port"].as<std::string>("")).IsMap())
        << "ServiceMonitor port must name a Service port";
    EXPECT_EQ(ep["path"].as<std::string>(""), "/metrics");
    EXPECT_EQ(StringMap(sm["metadata"]["labels"])["release"], "prometheus");
  }
}

TEST_P(Chart, SensorPodHasTheHostAccessItNeeds) {
  const YAML::Node pod = Sensor()["spec"]["template"]["spec"];
  ASSERT_TRUE(pod.IsMap()) << r_.text;
  EXPECT_TRUE(pod["hostPID"].as<bool>(false));
  EXPECT_TRUE(pod["hostNetwork"].as<bool>(false));
  EXPECT_EQ(pod["dnsPolicy"].as<std::string>(""), "ClusterFirstWithHostNet");
  EXPECT_EQ(pod["serviceAccountName"].as<std::string>(""), kSensor);
  EXPECT_FALSE(pod["automountServiceAccountToken"].as<bool>(true));

  // A toleration with operator Exists and no key tolerates every taint: runs on every node.
  bool everywhere = false;
  for (const auto& t : pod["tolerations"]) {
    everywhere |= t["operator"].as<std::string>("") == "Exists" && !t["key"] && !t["effect"];
  }
  EXPECT_TRUE(everywhere) << "no toleration for every taint";

  const YAML::Node c = SensorContainer();
  ASSERT_TRUE(c.IsMap());
  const YAML::Node sc = c["securityContext"];
  EXPECT_EQ(sc["runAsUser"].as<int>(-1), 0);
  EXPECT_FALSE(sc["privileged"].as<bool>(true));
  EXPECT_EQ(Strings(sc["capabilities"]["add"]),
            (std::set<std::string>{"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE",
                                   "SYS_RESOURCE"}));
  EXPECT_EQ(Strings(sc["capabilities"]["drop"]), std::set<std::string>{"ALL"});
  EXPECT_EQ(
      StringMap(Sensor()["spec"]["template"]["metadata"]
                        ["annotations"])["container.apparmor.security.beta.kubernetes.io/sensor"],
      "unconfined");

  // mountPath -> hostPath of every host mount.
  std::map<std::string, std::string> host_mounts;
  std::map<std::string, bool> read_only;
  for (const auto& m : c["volumeMounts"]) {
    const YAML::Node v = Named(pod["volumes"], m["name"].as<std::string>(""));
    ASSERT_TRUE(v.IsMap()) << "mount of an undeclared volume " << m["name"];
    if (v["hostPath"]) {
      host_mounts[m["mountPath"].as<std::string>()] = v["hostPath"]["path"].as<std::string>("");
      read_only[m["mountPath"].as<std::string>()] = m["readOnly"].as<bool>(false);
    }
  }
  EXPECT_EQ(host_mounts,
            (std::map<std::string, std::string>{{"/sys/kernel/debug", "/sys/kernel/debug"},
                                                {"/sys/kernel/tracing", "/sys/kernel/tracing"},
                                                {"/sys/fs/bpf", "/sys/fs/bpf"},
                                                {"/rootfs", "/"},
                                                {"/var/lib/nodescope/spool",
                                                 "/var/lib/nodescope/spool"}}));
  EXPECT_TRUE(read_only["/rootfs"]) << "the host's / must be read-only";
  EXPECT_FALSE(read_only["/var/lib/nodescope/spool"]) << "the spool is written";

  const YAML::Node env = c["env"];
  EXPECT_EQ(Named(env, "HOST_ROOT")["value"].as<std::string>(""), "/rootfs");
  EXPECT_EQ(Named(env, "HOST_PROC")["value"].as<std::string>(""), "/rootfs/proc");
  EXPECT_EQ(
      Named(env, "NODESCOPE_HOSTNAME")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(""),
      "spec.nodeName");

  EXPECT_TRUE(c["resources"]["requests"]["cpu"]) << "no CPU request";
  EXPECT_TRUE(c["resources"]["requests"]["memory"]) << "no memory request";
  EXPECT_TRUE(c["resources"]["limits"]["memory"]) << "no memory limit";
  for (const char* probe : {"startupProbe", "livenessProbe"}) {
    EXPECT_EQ(c[probe]["httpGet"]["path"].as<std::string>(""), "/healthz") << probe;
    EXPECT_EQ(c[probe]["httpGet"]["port"].as<int>(0), 6061) << probe << ": pprof_port";
    EXPECT_EQ(c[probe]["httpGet"]["host"].as<std::string>(""), "127.0.0.1") << probe;
  }
}

TEST_P(Chart, WorkloadsRunTheirConfigMapAndRollOnChange) {
  struct Case {
    YAML::Node workload, container;
    std::string configmap;
  };
  for (const Case& w : {Case{Sensor(), SensorContainer(), kSensor},
                        Case{Aggregator(), AggregatorContainer(), kAggregator}}) {
    ASSERT_TRUE(w.container.IsMap()) << w.configmap;
    std::vector<std::string> args;
    for (const auto& a : w.container["args"]) args.push_back(a.as<std::string>());
    EXPECT_EQ(args, (std::vector<std::string>{"--config", "/etc/nodescope/config.yaml"}));
    const YAML::Node mount = Named(w.container["volumeMounts"], "config");
    EXPECT_EQ(mount["mountPath"].as<std::string>(""), "/etc/nodescope/config.yaml");
    EXPECT_EQ(mount["subPath"].as<std::string>(""), "config.yaml");
    const YAML::Node vol = Named(w.workload["spec"]["template"]["spec"]["volumes"], "config");
    EXPECT_EQ(vol["configMap"]["name"].as<std::string>(""), w.configmap);
    EXPECT_TRUE(r_.Get("ConfigMap", w.configmap)["data"]["config.yaml"].IsScalar());
  }
  // A config change must change the pod template (checksum/config), or pods keep the old one.
  TempDir dir;
  dir.Write("v.yaml",
            "sensor: {config: {log_level: debug}}\naggregator: {config: {log_level: debug}}\n");
  std::vector<std::string> files = {dir.File("v.yaml")};
  if (GetParam()) files.insert(files.begin(), AllPlugins());
  const Render changed = RenderChart(files);
  ASSERT_TRUE(changed.ok) << changed.error;
  for (const auto& [kind, name] :
       {std::pair{"DaemonSet", kSensor}, std::pair{"Deployment", kAggregator}}) {
    const auto before =
        StringMap(r_.Get(kind, name)["spec"]["template"]["metadata"]["annotations"]);
    const auto after =
        StringMap(changed.Get(kind, name)["spec"]["template"]["metadata"]["annotations"]);
    ASSERT_EQ(before.count("checksum/config"), 1u) << kind;
    EXPECT_NE(before.at("checksum/config"), after.at("checksum/config")) << kind;
  }
}

TEST_P(Chart, AggregatorRunsNonRootWithProbesOnItsHttpPort) {
  const YAML::Node pod = Aggregator()["spec"]["template"]["spec"];
  const YAML::Node c = AggregatorContainer();
  ASSERT_TRUE(c.IsMap()) << r_.text;
  const YAML::Node sc = c["securityContext"];
  EXPECT_TRUE(sc["runAsNonRoot"].as<bool>(false));
  EXPECT_GT(sc["runAsUser"].as<int>(0), 0);
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>(false));
  EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>(false));
  EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>(true));
  EXPECT_FALSE(sc["privileged"].as<bool>(false));
  EXPECT_EQ(Strings(sc["capabilities"]["drop"]), std::set<std::string>{"ALL"});
  EXPECT_FALSE(sc["capabilities"]["add"]);
  EXPECT_FALSE(pod["hostNetwork"].as<bool>(false));
  EXPECT_FALSE(pod["hostPID"].as<bool>(false));
  EXPECT_EQ(pod["serviceAccountName"].as<std::string>(""), kAggregator);

  EXPECT_EQ(Named(c["ports"], "grpc")["containerPort"].as<int>(0), 9970);
  EXPECT_EQ(Named(c["ports"], "http")["containerPort"].as<int>(0), 9971);
  // Probes name the port; it must resolve to the HTTP listener (9971), not gRPC.
  for (const auto& [probe, path] :
       {std::pair{"livenessProbe", "/healthz"}, std::pair{"readinessProbe", "/readyz"}}) {
    const YAML::Node get = c[probe]["httpGet"];
    EXPECT_EQ(get["path"].as<std::string>(""), path) << probe;
    const YAML::Node port = Named(c["ports"], get["port"].as<std::string>(""));
    EXPECT_EQ(port["containerPort"].as<int>(get["port"].as<int>(0)), 9971) << probe;
  }

  const YAML::Node svc = r_.Get("Service", kAggregator);
  for (const auto& [name, number] : {std::pair{"grpc", 9970}, std::pair{"http", 9971}}) {
    const YAML::Node p = Named(svc["spec"]["ports"], name);
    EXPECT_EQ(p["port"].as<int>(0), number) << name;
    EXPECT_EQ(Named(c["ports"], p["targetPort"].as<std::string>(""))["containerPort"].as<int>(0),
              number)
        << name << ": targetPort must reach the container's port";
  }
  for (const YAML::Node& meta : {Aggregator()["spec"]["template"]["metadata"], svc["metadata"]}) {
    auto a = StringMap(meta["annotations"]);
    EXPECT_EQ(a["prometheus.io/scrape"], "true");
    EXPECT_EQ(a["prometheus.io/port"], "9971");
    EXPECT_EQ(a["prometheus.io/path"], "/metrics");
  }
}

TEST_P(Chart, RbacIsReadOnlyOnExactlyTheEnrichedResources) {
  const YAML::Node role = r_.Get("ClusterRole", kAggregator);
  ASSERT_TRUE(role.IsMap()) << r_.text;
  std::set<std::tuple<std::string, std::string, std::string>> have, want;
  for (const auto& [group, resources] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"", {"pods", "services", "nodes"}},
           {"discovery.k8s.io", {"endpointslices"}},
           {"apps", {"replicasets", "deployments", "daemonsets", "statefulsets"}},
           {"batch", {"jobs"}}}) {
    for (const auto& res : resources) {
      for (const char* verb : {"get", "list", "watch"}) want.insert({group, res, verb});
    }
  }
  for (const auto& rule : role["rules"]) {
    EXPECT_FALSE(rule["resourceNames"]) << "no per-name rules expected";
    EXPECT_FALSE(rule["nonResourceURLs"]) << "no non-resource URLs expected";
    for (const auto& g : rule["apiGroups"]) {
      for (const auto& res : rule["resources"]) {
        for (const auto& v : rule["verbs"]) {
          have.insert({g.as<std::string>(), res.as<std::string>(), v.as<std::string>()});
        }
      }
    }
  }
  // Exact equality also rules out "*" in any position and any write verb.
  EXPECT_EQ(have, want);

  const YAML::Node binding = r_.Get("ClusterRoleBinding", kAggregator);
  EXPECT_EQ(binding["roleRef"]["kind"].as<std::string>(""), "ClusterRole");
  EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(""), kAggregator);
  ASSERT_EQ(binding["subjects"].size(), 1u);
  const YAML::Node subject = binding["subjects"][0];
  EXPECT_EQ(subject["kind"].as<std::string>(""), "ServiceAccount");
  EXPECT_EQ(subject["name"].as<std::string>(""),
            Aggregator()["spec"]["template"]["spec"]["serviceAccountName"].as<std::string>("?"));
  EXPECT_EQ(subject["namespace"].as<std::string>(""), kNamespace);
  EXPECT_TRUE(r_.Get("ServiceAccount", subject["name"].as<std::string>("")).IsMap());
}

TEST_P(Chart, TlsSecretIsMountedInBothWorkloadsOnlyWhenEnabled) {
  for (const auto& [workload, container] :
       {std::pair{Sensor(), SensorContainer()}, std::pair{Aggregator(), AggregatorContainer()}}) {
    const YAML::Node vol = Named(workload["spec"]["template"]["spec"]["volumes"], "tls");
    const YAML::Node mount = Named(container["volumeMounts"], "tls");
    if (!GetParam()) {
      EXPECT_FALSE(vol.IsMap());
      EXPECT_FALSE(mount.IsMap());
      continue;
    }
    EXPECT_EQ(vol["secret"]["secretName"].as<std::string>(""), "nodescope-tls");
    EXPECT_EQ(mount["mountPath"].as<std::string>(""), "/etc/nodescope/tls");
    EXPECT_TRUE(mount["readOnly"].as<bool>(false));
  }
}

TEST_P(Chart, ApiTokenSecretIsMountedInTheAggregatorOnlyWhenNamed) {
  const YAML::Node vol = Named(Aggregator()["spec"]["template"]["spec"]["volumes"], "api-token");
  const YAML::Node mount = Named(AggregatorContainer()["volumeMounts"], "api-token");
  EXPECT_FALSE(Named(SensorContainer()["volumeMounts"], "api-token").IsMap());
  if (!GetParam()) {
    EXPECT_FALSE(vol.IsMap());
    EXPECT_FALSE(mount.IsMap());
    return;
  }
  EXPECT_EQ(vol["secret"]["secretName"].as<std::string>(""), "nodescope-api-token");
  EXPECT_EQ(vol["secret"]["items"][0]["key"].as<std::string>(""), "token");
  EXPECT_EQ(vol["secret"]["items"][0]["path"].as<std::string>(""), "token");
  EXPECT_EQ(mount["mountPath"].as<std::string>(""), "/etc/nodescope/api-token");
  EXPECT_TRUE(mount["readOnly"].as<bool>(false));
}

INSTANTIATE_TEST_SUITE_P(Values, Chart, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "AllPlugins" : "Defaults"; });

TEST(ChartOptions, PrivilegedModeReplacesTheCapabilitySet) {
  TempDir dir;
  dir.Write("v.yaml", "sensor: {privileged: true}\n");
  const Render r = RenderChart({dir.File("v.yaml")});
  ASSERT_TRUE(r.ok) << r.error;
  const YAML::Node c =
      Named(r.Get("DaemonSet", kSensor)["spec"]["template"]["spec"]["containers"], "sensor");
  EXPECT_TRUE(c["securityContext"]["privileged"].as<bool>(false));
  EXPECT_FALSE(c["securityContext"]["capabilities"]);
}

TEST(ChartOptions, TlsWithoutASecretNameIsAnError) {
  TempDir dir;
  dir.Write("v.yaml", "tls: {enabled: true}\n");
  const Render r = RenderChart({dir.File("v.yaml")});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("tls.secretName"), std::string::npos) << r.error;
}

TEST(ChartOptions, OneWayTlsLeavesClientCertificatesOutAndSetOptionsWin) {
  TempDir dir;
  dir.Write("v.yaml",
            "tls: {enabled: true, secretName: s, mutual: false}\n"
            "aggregator: {config: {tls_cert: /own/a.crt, tls_key: /own/a.key}}\n");
  const Render r = RenderChart({dir.File("v.yaml")});
  ASSERT_TRUE(r.ok) << r.error;
  const YAML::Node agg =
      YAML::Load(r.Get("ConfigMap", kAggregator)["data"]["config.yaml"].as<std::string>(""));
  EXPECT_EQ(agg["tls_cert"].as<std::string>(""), "/own/a.crt");
  EXPECT_EQ(agg["tls_key"].as<std::string>(""), "/own/a.key");
  EXPECT_EQ(agg["tls_client_ca"].as<std::string>("?"), "");
  const YAML::Node sensor =
      YAML::Load(r.Get("ConfigMap", kSensor)["data"]["config.yaml"].as<std::string>(""));
  EXPECT_EQ(sensor["tls_ca"].as<std::string>(""), "/etc/nodescope/tls/ca.crt");
  EXPECT_EQ(sensor["tls_cert"].as<std::string>("?"), "");
  EXPECT_EQ(sensor["tls_key"].as<std::string>("?"), "");
}

TEST(ChartOptions, ExplicitHostnameReplacesTheDownwardApiVariable) {
  TempDir dir;
  dir.Write("v.yaml", "sensor: {config: {hostname: node-a}}\n");
  const Render r = RenderChart({dir.File("v.yaml")});
  ASSERT_TRUE(r.ok) << r.error;
  const YAML::Node c =
      Named(r.Get("DaemonSet", kSensor)["spec"]["template"]["spec"]["containers"], "sensor");
  // The variable would override the file's hostname.
  EXPECT_FALSE(Named(c["env"], "NODESCOPE_HOSTNAME").IsMap());
}

}  // namespace
}  // namespace nodescope::test
