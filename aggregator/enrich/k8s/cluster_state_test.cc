#include "aggregator/enrich/k8s/cluster_state.h"

#include <gtest/gtest.h>

namespace nodescope::aggregator::enrich::k8s {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHistory = 600 * kSecond;

net::IpAddress Ip(std::string_view text) { return *net::IpAddress::Parse(text); }

PodObject Pod(std::string uid, std::string name, std::string ip, OwnerRef owner = {},
              int64_t created = 0) {
  PodObject pod;
  pod.uid = std::move(uid);
  pod.ns = "shop";
  pod.name = std::move(name);
  pod.node = "node-a";
  pod.owner = std::move(owner);
  if (!ip.empty()) pod.ips.push_back(Ip(ip));
  pod.created_unix_nano = created;
  return pod;
}

TEST(ClusterStateTest, AnAddressNamesThePodThatHeldItAtTheRecordsTime) {
  ClusterState state(kHistory);
  state.ReplacePods({Pod("uid-a", "cart-a", "198.18.1.5")}, /*initial=*/true, 100 * kSecond);
  // The first list's pods held their address since before the aggregator started.
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 1 * kSecond).pod, "cart-a");

  state.DeletePod("uid-a", 200 * kSecond);
  // A pod created before the first one let go of the address only gets it afterwards.
  state.UpsertPod(Pod("uid-b", "cart-b", "198.18.1.5", {}, 150 * kSecond), 210 * kSecond);

  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 199 * kSecond).pod, "cart-a");
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 200 * kSecond).pod, "cart-b");
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 500 * kSecond).pod, "cart-b");
  EXPECT_TRUE(state.ByIp(Ip("198.18.1.6"), 500 * kSecond).empty());

  // Once the history is over, the first pod is forgotten; the second still holds the address.
  state.Prune(200 * kSecond + kHistory + 1);
  EXPECT_TRUE(state.ByIp(Ip("198.18.1.5"), 199 * kSecond).empty());
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 199 * kSecond + kHistory).pod, "cart-b");
  EXPECT_EQ(state.sizes().deleted_pods, 0u);
}

TEST(ClusterStateTest, AStaleHolderLosesTheAddressToTheNextPod) {
  ClusterState state(kHistory);
  state.UpsertPod(Pod("uid-a", "a", "198.18.1.5", {}, 10 * kSecond), 10 * kSecond);
  // uid-a's DELETED was missed; uid-b now reports the same address.
  state.UpsertPod(Pod("uid-b", "b", "198.18.1.5", {}, 5 * kSecond), 50 * kSecond);
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 49 * kSecond).pod, "a");
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 50 * kSecond).pod, "b");
}

TEST(ClusterStateTest, APodThatFinishesOrUsesTheHostNetworkHasNoAddress) {
  ClusterState state(kHistory);
  PodObject job = Pod("uid-j", "backup-1", "198.18.1.9", {"Job", "backup"}, kSecond);
  state.UpsertPod(job, kSecond);
  job.terminal = true;
  state.UpsertPod(job, 30 * kSecond);
  EXPECT_EQ(state.ByIp(Ip("198.18.1.9"), 29 * kSecond).pod, "backup-1");
  EXPECT_TRUE(state.ByIp(Ip("198.18.1.9"), 30 * kSecond).empty());

  PodObject agent = Pod("uid-h", "agent", "198.18.0.1", {"DaemonSet", "agent"}, kSecond);
  agent.host_network = true;
  agent.containers = {{std::string(64, 'c'), "collector"}};
  state.UpsertPod(agent, kSecond);
  EXPECT_TRUE(state.ByIp(Ip("198.18.0.1"), 2 * kSecond).empty());
  K8sNames byc = state.ByContainer(std::string(64, 'c'), "");
  EXPECT_EQ(byc.pod, "agent");
  EXPECT_EQ(byc.container, "collector");
  EXPECT_EQ(state.ByContainer("", "uid-h").pod, "agent");
  EXPECT_TRUE(state.ByContainer(std::string(64, 'd'), "").empty());
}

TEST(ClusterStateTest, ARestartedContainersOldIdIsForgottenButItsPodUidStillNamesThePod) {
  ClusterState state(kHistory);
  PodObject pod = Pod("uid-a", "worker", "198.18.1.5");
  pod.containers = {{std::string(64, '1'), "main"}};
  state.UpsertPod(pod, kSecond);
  pod.containers = {{std::string(64, '2'), "main"}};
  state.UpsertPod(pod, 2 * kSecond);
  EXPECT_EQ(state.ByContainer(std::string(64, '2'), "").container, "main");
  EXPECT_TRUE(state.ByContainer(std::string(64, '1'), "").empty());
  EXPECT_EQ(state.ByContainer(std::string(64, '1'), "uid-a").pod, "worker");
  EXPECT_EQ(state.sizes().containers, 1u);
}

