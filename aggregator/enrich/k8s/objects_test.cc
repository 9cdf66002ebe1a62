#include "aggregator/enrich/k8s/objects.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace nodescope::aggregator::enrich::k8s {

std::string CheckFuzzInput(const uint8_t* data, size_t size);  // fuzz.cc

namespace {

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(NS_K8S_TESTDATA) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ObjectsTest, APodKeepsWhatEnrichmentReadsAndNothingElse) {
  const std::string text = ReadTestdata("pod.json");
  ASSERT_FALSE(text.empty());
  Result<nlohmann::json> slim = ParseSlim(text);
  ASSERT_TRUE(slim.ok()) << slim.status().message();
  EXPECT_FALSE(slim->at("metadata").contains("managedFields"));
  EXPECT_FALSE(slim->at("metadata").contains("annotations"));
  EXPECT_FALSE(slim->at("spec").contains("containers"));
  EXPECT_FALSE(slim->at("spec").contains("volumes"));
  EXPECT_FALSE(slim->at("status").contains("conditions"));
  EXPECT_LT(slim->dump().size(), nlohmann::json::parse(text).dump().size() / 2);

  Result<PodObject> pod = PodFrom(*slim);
  ASSERT_TRUE(pod.ok()) << pod.status().message();
  EXPECT_EQ(pod->uid, "5f1c2a3b-6d7e-4f80-9a1b-2c3d4e5f6a7b");
  EXPECT_EQ(pod->ns, "shop");
  EXPECT_EQ(pod->name, "cart-7d9f5c6b8d-x2x4q");
  EXPECT_EQ(pod->node, "node-a");
  EXPECT_EQ(pod->owner, (OwnerRef{"ReplicaSet", "cart-7d9f5c6b8d"}));
  EXPECT_FALSE(pod->host_network);
  EXPECT_FALSE(pod->terminal);
  ASSERT_EQ(pod->ips.size(), 2u);
  EXPECT_EQ(pod->ips[0].ToString(), "198.18.3.7");
  EXPECT_EQ(pod->ips[1].ToString(), "fd00:198:18::3:7");
  ASSERT_EQ(pod->containers.size(), 2u);
  EXPECT_EQ(pod->containers[0].first,
            "9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9");
  EXPECT_EQ(pod->containers[0].second, "cart");
  EXPECT_EQ(pod->containers[1].second, "proxy");
  EXPECT_EQ(pod->created_unix_nano, *ParseTimestamp("2026-11-30T20:01:02Z"));
}

TEST(ObjectsTest, ServicesSlicesNodesAndWorkloads) {
  auto service =
      ServiceFrom(nlohmann::json::parse(R"({"metadata":{"name":"cart","namespace":"shop"},
      "spec":{"clusterIP":"198.19.0.10","clusterIPs":["198.19.0.10","fd00:198:18::a"]}})"));
  ASSERT_TRUE(service.ok());
  ASSERT_EQ(service->cluster_ips.size(), 2u);
  auto headless = ServiceFrom(nlohmann::json::parse(
      R"({"metadata":{"name":"db","namespace":"shop"},"spec":{"clusterIP":"None"}})"));
  ASSERT_TRUE(headless.ok());
  EXPECT_TRUE(headless->cluster_ips.empty());

  auto slice = EndpointSliceFrom(nlohmann::json::parse(R"({"metadata":{"name":"cart-abc12",
      "namespace":"shop","labels":{"kubernetes.io/service-name":"cart"}},
      "endpoints":[{"addresses":["198.18.3.7"],"conditions":{"ready":true}},
                   {"addresses":["198.18.3.8"]}]})"));
  ASSERT_TRUE(slice.ok());
  EXPECT_EQ(slice->service, "cart");
  EXPECT_EQ(slice->addresses.size(), 2u);

  auto node = NodeFrom(nlohmann::json::parse(R"({"metadata":{"name":"node-a"},"status":{
      "addresses":[{"type":"InternalIP","address":"198.18.0.1"},{"type":"Hostname",
      "address":"node-a"}]}})"));
  ASSERT_TRUE(node.ok());
  ASSERT_EQ(node->addresses.size(), 1u);

  auto rs = WorkloadFrom(nlohmann::json::parse(R"({"metadata":{"name":"cart-7d9f",
      "namespace":"shop","ownerReferences":[{"kind":"Other","name":"x"},
      {"kind":"Deployment","name":"cart","controller":true}]}})"));
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(rs->owner, (OwnerRef{"Deployment", "cart"}));
}

TEST(ObjectsTest, BadObjectsSayWhatIsWrong) {
  EXPECT_EQ(PodFrom(nlohmann::json::parse(R"({"metadata":{"name":"p"}})")).status().message(),
            "pod p: metadata.uid is missing");
  EXPECT_EQ(PodFrom(nlohmann::json::parse(R"([1])")).status().message(), "pod: not a JSON object");
  EXPECT_EQ(ServiceFrom(nlohmann::json::parse(R"({"metadata":{}})")).status().message(),
            "service: metadata.name is missing");
  Result<nlohmann::json> bad = ParseSlim(R"({"kind": )");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("json: "), std::string::npos);
  EXPECT_NE(bad.status().message().find("syntax error"), std::string::npos);
}

TEST(ObjectsTest, TimestampsAndContainerIds) {
  EXPECT_EQ(*ParseTimestamp("1970-01-01T00:00:01Z"), 1'000'000'000);
  EXPECT_EQ(*ParseTimestamp("1970-01-01T00:00:01.5Z"), 1'500'000'000);
  EXPECT_EQ(*ParseTimestamp("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_FALSE(ParseTimestamp("yesterday").has_value());
  EXPECT_FALSE(ParseTimestamp("1970-01-01T00:00:01").has_value());
  // Found by fuzz_k8s_objects: a year whose nanoseconds do not fit an int64 overflowed.
  EXPECT_FALSE(ParseTimestamp("1642-11-30T20:01:02Z").has_value());
  EXPECT_FALSE(ParseTimestamp("2026-13-30T20:01:02Z").has_value());
  EXPECT_FALSE(ParseTimestamp("2026-+1-30T20:01:02Z").has_value());
  EXPECT_TRUE(ParseTimestamp("2261-12-31T23:59:59Z").has_value());
  EXPECT_EQ(ContainerIdOf("containerd://abc"), "abc");
  EXPECT_EQ(ContainerIdOf("cri-o://abc"), "abc");
  EXPECT_EQ(ContainerIdOf(""), "");
}

TEST(ObjectsTest, FuzzCorpusKeepsItsInvariants) {
  size_t files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(NS_K8S_TESTDATA) + "/fuzz")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string bytes = text.str();
    EXPECT_EQ(CheckFuzzInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "")
        << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5u);
}

}  // namespace
}  // namespace nodescope::aggregator::enrich::k8s
