// Kubernetes enrichment end to end: a test API server (tests/fixtures/kube) serves a deployment's
// pod (nginx) and a client pod (curl), each a network namespace of its own with a 198.18.x
// address and a cgroup named like the kubelet names them; the real sensor and aggregator run,
// and the records must name both pods on both sides. Then the client pod is deleted and its
// address given to another pod: the next records name the new one. Before that, the server
// compacts its history and drops every watch (the aggregator must relist on 410) and rotates the
// token (the aggregator must re-read its token file).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sensor/proc/cgroup_paths.h"
#include "sensor/proc/process_cache.h"
#include "sensor/proc/users.h"
#include "tests/fixtures/kube/fake_api_server.h"
#include "tests/fixtures/kube/objects.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"
#include "tests/integration/nginx.h"
#include "tests/integration/node_stack.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace kube = nodescope::testing::kube;

constexpr char kHost[] = "k8s-node";
constexpr char kNs[] = "shop";
constexpr char kWebUid[] = "7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
constexpr char kClientUid[] = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
constexpr char kBatchUid[] = "9f8e7d6c-5b4a-4938-8271-6a5b4c3d2e1f";
const std::string kWebContainer = "5e" + std::string(62, '1');
const std::string kClientContainer = "c1" + std::string(62, '2');
const std::string kBatchContainer = "ba" + std::string(62, '3');

// The kubelet's systemd-driver name of a best-effort pod's slice: dashes of the UID become _.
std::string PodSlice(std::string uid) {
  for (char& c : uid) c = c == '-' ? '_' : c;
  return "kubepods-besteffort-pod" + uid + ".slice";
}

// Cgroups made under the cgroup2 mount for one test run; removed (deepest first) at the end,
// after whatever still runs in them is moved back to the root.
class CgroupTree {
 public:
  CgroupTree() {
    mount_ = sensor::proc::FindCgroup2(sensor::proc::UserResolver::HostRootFromEnv(),
                                       sensor::proc::ProcessCache::ProcRootFromEnv())
                 .dir;
    base_ = "/nodescope-k8s-test-" + std::to_string(getpid()) + ".slice";
  }
  ~CgroupTree() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      for (const std::string& pid : Lines(*it + "/cgroup.procs")) {
        std::ofstream(mount_ + "/cgroup.procs") << pid;
      }
      for (int i = 0; i < 100 && rmdir(it->c_str()) != 0 && errno == EBUSY; ++i) {
        std::this_thread::sleep_for(20ms);
      }
      EXPECT_NE(access(it->c_str(), F_OK), 0) << "left behind: " << *it;
    }
  }
  bool ok() const { return !mount_.empty(); }

  // A container's cgroup of pod `uid`: kubepods.slice/.../cri-containerd-<id>.scope (under this
  // run's own directory, so a real kubelet's hierarchy is never touched).
  std::string Container(const std::string& uid, const std::string& id) {
    const std::string relative = base_ + "/kubepods.slice/kubepods-besteffort.slice/" +
                                 PodSlice(uid) + "/cri-containerd-" + id + ".scope";
    size_t at = 0;
    while (at != std::string::npos) {
      at = relative.find('/', at + 1);
      const std::string dir = mount_ + relative.substr(0, at);
      if (mkdir(dir.c_str(), 0755) == 0) {
        made_.push_back(dir);
      } else {
        EXPECT_EQ(errno, EEXIST) << dir << ": " << std::strerror(errno);
      }
    }
    return mount_ + relative + "/cgroup.procs";
  }

  static void Move(const std::string& procs, pid_t pid) {
    std::ofstream out(procs);
    out << pid;
    out.flush();
    EXPECT_TRUE(out.good()) << "cannot move " << pid << " into " << procs;
  }

 private:
  static std::vector<std::string> Lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(line);
    }
    return out;
  }
  std::string mount_;
  std::string base_;
  std::vector<std::string> made_;
};

kube::PodSpec Pod(const std::string& name, const std::string& uid, const std::string& ip,
                  const std::string& container_name, const std::string& container_id) {
  kube::PodSpec p;
  p.ns = kNs;
  p.name = name;
  p.uid = uid;
  p.node = kHost;
  p.ips = {ip};
  p.containers = {{container_name, container_id}};
  return p;
}

