#include "aggregator/enrich/k8s/objects.h"

#include <array>
#include <charconv>
#include <ctime>

namespace nodescope::aggregator::enrich::k8s {

namespace {

using nlohmann::json;

// Keys whose values enrichment never reads, wherever they appear. Dropping by name, not by path,
// is safe because none of these names is also used by a field that is read (the read ones are
// metadata.{name,namespace,uid,ownerReferences,labels,creationTimestamp}, spec.{nodeName,
// hostNetwork,clusterIP(s)}, status.{phase,podIP(s),containerStatuses[].{name,containerID}},
// endpoints[].addresses, addresses[]).
// clang-format off
constexpr std::array<std::string_view, 24> kDropped = {
    "managedFields", "annotations", "containers", "initContainers", "volumes", "conditions",
    "tolerations", "affinity", "template", "volumeMounts", "env", "resources", "lastState",
    "state", "image", "imageID", "images", "nodeInfo", "capacity", "allocatable",
    "daemonEndpoints", "securityContext", "topologySpreadConstraints", "readinessGates"};
// clang-format on

bool Dropped(std::string_view key) {
  for (std::string_view d : kDropped) {
    if (d == key) return true;
  }
  return false;
}

const json* Member(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string StringAt(const json& object, std::string_view key) {
  const json* v = Member(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

const json& ObjectAt(const json& object, std::string_view key) {
  static const json kEmpty = json::object();
  const json* v = Member(object, key);
  return v != nullptr && v->is_object() ? *v : kEmpty;
}

const json& ArrayAt(const json& object, std::string_view key) {
  static const json kEmpty = json::array();
  const json* v = Member(object, key);
  return v != nullptr && v->is_array() ? *v : kEmpty;
}

// metadata.name (and namespace, which cluster-scoped objects do not have).
Result<ObjectKey> KeyOf(const json& object, std::string_view kind) {
  if (!object.is_object()) return Status::Error(std::string(kind) + ": not a JSON object");
  const json& meta = ObjectAt(object, "metadata");
  ObjectKey key{StringAt(meta, "namespace"), StringAt(meta, "name")};
  if (key.name.empty()) return Status::Error(std::string(kind) + ": metadata.name is missing");
  return key;
}

OwnerRef ControllerOf(const json& meta) {
  for (const json& ref : ArrayAt(meta, "ownerReferences")) {
    const json* controller = Member(ref, "controller");
    if (controller != nullptr && controller->is_boolean() && controller->get<bool>()) {
      return {StringAt(ref, "kind"), StringAt(ref, "name")};
    }
  }
  return {};
}

void AddAddress(std::string_view text, std::vector<net::IpAddress>* out) {
  std::optional<net::IpAddress> ip = net::IpAddress::Parse(text);
  if (!ip) return;
  for (const net::IpAddress& have : *out) {
    if (have == *ip) return;
  }
  out->push_back(*ip);
}

}  // namespace

namespace {

// Each resource's name, list/watch path and object kind, in enum Resource order.
struct ResourceInfo {
  std::string_view name, path, kind;
};
constexpr ResourceInfo kResourceInfo[] = {
    {"deployments", "/apis/apps/v1/deployments", "Deployment"},
    {"replicasets", "/apis/apps/v1/replicasets", "ReplicaSet"},
    {"daemonsets", "/apis/apps/v1/daemonsets", "DaemonSet"},
    {"statefulsets", "/apis/apps/v1/statefulsets", "StatefulSet"},
    {"jobs", "/apis/batch/v1/jobs", "Job"},
    {"nodes", "/api/v1/nodes", "Node"},
    {"services", "/api/v1/services", "Service"},
    {"endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice"},
    {"pods", "/api/v1/pods", "Pod"},
};
static_assert(std::size(kResourceInfo) == std::size(kAllResources));

const ResourceInfo& InfoOf(Resource r) { return kResourceInfo[static_cast<size_t>(r)]; }

}  // namespace

std::string_view ResourceName(Resource r) { return InfoOf(r).name; }
std::string_view ResourcePath(Resource r) { return InfoOf(r).path; }
std::string_view ResourceKind(Resource r) { return InfoOf(r).kind; }

Result<json> ParseSlim(std::string_view text) {
  json::parser_callback_t drop = [](int /*depth*/, json::parse_event_t event, json& parsed) {
    return !(event == json::parse_event_t::key && parsed.is_string() &&
             Dropped(parsed.get_ref<const std::string&>()));
  };
  json value = json::parse(text.begin(), text.end(), drop, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    // Without exceptions nlohmann does not say where; a second, throwing parse does.
    try {
      json ignored = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
      return Status::Error(std::string("json: ") + e.what());
    }
    return Status::Error("json: not a JSON text");
  }
  return value;
}

std::string_view ContainerIdOf(std::string_view id) {
  size_t sep = id.find("://");
  return sep == std::string_view::npos ? std::string_view() : id.substr(sep + 3);
}

std::optional<int64_t> ParseTimestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':') {
    return std::nullopt;
  }
  auto num = [&](size_t at, size_t n, int* out) {
    for (size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;  // from_chars would take a sign
    }
    auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + n, *out);
    return ec == std::errc() && p == text.data() + at + n;
  };
  std::tm tm{};
  int year = 0, month = 0;
  if (!num(0, 4, &year) || !num(5, 2, &month) || !num(8, 2, &tm.tm_mday) ||
      !num(11, 2, &tm.tm_hour) || !num(14, 2, &tm.tm_min) || !num(17, 2, &tm.tm_sec)) {
    return std::nullopt;
  }
  // Nanoseconds since 1970 fit an int64 up to 2262; objects are not older than 1970. Fields out
  // of range would be normalised by timegm into another time: refused instead.
  if (year < 1970 || year > 2261 || month < 1 || month > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  size_t at = 19;
  int64_t frac_ns = 0;
  if (at < text.size() && text[at] == '.') {
    int64_t scale = 100'000'000;
    for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
      frac_ns += (text[at] - '0') * scale;
      scale /= 10;
    }
  }
  int64_t offset_s = 0;
  if (at < text.size() && text[at] == 'Z') {
    ++at;
  } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') && text[at + 3] == ':') {
    int h = 0, m = 0;
    if (!num(at + 1, 2, &h) || !num(at + 4, 2, &m)) return std::nullopt;
    offset_s = (text[at] == '+' ? 1 : -1) * (h * 3600 + m * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  return (static_cast<int64_t>(t) - offset_s) * 1'000'000'000 + frac_ns;
}

Result<PodObject> PodFrom(const json& object) {
  Result<ObjectKey> key = KeyOf(object, "pod");
  if (!key.ok()) return key.status();
  const json& meta = ObjectAt(object, "metadata");
  PodObject pod;
  pod.uid = StringAt(meta, "uid");
  if (pod.uid.empty()) return Status::Error("pod " + key->name + ": metadata.uid is missing");
  pod.ns = std::move(key->ns);
  pod.name = std::move(key->name);
  pod.owner = ControllerOf(meta);
  pod.created_unix_nano = ParseTimestamp(StringAt(meta, "creationTimestamp")).value_or(0);
  const json& spec = ObjectAt(object, "spec");
  pod.node = StringAt(spec, "nodeName");
  const json* host_network = Member(spec, "hostNetwork");
  pod.host_network =
      host_network != nullptr && host_network->is_boolean() && host_network->get<bool>();
  const json& status = ObjectAt(object, "status");
  std::string phase = StringAt(status, "phase");
  pod.terminal = phase == "Succeeded" || phase == "Failed";
  AddAddress(StringAt(status, "podIP"), &pod.ips);
  for (const json& ip : ArrayAt(status, "podIPs")) AddAddress(StringAt(ip, "ip"), &pod.ips);
  for (std::string_view list :
       {"containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"}) {
    for (const json& c : ArrayAt(status, list)) {
      const std::string status_id = StringAt(c, "containerID");
      std::string_view id = ContainerIdOf(status_id);
      if (!id.empty()) pod.containers.emplace_back(std::string(id), StringAt(c, "name"));
    }
  }
  return pod;
}

Result<WorkloadObject> WorkloadFrom(const json& object) {
  Result<ObjectKey> key = KeyOf(object, "workload");
  if (!key.ok()) return key.status();
  return WorkloadObject{std::move(key).value(), ControllerOf(ObjectAt(object, "metadata"))};
}

Result<ServiceObject> ServiceFrom(const json& object) {
  Result<ObjectKey> key = KeyOf(object, "service");
  if (!key.ok()) return key.status();
  ServiceObject service{std::move(key).value(), {}};
  const json& spec = ObjectAt(object, "spec");
  AddAddress(StringAt(spec, "clusterIP"), &service.cluster_ips);
  for (const json& ip : ArrayAt(spec, "clusterIPs")) {
    if (ip.is_string()) AddAddress(ip.get<std::string>(), &service.cluster_ips);
  }
  return service;
}

Result<EndpointSliceObject> EndpointSliceFrom(const json& object) {
  Result<ObjectKey> key = KeyOf(object, "endpointslice");
  if (!key.ok()) return key.status();
  EndpointSliceObject slice{std::move(key).value(), {}, {}};
  slice.service =
      StringAt(ObjectAt(ObjectAt(object, "metadata"), "labels"), "kubernetes.io/service-name");
  for (const json& endpoint : ArrayAt(object, "endpoints")) {
    for (const json& address : ArrayAt(endpoint, "addresses")) {
      if (address.is_string()) AddAddress(address.get<std::string>(), &slice.addresses);
    }
  }
  return slice;
}

Result<NodeObject> NodeFrom(const json& object) {
  Result<ObjectKey> key = KeyOf(object, "node");
  if (!key.ok()) return key.status();
  NodeObject node{std::move(key->name), {}};
  for (const json& address : ArrayAt(ObjectAt(object, "status"), "addresses")) {
    std::string type = StringAt(address, "type");
    if (type == "InternalIP" || type == "ExternalIP") {
      AddAddress(StringAt(address, "address"), &node.addresses);
    }
  }
  return node;
}

}  // namespace nodescope::aggregator::enrich::k8s
