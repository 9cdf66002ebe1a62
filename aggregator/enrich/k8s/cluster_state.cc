#include "aggregator/enrich/k8s/cluster_state.h"

#include <algorithm>
#include <mutex>
#include <unordered_set>

namespace nodescope::aggregator::enrich::k8s {

namespace {

// Owner chains are short (Pod → ReplicaSet → Deployment, Pod → Job → CronJob); a bound keeps a
// cycle in hostile or broken data from looping.
constexpr int kMaxOwnerDepth = 4;

std::string KeyText(const ObjectKey& key) { return key.ns + "/" + key.name; }

std::string WorkloadKey(std::string_view kind, std::string_view ns, std::string_view name) {
  std::string key;
  key.reserve(kind.size() + ns.size() + name.size() + 2);
  key.append(kind).append("/").append(ns).append("/").append(name);
  return key;
}

// Who a span belongs to, across the new object a MODIFIED event makes.
const std::string& IdOf(const std::shared_ptr<const PodObject>& pod) { return pod->uid; }
const ObjectKey& IdOf(const std::shared_ptr<const ServiceObject>& service) { return service->key; }

bool Contains(const std::vector<net::IpAddress>& ips, const net::IpAddress& ip) {
  return std::find(ips.begin(), ips.end(), ip) != ips.end();
}

}  // namespace

size_t IpHash::operator()(const net::IpAddress& ip) const {
  // FNV-1a over the raw bytes: addresses of one cluster differ in their last bytes.
  uint64_t h = 1469598103934665603ull ^ (ip.v6 ? 1u : 0u);
  for (uint8_t b : ip.Raw()) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

template <typename T>
void ClusterState::Hold(Spans<T>* spans, const net::IpAddress& ip, T holder, int64_t from,
                        int64_t now) {
  std::vector<Span<T>>& v = (*spans)[ip];
  if (!v.empty() && v.back().to == kOpen) {
    if (IdOf(v.back().holder) == IdOf(holder)) {
      v.back().holder = std::move(holder);  // the same object, updated
      return;
    }
    // Another holder still has it: its release was missed (a broken watch); it ends now.
    v.back().to = now;
  }
  if (!v.empty()) from = std::max(from, v.back().to);
  v.push_back({from, kOpen, std::move(holder)});
}

template <typename T>
void ClusterState::Release(Spans<T>* spans, const net::IpAddress& ip, const T& holder,
                           int64_t now) {
  auto it = spans->find(ip);
  if (it == spans->end() || it->second.empty()) return;
  Span<T>& last = it->second.back();
  if (last.to == kOpen && IdOf(last.holder) == IdOf(holder)) last.to = std::max(now, last.from);
}

template <typename T>
const T* ClusterState::At(const Spans<T>& spans, const net::IpAddress& ip, int64_t time) {
  auto it = spans.find(ip);
  if (it == spans.end()) return nullptr;
  for (auto span = it->second.rbegin(); span != it->second.rend(); ++span) {
    if (span->from <= time && time < span->to) return &span->holder;
  }
  return nullptr;
}

template <typename T>
size_t ClusterState::PruneSpans(Spans<T>* spans, int64_t before) {
  size_t removed = 0;
  for (auto it = spans->begin(); it != spans->end();) {
    auto& v = it->second;
    auto keep = std::remove_if(v.begin(), v.end(),
                               [&](const Span<T>& s) { return s.to != kOpen && s.to < before; });
    removed += static_cast<size_t>(v.end() - keep);
    v.erase(keep, v.end());
    if (v.empty()) {
      it = spans->erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

void ClusterState::UpsertPodLocked(PodObject object, bool initial, int64_t now) {
  auto pod = std::make_shared<const PodObject>(std::move(object));
  const bool addressable = !pod->host_network && !pod->terminal;
  auto old = pods_.find(pod->uid);
  if (old != pods_.end()) {
    for (const net::IpAddress& ip : old->second->ips) {
      if (!addressable || !Contains(pod->ips, ip)) Release(&pod_ips_, ip, old->second, now);
    }
    // A restarted container's old id goes: a crash-looping pod would otherwise add one entry per
    // restart for as long as it lives. Late records of the old container still find the pod by
    // the pod UID the sensor sends with the id.
    for (const auto& [id, name] : old->second->containers) {
      auto c = containers_.find(id);
      if (c != containers_.end() && c->second.first->uid == pod->uid) containers_.erase(c);
    }
  }
  if (addressable) {
    // The first list cannot say since when an existing pod had its address: since ever.
    const int64_t from = initial ? 0 : (pod->created_unix_nano > 0 ? pod->created_unix_nano : now);
    for (const net::IpAddress& ip : pod->ips) Hold(&pod_ips_, ip, pod, std::min(from, now), now);
  }
  for (const auto& [id, name] : pod->containers) containers_[id] = {pod, name};
  graveyard_.erase(pod->uid);
  pods_[pod->uid] = std::move(pod);
}

void ClusterState::DeletePodLocked(const std::string& uid, int64_t now) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  PodPtr pod = it->second;
  for (const net::IpAddress& ip : pod->ips) Release(&pod_ips_, ip, pod, now);
  // Its service is looked up now: the address may serve another pod's service tomorrow.
  graveyard_[uid] = Grave{pod, now, std::string(ServiceOf(*pod))};
  pods_.erase(it);
}

void ClusterState::UpsertPod(PodObject pod, int64_t now) {
  std::unique_lock lock(mu_);
  UpsertPodLocked(std::move(pod), /*initial=*/false, now);
}

void ClusterState::DeletePod(const std::string& uid, int64_t now) {
  std::unique_lock lock(mu_);
  DeletePodLocked(uid, now);
}

void ClusterState::ReplacePods(std::vector<PodObject> pods, bool initial, int64_t now) {
  std::unique_lock lock(mu_);
  std::unordered_set<std::string> listed;
  for (const PodObject& pod : pods) listed.insert(pod.uid);
  std::vector<std::string> gone;
  for (const auto& [uid, pod] : pods_) {
    if (!listed.contains(uid)) gone.push_back(uid);
  }
  for (const std::string& uid : gone) DeletePodLocked(uid, now);
  for (PodObject& pod : pods) UpsertPodLocked(std::move(pod), initial, now);
}

void ClusterState::UpsertWorkload(std::string_view kind, WorkloadObject workload) {
  std::unique_lock lock(mu_);
  workloads_[WorkloadKey(kind, workload.key.ns, workload.key.name)] = std::move(workload.owner);
}

void ClusterState::DeleteWorkload(std::string_view kind, const ObjectKey& key) {
  std::unique_lock lock(mu_);
  workloads_.erase(WorkloadKey(kind, key.ns, key.name));
}

void ClusterState::ReplaceWorkloads(std::string_view kind, std::vector<WorkloadObject> workloads) {
  std::unique_lock lock(mu_);
  const std::string prefix = std::string(kind) + "/";
  std::erase_if(workloads_, [&](const auto& entry) { return entry.first.starts_with(prefix); });
  for (WorkloadObject& w : workloads) {
    workloads_[WorkloadKey(kind, w.key.ns, w.key.name)] = std::move(w.owner);
  }
}

void ClusterState::UpsertServiceLocked(ServiceObject object, bool initial, int64_t now) {
  const std::string key = KeyText(object.key);
  auto service = std::make_shared<const ServiceObject>(std::move(object));
  auto old = services_.find(key);
  if (old != services_.end()) {
    for (const net::IpAddress& ip : old->second->cluster_ips) {
      if (!Contains(service->cluster_ips, ip)) Release(&service_ips_, ip, old->second, now);
    }
  }
  for (const net::IpAddress& ip : service->cluster_ips) {
    Hold(&service_ips_, ip, service, initial ? 0 : now, now);
  }
  services_[key] = std::move(service);
}

void ClusterState::DeleteServiceLocked(const std::string& key, int64_t now) {
  auto it = services_.find(key);
  if (it == services_.end()) return;
  for (const net::IpAddress& ip : it->second->cluster_ips) {
    Release(&service_ips_, ip, it->second, now);
  }
  services_.erase(it);
}

void ClusterState::UpsertService(ServiceObject service, int64_t now) {
  std::unique_lock lock(mu_);
  UpsertServiceLocked(std::move(service), /*initial=*/false, now);
}

void ClusterState::DeleteService(const ObjectKey& key, int64_t now) {
  std::unique_lock lock(mu_);
  DeleteServiceLocked(KeyText(key), now);
}

void ClusterState::ReplaceServices(std::vector<ServiceObject> services, bool initial, int64_t now) {
  std::unique_lock lock(mu_);
  std::unordered_set<std::string> listed;
  for (const ServiceObject& s : services) listed.insert(KeyText(s.key));
  std::vector<std::string> gone;
  for (const auto& [key, s] : services_) {
    if (!listed.contains(key)) gone.push_back(key);
  }
  for (const std::string& key : gone) DeleteServiceLocked(key, now);
  for (ServiceObject& s : services) UpsertServiceLocked(std::move(s), initial, now);
}

std::string_view ClusterState::ServiceOf(const PodObject& pod) const {
  for (const net::IpAddress& ip : pod.ips) {
    auto e = endpoints_.find(ip);
    if (e != endpoints_.end() && !e->second.empty()) return e->second.front();
  }
  return {};
}

void ClusterState::UnindexSlice(const EndpointSliceObject& slice) {
  const std::string service = slice.key.ns + "/" + slice.service;
  for (const net::IpAddress& ip : slice.addresses) {
    auto e = endpoints_.find(ip);
    if (e == endpoints_.end()) continue;
    auto at = std::find(e->second.begin(), e->second.end(), service);
    if (at != e->second.end()) e->second.erase(at);
    if (e->second.empty()) endpoints_.erase(e);
  }
}

void ClusterState::UpsertEndpointSliceLocked(EndpointSliceObject slice) {
  const std::string key = KeyText(slice.key);
  auto old = slices_.find(key);
  if (old != slices_.end()) UnindexSlice(old->second);
  if (!slice.service.empty()) {
    const std::string service = slice.key.ns + "/" + slice.service;
    for (const net::IpAddress& ip : slice.addresses) endpoints_[ip].push_back(service);
  }
  slices_[key] = std::move(slice);
}

void ClusterState::UpsertEndpointSlice(EndpointSliceObject slice) {
  std::unique_lock lock(mu_);
  UpsertEndpointSliceLocked(std::move(slice));
}

void ClusterState::DeleteEndpointSlice(const ObjectKey& key) {
  std::unique_lock lock(mu_);
  auto it = slices_.find(KeyText(key));
  if (it == slices_.end()) return;
  UnindexSlice(it->second);
  slices_.erase(it);
}

void ClusterState::ReplaceEndpointSlices(std::vector<EndpointSliceObject> slices) {
  std::unique_lock lock(mu_);
  slices_.clear();
  endpoints_.clear();
  for (EndpointSliceObject& slice : slices) UpsertEndpointSliceLocked(std::move(slice));
}

void ClusterState::UpsertNode(NodeObject node) {
  std::unique_lock lock(mu_);
  std::string name = node.name;
  nodes_[name] = std::move(node);
}

void ClusterState::DeleteNode(const std::string& name) {
  std::unique_lock lock(mu_);
  nodes_.erase(name);
}

void ClusterState::ReplaceNodes(std::vector<NodeObject> nodes) {
  std::unique_lock lock(mu_);
  nodes_.clear();
  for (NodeObject& node : nodes) {
    std::string name = node.name;
    nodes_[name] = std::move(node);
  }
}

void ClusterState::Prune(int64_t now) {
  std::unique_lock lock(mu_);
  const int64_t before = now - history_ns_;
  PruneSpans(&pod_ips_, before);
  PruneSpans(&service_ips_, before);
  for (auto it = graveyard_.begin(); it != graveyard_.end();) {
    if (it->second.deleted >= before) {
      ++it;
      continue;
    }
    for (const auto& [id, name] : it->second.pod->containers) {
      auto c = containers_.find(id);
      if (c != containers_.end() && c->second.first == it->second.pod) containers_.erase(c);
    }
    it = graveyard_.erase(it);
  }
}

void ClusterState::Describe(const PodObject& pod, K8sNames* out) const {
  out->ns = pod.ns;
  out->pod = pod.name;
  OwnerRef owner = pod.owner;
  for (int depth = 0; depth < kMaxOwnerDepth && !owner.kind.empty(); ++depth) {
    if (owner.kind == "Deployment") {
      out->deployment = owner.name;
      break;
    }
    auto next = workloads_.find(WorkloadKey(owner.kind, pod.ns, owner.name));
    if (next == workloads_.end()) break;
    owner = next->second;
  }
  auto grave = graveyard_.find(pod.uid);
  const std::string_view service =
      grave != graveyard_.end() ? std::string_view(grave->second.service) : ServiceOf(pod);
  // "ns/name"; endpoint slices live in their service's namespace, which is the pod's.
  size_t slash = service.find('/');
  if (slash != std::string_view::npos) out->service = std::string(service.substr(slash + 1));
}

K8sNames ClusterState::ByIp(const net::IpAddress& ip, int64_t time) const {
  std::shared_lock lock(mu_);
  K8sNames names;
  if (const PodPtr* pod = At(pod_ips_, ip, time)) {
    Describe(**pod, &names);
  } else if (const ServicePtr* service = At(service_ips_, ip, time)) {
    names.ns = (*service)->key.ns;
    names.service = (*service)->key.name;
  }
  return names;
}

K8sNames ClusterState::ByContainer(std::string_view container_id, std::string_view pod_uid) const {
  std::shared_lock lock(mu_);
  K8sNames names;
  if (!container_id.empty()) {
    auto c = containers_.find(std::string(container_id));
    if (c != containers_.end()) {
      Describe(*c->second.first, &names);
      names.container = c->second.second;
      return names;
    }
  }
  if (!pod_uid.empty()) {
    const std::string uid(pod_uid);
    auto live = pods_.find(uid);
    if (live != pods_.end()) {
      Describe(*live->second, &names);
    } else if (auto grave = graveyard_.find(uid); grave != graveyard_.end()) {
      Describe(*grave->second.pod, &names);
    }
  }
  return names;
}

std::string ClusterState::NodeByIp(const net::IpAddress& ip) const {
  std::shared_lock lock(mu_);
  for (const auto& [name, node] : nodes_) {
    if (Contains(node.addresses, ip)) return name;
  }
  return {};
}

ClusterState::Sizes ClusterState::sizes() const {
  std::shared_lock lock(mu_);
  Sizes s;
  s.pods = pods_.size();
  s.deleted_pods = graveyard_.size();
  s.workloads = workloads_.size();
  s.services = services_.size();
  s.endpoint_slices = slices_.size();
  s.nodes = nodes_.size();
  s.addresses = pod_ips_.size() + service_ips_.size();
  for (const auto& [ip, v] : pod_ips_) s.spans += v.size();
  for (const auto& [ip, v] : service_ips_) s.spans += v.size();
  s.containers = containers_.size();
  return s;
}

}  // namespace nodescope::aggregator::enrich::k8s