class K8sEnrichment : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cgroups_.ok()) << "this test needs a cgroup2 mount";
    std::string error;
    api_ = kube::FakeApiServer::Start({}, &error);
    ASSERT_NE(api_, nullptr) << error;
    Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create();
    ASSERT_TRUE(pair.ok()) << pair.status().message();
    pair_ = std::move(pair).value();
    client_ip_ = pair_->a().ipv4;
    web_ip_ = pair_->b().ipv4;
    // Never routed: a ClusterIP only names the service.
    service_ip_ = SubnetIpv4(pair_->subnet() == 254 ? 253 : pair_->subnet() + 1, 10);
  }
  void TearDown() override {
    stack_.Stop();
    nginx_.reset();
  }

  // The cluster as the test starts it: deployment web (replicaset, one pod, service, slice) and a
  // bare client pod.
  void LoadCluster() {
    api_->Apply("deployments",
                kube::MakeDeployment(kNs, "web", "d0000000-0000-4000-8000-000000000001", 1));
    api_->Apply("replicasets",
                kube::MakeReplicaSet(kNs, "web-5d8f9c", "d0000000-0000-4000-8000-000000000002",
                                     "web", "d0000000-0000-4000-8000-000000000001", 1));
    kube::PodSpec web = Pod("web-5d8f9c-x7k2q", kWebUid, web_ip_, "nginx", kWebContainer);
    web.owner_kind = "ReplicaSet";
    web.owner_name = "web-5d8f9c";
    web.owner_uid = "d0000000-0000-4000-8000-000000000002";
    api_->Apply("pods", kube::MakePod(web));
    api_->Apply("services", kube::MakeService(kNs, "web", "d0000000-0000-4000-8000-000000000003",
                                              {service_ip_}, {{"app", "web"}}, {{"http", 80, 80}}));
    api_->Apply("endpointslices",
                kube::MakeEndpointSlice(kNs, "web-abc12", "web",
                                        {{web_ip_, kNs, "web-5d8f9c-x7k2q", kWebUid, kHost}},
                                        {{"http", 80}}));
    api_->Apply("nodes", kube::MakeNode(kHost, {"198.18.255.1"}, "198.18.0.0/16"));
    api_->Apply("pods",
                kube::MakePod(Pod("client", kClientUid, client_ip_, "curl", kClientContainer)));
  }

  // A kubeconfig whose user reads its token from a file (as a projected token is read), so the
  // test can rotate it.
  void WriteKubeconfig() {
    stack_.dir.Write("token", "test-token\n");
    stack_.dir.Write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        "clusters:\n- name: fake\n  cluster:\n    server: " +
            api_->url() + "\n    certificate-authority: " + api_->ca_file() +
            "\nusers:\n- name: reader\n  user:\n    tokenFile: " + stack_.dir.File("token") +
            "\ncontexts:\n- name: test\n  context:\n    cluster: fake\n"
            "    user: reader\n");
  }

  double Metric(const std::string& series) {
    return MetricValue(HttpGet(stack_.http_port, "/metrics"), series);
  }

  bool Synced() {
    const std::string exposition = HttpGet(stack_.http_port, "/metrics");
    for (const char* r : {"pods", "services", "endpointslices", "nodes", "replicasets",
                          "deployments", "daemonsets", "statefulsets", "jobs"}) {
      if (MetricValue(exposition, std::string("nodescope_k8s_synced{resource=\"") + r + "\"}") !=
          1) {
        return false;
      }
    }
    return true;
  }

  // curl, run in the client namespace from inside `procs` (a container's cgroup.procs).
  void Curl(const std::string& procs, int n) {
    for (int i = 0; i < n; ++i) {
      // nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup mount.
      CommandResult r =
          RunCommand({Which("nsenter"), "--net=/run/netns/" + pair_->ns(NetnsPair::Side::kA).name(),
                      "sh", "-c",
                      "echo 0 > " + procs + " && exec curl -sS -o /dev/null -w '%{http_code}' " +
                          nginx_->Url("/index.html", web_ip_)});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ASSERT_EQ(r.out, "200");
    }
  }

  // The first record of `source` whose tags hold every pair of `want`.
  std::optional<json> Find(const std::string& source,
                           const std::map<std::string, std::string>& want) {
    for (const json& r : stack_.Records(source)) {
      bool all = true;
      for (const auto& [k, v] : want) all = all && r["tags"].value(k, "") == v;
      if (all) return r;
    }
    return std::nullopt;
  }

  std::string K8sMetrics() {
    std::string out;
    std::istringstream in(HttpGet(stack_.http_port, "/metrics"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("nodescope_k8s", 0) == 0) out += line + "\n";
    }
    return out;
  }

  std::string Dump(const std::string& source) {
    std::string out;
    for (const json& r : stack_.Records(source)) out += r["tags"].dump() + "\n";
    return out;
  }

  CgroupTree cgroups_;  // first: removed after everything that runs in it is gone
  std::unique_ptr<kube::FakeApiServer> api_;
  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<Nginx> nginx_;
  NodeStack stack_;
  std::string client_ip_, web_ip_, service_ip_;
};