TEST(ClusterStateTest, DeploymentComesFromTheOwnerChainAndServiceFromEndpoints) {
  ClusterState state(kHistory);
  state.UpsertWorkload("ReplicaSet", {{"shop", "cart-7d9f"}, {"Deployment", "cart"}});
  state.UpsertWorkload("Job", {{"shop", "backup-28"}, {"CronJob", "backup"}});
  state.UpsertPod(Pod("uid-a", "cart-7d9f-x", "198.18.1.5", {"ReplicaSet", "cart-7d9f"}, 1),
                  kSecond);
  state.UpsertPod(Pod("uid-j", "backup-28-q", "198.18.1.6", {"Job", "backup-28"}, 1), kSecond);
  state.UpsertEndpointSlice({{"shop", "cart-abc12"}, "cart", {Ip("198.18.1.5")}});
  state.UpsertService({{"shop", "cart"}, {Ip("198.19.0.10")}}, kSecond);

  K8sNames pod = state.ByIp(Ip("198.18.1.5"), 2 * kSecond);
  EXPECT_EQ(pod.ns, "shop");
  EXPECT_EQ(pod.pod, "cart-7d9f-x");
  EXPECT_EQ(pod.deployment, "cart");
  EXPECT_EQ(pod.service, "cart");
  EXPECT_EQ(pod.container, "");

  K8sNames job = state.ByIp(Ip("198.18.1.6"), 2 * kSecond);
  EXPECT_EQ(job.deployment, "");  // a CronJob is no deployment
  EXPECT_EQ(job.service, "");

  K8sNames cluster_ip = state.ByIp(Ip("198.19.0.10"), 2 * kSecond);
  EXPECT_EQ(cluster_ip.ns, "shop");
  EXPECT_EQ(cluster_ip.service, "cart");
  EXPECT_EQ(cluster_ip.pod, "");
  // A service that did not exist yet names nothing.
  EXPECT_TRUE(state.ByIp(Ip("198.19.0.10"), kSecond / 2).empty());

  // A deleted pod keeps the service it was in, although its address left the slice.
  state.UpsertEndpointSlice({{"shop", "cart-abc12"}, "cart", {}});
  state.UpsertEndpointSlice({{"shop", "cart-abc12"}, "cart", {Ip("198.18.1.5")}});
  state.DeletePod("uid-a", 3 * kSecond);
  state.DeleteEndpointSlice({"shop", "cart-abc12"});
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 2 * kSecond).service, "cart");

  state.DeleteWorkload("ReplicaSet", {"shop", "cart-7d9f"});
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 2 * kSecond).deployment, "");
}

TEST(ClusterStateTest, ARelistDeletesWhatItNoLongerHas) {
  ClusterState state(kHistory);
  state.ReplacePods({Pod("uid-a", "a", "198.18.1.5"), Pod("uid-b", "b", "198.18.1.6")},
                    /*initial=*/true, 10 * kSecond);
  state.ReplacePods({Pod("uid-b", "b", "198.18.1.6"), Pod("uid-c", "c", "198.18.1.5", {}, 0)},
                    /*initial=*/false, 40 * kSecond);
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 39 * kSecond).pod, "a");
  EXPECT_EQ(state.ByIp(Ip("198.18.1.5"), 41 * kSecond).pod, "c");
  EXPECT_EQ(state.ByIp(Ip("198.18.1.6"), 41 * kSecond).pod, "b");
  EXPECT_EQ(state.sizes().pods, 2u);
  EXPECT_EQ(state.sizes().deleted_pods, 1u);

  state.ReplaceServices({{{"shop", "cart"}, {Ip("198.19.0.10")}}}, true, 10 * kSecond);
  state.ReplaceServices({}, false, 20 * kSecond);
  EXPECT_EQ(state.ByIp(Ip("198.19.0.10"), 19 * kSecond).service, "cart");
  EXPECT_TRUE(state.ByIp(Ip("198.19.0.10"), 20 * kSecond).empty());

  state.ReplaceWorkloads("ReplicaSet", {{{"shop", "x"}, {"Deployment", "d"}}});
  state.ReplaceWorkloads("Job", {{{"shop", "x"}, {"CronJob", "c"}}});
  state.ReplaceWorkloads("ReplicaSet", {});
  EXPECT_EQ(state.sizes().workloads, 1u);  // the Job stays
}

TEST(ClusterStateTest, NodesAreFoundByAddress) {
  ClusterState state(kHistory);
  state.ReplaceNodes({{"node-a", {Ip("198.18.0.1")}}, {"node-b", {Ip("198.18.0.2")}}});
  EXPECT_EQ(state.NodeByIp(Ip("198.18.0.2")), "node-b");
  state.DeleteNode("node-b");
  EXPECT_EQ(state.NodeByIp(Ip("198.18.0.2")), "");
}

}  // namespace
}  // namespace nodescope::aggregator::enrich::k8s
