// Kubernetes tags on flow, process and bash records, from a ClusterState fed like the watcher
// feeds it.
#include <gtest/gtest.h>

#include "aggregator/enrich/k8s/cluster_state.h"
#include "aggregator/ingest/convert.h"
#include "aggregator/ingest/convert_testing.h"
#include "common/records/record.h"

namespace nodescope::aggregator::ingest {
namespace {

using namespace testing;
using enrich::k8s::ClusterState;
using enrich::k8s::PodObject;
using records::FindTag;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kT0 = 1'763'776'000 * kSecond;
const std::string kCartContainer(64, 'a');
const std::string kAgentContainer(64, 'b');

net::IpAddress Ip(std::string_view text) { return *net::IpAddress::Parse(text); }

PodObject Pod(std::string uid, std::string name, std::string ip, std::string container,
              enrich::k8s::OwnerRef owner) {
  PodObject pod;
  pod.uid = std::move(uid);
  pod.ns = "shop";
  pod.name = std::move(name);
  pod.node = "node-1";
  pod.owner = std::move(owner);
  pod.ips = {Ip(ip)};
  pod.containers = {{std::move(container), "main"}};
  pod.created_unix_nano = kT0 - 100 * kSecond;
  return pod;
}

class ConvertK8sTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_.UpsertWorkload("ReplicaSet", {{"shop", "cart-7d9f"}, {"Deployment", "cart"}});
    state_.UpsertPod(
        Pod("uid-cart", "cart-7d9f-x", "198.18.3.7", kCartContainer, {"ReplicaSet", "cart-7d9f"}),
        kT0 - 90 * kSecond);
    state_.UpsertPod(
        Pod("uid-pay", "pay-0", "198.18.3.9", std::string(64, 'c'), {"StatefulSet", "pay"}),
        kT0 - 90 * kSecond);
    PodObject agent =
        Pod("uid-agent", "agent-q2", "198.18.0.1", kAgentContainer, {"DaemonSet", "agent"});
    agent.host_network = true;
    state_.UpsertPod(agent, kT0 - 90 * kSecond);
    state_.UpsertEndpointSlice({{"shop", "cart-x1"}, "cart", {Ip("198.18.3.7")}});
    state_.UpsertEndpointSlice({{"shop", "pay-x1"}, "pay", {Ip("198.18.3.9")}});
    state_.ReplaceServices({{{"shop", "pay"}, {Ip("198.19.0.20")}}}, /*initial=*/true, kT0);
  }

  v1::Record Netflow(const v1::NetflowEvent& e, int64_t time = kT0) {
    RecordBatch batch;
    BatchContext context{fixture_.node, fixture_.extra, &state_};
    EXPECT_TRUE(ConvertNetflow(e, time, context, &batch));
    return batch[0];
  }

  static v1::NetflowEvent Flow(std::initializer_list<int> src, std::initializer_list<int> dst) {
    v1::NetflowEvent e;
    SetCurlTuple(&e);
    e.set_src_ip(Bytes(src));
    e.set_dst_ip(Bytes(dst));
    return e;
  }

  static std::string Tag(const v1::Record& r, std::string_view key) {
    const std::string* v = FindTag(r, key);
    return v == nullptr ? "<absent>" : *v;
  }

  Fixture fixture_;
  ClusterState state_{600 * kSecond};
};

TEST_F(ConvertK8sTest, BothSidesOfAServiceCallThroughDnat) {
  // cart dials the pay service's ClusterIP; the node's DNAT sent it to pay-0.
  v1::NetflowEvent e = Flow({198, 18, 3, 7}, {198, 19, 0, 20});
  e.set_dst_nat_ip(Bytes({198, 18, 3, 9}));
  e.set_dst_nat_port(8080);
  e.mutable_container()->set_id(kCartContainer);
  e.mutable_container()->set_pod_uid("uid-cart");
  v1::Record r = Netflow(e);
  EXPECT_EQ(Tag(r, "src_k8s_namespace"), "shop");
  EXPECT_EQ(Tag(r, "src_k8s_pod_name"), "cart-7d9f-x");
  EXPECT_EQ(Tag(r, "src_k8s_service_name"), "cart");
  EXPECT_EQ(Tag(r, "src_k8s_deployment_name"), "cart");
  EXPECT_EQ(Tag(r, "k8s_container_name"), "main");
  EXPECT_EQ(Tag(r, "container_id"), kCartContainer);
  EXPECT_EQ(Tag(r, "dst_k8s_namespace"), "shop");
  EXPECT_EQ(Tag(r, "dst_k8s_pod_name"), "pay-0");
  EXPECT_EQ(Tag(r, "dst_k8s_service_name"), "pay");
  EXPECT_EQ(Tag(r, "dst_k8s_deployment_name"), "<absent>");  // a StatefulSet's pod
  EXPECT_EQ(Tag(r, "sub_source"), "K8s");

  // Without the translation the ClusterIP names only the service.
  v1::Record plain = Netflow(Flow({198, 18, 3, 7}, {198, 19, 0, 20}));
  EXPECT_EQ(Tag(plain, "dst_k8s_service_name"), "pay");
  EXPECT_EQ(Tag(plain, "dst_k8s_pod_name"), "<absent>");
  EXPECT_EQ(Tag(plain, "src_k8s_pod_name"), "cart-7d9f-x");  // by address, no container sent
  EXPECT_EQ(Tag(plain, "k8s_container_name"), "<absent>");
}