TEST_F(K8sEnrichment, RecordsNameThePodsOnBothSidesAndFollowAReusedAddress) {
  LoadCluster();
  WriteKubeconfig();
  ASSERT_TRUE(stack_.StartAggregator("kubeconfig: " + stack_.dir.File("kubeconfig") + "\n").ok())
      << (stack_.aggregator ? stack_.aggregator->Log() : "");
  ASSERT_TRUE(WaitFor([&] { return Synced(); }, 20s)) << stack_.aggregator->Log();
  EXPECT_EQ(Metric("nodescope_k8s_objects{resource=\"pods\"}"), 2);

  NginxOptions options;
  options.ns = &pair_->ns(NetnsPair::Side::kB);
  options.listen = {web_ip_};
  options.files = {{"/index.html", 4096}};
  Result<std::unique_ptr<Nginx>> nginx = Nginx::Start(options);
  ASSERT_TRUE(nginx.ok()) << nginx.status().message();
  nginx_ = std::move(nginx).value();
  const std::string web_procs = cgroups_.Container(kWebUid, kWebContainer);
  CgroupTree::Move(web_procs, nginx_->master_pid());
  for (pid_t worker : nginx_->worker_pids()) CgroupTree::Move(web_procs, worker);
  const std::string port = std::to_string(nginx_->port());

  ASSERT_TRUE(stack_
                  .StartSensor(kHost,
                               "interval: 1s\nenabled_plugins: [ebpf-net, ebpf-kernel]\n"
                               "ebpf_programs: [fd]\n")
                  .ok())
      << stack_.sensor->Log();
  const std::string client_procs = cgroups_.Container(kClientUid, kClientContainer);
  ASSERT_NO_FATAL_FAILURE(Curl(client_procs, 3));

  // curl's side: itself by its container, nginx by address, the service by endpointslice, the
  // deployment by the owner chain.
  const std::map<std::string, std::string> outgoing = {
      {"direction", "outgoing"}, {"process_name", "curl"}, {"dst_port", port}};
  ASSERT_TRUE(WaitFor([&] { return Find("netflow", outgoing) && Find("httpflow", outgoing); }, 20s))
      << Dump("netflow");
  for (const char* source : {"netflow", "httpflow"}) {
    SCOPED_TRACE(source);
    json t = (*Find(source, outgoing))["tags"];
    EXPECT_EQ(t.value("src_k8s_namespace", ""), kNs) << t;
    EXPECT_EQ(t.value("src_k8s_pod_name", ""), "client") << t;
    EXPECT_EQ(t.value("k8s_container_name", ""), "curl") << t;
    EXPECT_EQ(t.value("container_id", ""), kClientContainer) << t;
    EXPECT_FALSE(t.contains("src_k8s_deployment_name")) << t;  // a bare pod
    EXPECT_EQ(t.value("dst_k8s_namespace", ""), kNs) << t;
    EXPECT_EQ(t.value("dst_k8s_pod_name", ""), "web-5d8f9c-x7k2q") << t;
    EXPECT_EQ(t.value("dst_k8s_service_name", ""), "web") << t;
    EXPECT_EQ(t.value("dst_k8s_deployment_name", ""), "web") << t;
    EXPECT_EQ(t.value("sub_source", ""), "K8s") << t;
  }
  // nginx's side: the same conversation seen from the server pod.
  const std::map<std::string, std::string> incoming = {
      {"direction", "incoming"}, {"process_name", "nginx"}, {"src_port", port}};
  ASSERT_TRUE(WaitFor([&] { return Find("netflow", incoming) && Find("httpflow", incoming); }, 20s))
      << Dump("netflow");
  for (const char* source : {"netflow", "httpflow"}) {
    SCOPED_TRACE(source);
    json t = (*Find(source, incoming))["tags"];
    EXPECT_EQ(t.value("src_k8s_pod_name", ""), "web-5d8f9c-x7k2q") << t;
    EXPECT_EQ(t.value("src_k8s_service_name", ""), "web") << t;
    EXPECT_EQ(t.value("src_k8s_deployment_name", ""), "web") << t;
    EXPECT_EQ(t.value("k8s_container_name", ""), "nginx") << t;
    EXPECT_EQ(t.value("container_id", ""), kWebContainer) << t;
    EXPECT_EQ(t.value("dst_k8s_pod_name", ""), "client") << t;
    EXPECT_EQ(t.value("sub_source", ""), "K8s") << t;
  }
  // nginx's opens, per cgroup, carry its pod: the sensor named the cgroup's container, the
  // aggregator the container's pod.
  const std::string web_scope = "cri-containerd-" + kWebContainer + ".scope";
  auto pod_series = [&] {
    std::istringstream in(HttpGet(stack_.http_port, "/metrics"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("nodescope_fd_open_total{", 0) == 0 &&
          line.find(web_scope) != std::string::npos) {
        return line;
      }
    }
    return std::string();
  };
  ASSERT_TRUE(WaitFor([&] { return !pod_series().empty(); }, 20s)) << K8sMetrics();
  EXPECT_NE(pod_series().find("namespace=\"shop\""), std::string::npos) << pod_series();
  EXPECT_NE(pod_series().find("pod=\"web-5d8f9c-x7k2q\""), std::string::npos) << pod_series();

  // curl's exec is a process record of the client pod.
  EXPECT_TRUE(Find("process", {{"process_name", "curl"},
                               {"k8s_pod_name", "client"},
                               {"k8s_namespace", kNs},
                               {"k8s_container_name", "curl"}}))
      << Dump("process");

  // The API server forgets its history and ends every watch: resuming from the old version
  // gets 410 Gone, and the aggregator must list again. Then the token rotates: the file first,
  // as kubelet writes it before the old token stops working.
  api_->Compact();
  api_->CloseWatches();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric("nodescope_k8s_watch_restarts_total{reason=\"expired\",resource=\"pods\"}") >=
               1;
      },
      20s))
      << stack_.aggregator->Log() << K8sMetrics();
  ASSERT_TRUE(WaitFor([&] { return api_->open_watches() == 9; }, 20s));
  stack_.dir.Write("token", "rotated-token\n");
  api_->SetToken("rotated-token");
  api_->CloseWatches();
  const int unauthorized_before = api_->unauthorized();

  // The client pod goes; a batch pod gets its address.
  api_->Remove("pods", kNs, "client");
  kube::PodSpec batch = Pod("backup-28461", kBatchUid, client_ip_, "backup", kBatchContainer);
  batch.owner_kind = "Job";
  batch.owner_name = "backup";
  batch.owner_uid = "d0000000-0000-4000-8000-000000000004";
  api_->Apply("jobs", kube::MakeJob(kNs, "backup", "d0000000-0000-4000-8000-000000000004", ""));
  api_->Apply("pods", kube::MakePod(batch));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric("nodescope_k8s_watch_events_total{resource=\"pods\",type=\"deleted\"}") >=
                   1 &&
               Metric("nodescope_k8s_objects{resource=\"pods\"}") == 2;
      },
      20s))
      << stack_.aggregator->Log() << K8sMetrics();
  EXPECT_EQ(api_->unauthorized(), unauthorized_before) << "the rotated token was not re-read";

  ASSERT_NO_FATAL_FAILURE(Curl(cgroups_.Container(kBatchUid, kBatchContainer), 2));
  const std::map<std::string, std::string> batch_out = {
      {"direction", "outgoing"}, {"process_name", "curl"}, {"src_k8s_pod_name", "backup-28461"}};
  const std::map<std::string, std::string> web_in = {
      {"direction", "incoming"}, {"process_name", "nginx"}, {"dst_k8s_pod_name", "backup-28461"}};
  ASSERT_TRUE(WaitFor([&] { return Find("netflow", batch_out) && Find("netflow", web_in); }, 20s))
      << Dump("netflow");
  EXPECT_EQ((*Find("netflow", batch_out))["tags"].value("k8s_container_name", ""), "backup");
  // Records from before the change still name the client pod: nothing was rewritten.
  EXPECT_TRUE(Find("netflow", {{"direction", "incoming"}, {"dst_k8s_pod_name", "client"}}));
}

}  // namespace
}  // namespace nodescope::test
