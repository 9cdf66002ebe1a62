// Kubernetes API objects reduced to what enrichment needs. A pod as the API serves it is 5-10 KiB
// of JSON (managedFields, the container specs, conditions); what is kept here is ~200 bytes, which
// is what lets a 5,000-pod cluster fit in a few MiB of the aggregator.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/net/ip.h"
#include "common/status.h"

namespace nodescope::aggregator::enrich::k8s {

// The resources the watcher follows, in the order it starts them: owners before pods, so a pod's
// deployment is known when its first records arrive.
enum class Resource {
  kDeployments,
  kReplicaSets,
  kDaemonSets,
  kStatefulSets,
  kJobs,
  kNodes,
  kServices,
  kEndpointSlices,
  kPods,
};
inline constexpr Resource kAllResources[] = {
    Resource::kDeployments,  Resource::kReplicaSets,    Resource::kDaemonSets,
    Resource::kStatefulSets, Resource::kJobs,           Resource::kNodes,
    Resource::kServices,     Resource::kEndpointSlices, Resource::kPods};

std::string_view ResourceName(Resource r);  // "pods", "endpointslices", ...
std::string_view ResourcePath(Resource r);  // "/api/v1/pods", "/apis/apps/v1/replicasets", ...
std::string_view ResourceKind(Resource r);  // "Pod", "ReplicaSet", ...

// A controller ownerReference (the one with controller: true).
struct OwnerRef {
  std::string kind;  // "ReplicaSet", "Deployment", "DaemonSet", ...
  std::string name;
  bool operator==(const OwnerRef&) const = default;
};

struct ObjectKey {
  std::string ns;
  std::string name;
  bool operator==(const ObjectKey&) const = default;
};

struct PodObject {
  std::string uid, ns, name, node;
  OwnerRef owner;  // empty kind: a bare pod
  bool host_network = false;
  bool terminal = false;  // Succeeded or Failed: the kubelet released its IPs
  std::vector<net::IpAddress> ips;
  std::vector<std::pair<std::string, std::string>> containers;  // id (64 hex), name
  int64_t created_unix_nano = 0;
};

// ReplicaSet, Deployment, DaemonSet, StatefulSet, Job: only who controls them.
struct WorkloadObject {
  ObjectKey key;
  OwnerRef owner;
};

struct ServiceObject {
  ObjectKey key;
  std::vector<net::IpAddress> cluster_ips;  // "None" (headless) is no address
};

struct EndpointSliceObject {
  ObjectKey key;        // the slice's own name
  std::string service;  // label kubernetes.io/service-name
  std::vector<net::IpAddress> addresses;
};

struct NodeObject {
  std::string name;
  std::vector<net::IpAddress> addresses;  // InternalIP and ExternalIP
};

// Parses one object, list or watch event, dropping while parsing the subtrees enrichment never
// reads (managedFields, annotations, container specs, volumes, conditions...), so a page of 500
// pods never becomes a full DOM. Errors name what was wrong ("json: syntax error at byte 12").
Result<nlohmann::json> ParseSlim(std::string_view text);

// Each fails with a one-line reason when a field the object cannot be without (name, uid) is
// missing or of the wrong type; optional fields that are absent are left empty.
Result<PodObject> PodFrom(const nlohmann::json& object);
Result<WorkloadObject> WorkloadFrom(const nlohmann::json& object);
Result<ServiceObject> ServiceFrom(const nlohmann::json& object);
Result<EndpointSliceObject> EndpointSliceFrom(const nlohmann::json& object);
Result<NodeObject> NodeFrom(const nlohmann::json& object);

// "containerd://<id>", "cri-o://<id>", "docker://<id>" → "<id>"; "" when there is none.
std::string_view ContainerIdOf(std::string_view container_status_id);

// RFC 3339 as the API writes it ("2026-11-30T20:01:02Z", fractions allowed) → unix ns.
std::optional<int64_t> ParseTimestamp(std::string_view text);

}  // namespace nodescope::aggregator::enrich::k8s