TEST_F(ConvertK8sTest, AHostNetworkPodIsFoundByItsContainerNotItsAddress) {
  v1::NetflowEvent e = Flow({198, 18, 0, 1}, {198, 18, 3, 9});
  v1::Record by_address = Netflow(e);
  EXPECT_EQ(Tag(by_address, "src_k8s_pod_name"), "<absent>");
  EXPECT_EQ(Tag(by_address, "dst_k8s_pod_name"), "pay-0");

  e.mutable_container()->set_id(kAgentContainer);
  v1::Record r = Netflow(e);
  EXPECT_EQ(Tag(r, "src_k8s_pod_name"), "agent-q2");
  EXPECT_EQ(Tag(r, "k8s_container_name"), "main");

  // Before the pod reports its container ids, the pod UID from the cgroup path is enough.
  e.mutable_container()->set_id(std::string(64, 'e'));
  e.mutable_container()->set_pod_uid("uid-agent");
  v1::Record by_uid = Netflow(e);
  EXPECT_EQ(Tag(by_uid, "src_k8s_pod_name"), "agent-q2");
  EXPECT_EQ(Tag(by_uid, "k8s_container_name"), "<absent>");
}

TEST_F(ConvertK8sTest, AReusedAddressNamesThePodOfTheRecordsTime) {
  state_.DeletePod("uid-pay", kT0 + 10 * kSecond);
  PodObject next =
      Pod("uid-pay2", "pay-1", "198.18.3.9", std::string(64, 'd'), {"StatefulSet", "pay"});
  next.created_unix_nano = kT0 + 5 * kSecond;
  state_.UpsertPod(next, kT0 + 20 * kSecond);
  const v1::NetflowEvent e = Flow({198, 18, 3, 7}, {198, 18, 3, 9});
  EXPECT_EQ(Tag(Netflow(e, kT0 + 9 * kSecond), "dst_k8s_pod_name"), "pay-0");
  EXPECT_EQ(Tag(Netflow(e, kT0 + 9 * kSecond), "dst_k8s_service_name"), "pay");
  EXPECT_EQ(Tag(Netflow(e, kT0 + 11 * kSecond), "dst_k8s_pod_name"), "pay-1");
}

TEST_F(ConvertK8sTest, TrafficOutsideTheClusterHasNoKubernetesTags) {
  v1::Record r = Netflow(Flow({127, 0, 0, 1}, {198, 18, 200, 1}));
  for (const v1::Tag& t : r.tags()) {
    EXPECT_EQ(t.key().find("k8s"), std::string::npos) << t.key();
    EXPECT_NE(t.key(), "sub_source");
  }
  // Enrichment off: the container id still shows, no names.
  v1::NetflowEvent e = Flow({198, 18, 3, 7}, {198, 18, 3, 9});
  e.mutable_container()->set_id(kCartContainer);
  RecordBatch batch;
  ASSERT_TRUE(ConvertNetflow(e, kT0, fixture_.context(), &batch));
  EXPECT_EQ(Tag(batch[0], "container_id"), kCartContainer);
  EXPECT_EQ(Tag(batch[0], "src_k8s_pod_name"), "<absent>");
}

TEST_F(ConvertK8sTest, ProcessAndBashRecordsNameTheirPod) {
  BatchContext context{fixture_.node, fixture_.extra, &state_};
  v1::ProcessEvent p;
  p.set_kind(v1::ProcessEvent::EXEC);
  p.set_pid(77);
  p.set_process_name("python3");
  p.mutable_container()->set_id(kCartContainer);
  v1::BashEvent b;
  b.set_cmd("ls");
  b.mutable_container()->set_id(kCartContainer);
  RecordBatch batch;
  ASSERT_TRUE(ConvertProcess(p, kT0, context, &batch));
  ASSERT_TRUE(ConvertBash(b, kT0, context, &batch));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(Tag(batch[i], "k8s_namespace"), "shop");
    EXPECT_EQ(Tag(batch[i], "k8s_pod_name"), "cart-7d9f-x");
    EXPECT_EQ(Tag(batch[i], "k8s_container_name"), "main");
    EXPECT_EQ(Tag(batch[i], "k8s_deployment_name"), "cart");
    EXPECT_EQ(Tag(batch[i], "sub_source"), "K8s");
  }
}

}  // namespace
}  // namespace nodescope::aggregator::ingest
