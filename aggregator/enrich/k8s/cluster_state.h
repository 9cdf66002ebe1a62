// The cluster as the watcher last saw it, and the history enrichment needs: which pod held an
// address at a given time. A pod's IP is reused by another pod minutes after the first is gone;
// a record observed while the first held it must still name the first, even when it reaches the
// aggregator after the second appeared. So addresses map to time spans, not to pods.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "aggregator/enrich/k8s/objects.h"
#include "aggregator/enrich/metadata_source.h"

namespace nodescope::aggregator::enrich::k8s {

struct IpHash {
  size_t operator()(const net::IpAddress& ip) const;
};

class ClusterState final : public MetadataSource {
 public:
  // `history_ns`: how long an address, container or pod UID keeps naming a pod (or service) after
  // it let go of it; records can reach the aggregator up to a sensor interval plus its spool later.
  explicit ClusterState(int64_t history_ns) : history_ns_(history_ns) {}

  // Watch events, `now` being when the aggregator saw them.
  void UpsertPod(PodObject pod, int64_t now);
  void DeletePod(const std::string& uid, int64_t now);
  void UpsertWorkload(std::string_view kind, WorkloadObject workload);
  void DeleteWorkload(std::string_view kind, const ObjectKey& key);
  void UpsertService(ServiceObject service, int64_t now);
  void DeleteService(const ObjectKey& key, int64_t now);
  void UpsertEndpointSlice(EndpointSliceObject slice);
  void DeleteEndpointSlice(const ObjectKey& key);
  void UpsertNode(NodeObject node);
  void DeleteNode(const std::string& name);

  // A (re)list's snapshot of one resource: what it no longer has was deleted (a watch that
  // broke missed the DELETED events). `initial`: the first list since start, whose objects may
  // have held their addresses for any time before.
  void ReplacePods(std::vector<PodObject> pods, bool initial, int64_t now);
  void ReplaceWorkloads(std::string_view kind, std::vector<WorkloadObject> workloads);
  void ReplaceServices(std::vector<ServiceObject> services, bool initial, int64_t now);
  void ReplaceEndpointSlices(std::vector<EndpointSliceObject> slices);
  void ReplaceNodes(std::vector<NodeObject> nodes);

  // Forgets what stopped naming anything more than history_ns before `now`.
  void Prune(int64_t now);

  K8sNames ByIp(const net::IpAddress& ip, int64_t time_unix_nano) const override;
  K8sNames ByContainer(std::string_view container_id, std::string_view pod_uid) const override;
  // The node holding this address (InternalIP/ExternalIP), "" when none.
  std::string NodeByIp(const net::IpAddress& ip) const;

  struct Sizes {
    size_t pods = 0, deleted_pods = 0, workloads = 0, services = 0, endpoint_slices = 0, nodes = 0,
           addresses = 0, spans = 0, containers = 0;
  };
  Sizes sizes() const;

 private:
  using PodPtr = std::shared_ptr<const PodObject>;
  using ServicePtr = std::shared_ptr<const ServiceObject>;
  // [from, to) during which `holder` had an address; to == kOpen while it still does.
  template <typename T>
  struct Span {
    int64_t from;
    int64_t to;
    T holder;
  };
  template <typename T>
  using Spans = std::unordered_map<net::IpAddress, std::vector<Span<T>>, IpHash>;
  static constexpr int64_t kOpen = INT64_MAX;
  // A deleted pod, kept for records observed before it went, with the service it was in then.
  struct Grave {
    PodPtr pod;
    int64_t deleted;
    std::string service;
  };

  template <typename T>
  static void Hold(Spans<T>* spans, const net::IpAddress& ip, T holder, int64_t from, int64_t now);
  template <typename T>
  static void Release(Spans<T>* spans, const net::IpAddress& ip, const T& holder, int64_t now);
  template <typename T>
  static const T* At(const Spans<T>& spans, const net::IpAddress& ip, int64_t time);
  template <typename T>
  static size_t PruneSpans(Spans<T>* spans, int64_t before);

  void UpsertPodLocked(PodObject pod, bool initial, int64_t now);
  void DeletePodLocked(const std::string& uid, int64_t now);
  void UpsertServiceLocked(ServiceObject service, bool initial, int64_t now);
  void DeleteServiceLocked(const std::string& key, int64_t now);
  void UpsertEndpointSliceLocked(EndpointSliceObject slice);
  void UnindexSlice(const EndpointSliceObject& slice);
  void Describe(const PodObject& pod, K8sNames* out) const;
  // "ns/service" of the first endpoint slice listing one of the pod's addresses, or "".
  std::string_view ServiceOf(const PodObject& pod) const;

  const int64_t history_ns_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, PodPtr> pods_;      // live ones, by UID
  std::unordered_map<std::string, Grave> graveyard_;  // deleted ones until pruned, by UID
  std::unordered_map<std::string, std::pair<PodPtr, std::string>> containers_;  // id → pod, name
  Spans<PodPtr> pod_ips_;
  // "Kind/ns/name" → its controller; walked from a pod's owner up to the top.
  std::unordered_map<std::string, OwnerRef> workloads_;
  std::unordered_map<std::string, ServicePtr> services_;  // "ns/name"
  Spans<ServicePtr> service_ips_;
  // "ns/slice" → slice; an address → "ns/service" (a pod in several services: the first listed).
  std::unordered_map<std::string, EndpointSliceObject> slices_;
  std::unordered_map<net::IpAddress, std::vector<std::string>, IpHash> endpoints_;
  std::unordered_map<std::string, NodeObject> nodes_;
};

}  // namespace nodescope::aggregator::enrich::k8s
