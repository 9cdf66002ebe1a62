#include "sensor/proc/container.h"

#include <optional>

namespace nodescope::sensor::proc {
namespace {

constexpr size_t kIdLength = 64;

bool IsLowerHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!IsLowerHexDigit(c)) return false;
  }
  return !s.empty();
}

bool IsContainerId(std::string_view s) { return s.size() == kIdLength && IsLowerHex(s); }

bool StripPrefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

bool StripSuffix(std::string_view& s, std::string_view suffix) {
  if (!s.ends_with(suffix)) return false;
  s.remove_suffix(suffix.size());
  return true;
}

// A pod UID as the kubelet writes it into a cgroup name: a UUID with dashes (cgroupfs) or
// underscores (systemd, where '-' separates slice levels), or, for a static pod, the 32-hex hash
// the kubelet uses as its UID. Returned with dashes.
std::optional<std::string> PodUid(std::string_view s) {
  if (s.size() == 32 && IsLowerHex(s)) return std::string(s);
  if (s.size() != 36) return std::nullopt;
  std::string uid(s);
  for (size_t i = 0; i < uid.size(); ++i) {
    const bool separator = i == 8 || i == 13 || i == 18 || i == 23;
    if (separator) {
      if (uid[i] != '-' && uid[i] != '_') return std::nullopt;
      uid[i] = '-';
    } else if (!IsLowerHexDigit(uid[i])) {
      return std::nullopt;
    }
  }
  return uid;
}

// "kubepods-burstable-pod<uid>.slice", "kubelet-kubepods-pod<uid>.slice" (kind's --cgroup-root),
// or, under a kubepods directory, "pod<uid>".
std::optional<std::string> PodSegment(std::string_view seg, bool under_kubepods) {
  if (StripSuffix(seg, ".slice")) {
    const size_t pod = seg.rfind("-pod");
    if (pod == std::string_view::npos) return std::nullopt;
    if (seg.substr(0, pod).find("kubepods") == std::string_view::npos) return std::nullopt;
    return PodUid(seg.substr(pod + 4));
  }
  if (!under_kubepods || !StripPrefix(seg, "pod")) return std::nullopt;
  return PodUid(seg);
}

struct Segment {
  enum Kind { kOther, kContainer, kConmon } kind = kOther;
  std::string_view id;
  const char* runtime = "";
};

Segment ContainerSegment(std::string_view seg, std::string_view parent, bool parent_is_pod) {
  std::string_view id = seg;
  if (StripPrefix(id, "cri-containerd-") && StripSuffix(id, ".scope")) {
    if (IsContainerId(id)) return {Segment::kContainer, id, "containerd"};
    return {};
  }
  id = seg;
  if (StripPrefix(id, "crio-conmon-")) return {Segment::kConmon, {}, ""};
  id = seg;
  // crio-<id> without .scope: the cgroupfs driver.
  if (StripPrefix(id, "crio-")) {
    StripSuffix(id, ".scope");
    if (IsContainerId(id)) return {Segment::kContainer, id, "crio"};
    return {};
  }
  id = seg;
  if (StripPrefix(id, "docker-") && StripSuffix(id, ".scope")) {
    if (IsContainerId(id)) return {Segment::kContainer, id, "docker"};
    return {};
  }
  if (IsContainerId(seg)) {
    if (parent == "docker") return {Segment::kContainer, seg, "docker"};
    if (parent_is_pod) return {Segment::kContainer, seg, ""};
  }
  return {};
}

}  // namespace

ContainerRef ParseCgroupPath(std::string_view path) {
  ContainerRef ref;
  bool under_kubepods = false;
  bool parent_is_pod = false;
  std::string_view parent;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view seg = path.substr(0, slash);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
    if (seg.empty()) continue;
    if (std::optional<std::string> uid = PodSegment(seg, under_kubepods)) {
      // A container above the pod is the one the whole node runs in (kind, k3d), not the pod's.
      ref = ContainerRef{.id = {}, .pod_uid = std::move(*uid), .runtime = {}};
      parent = seg;
      parent_is_pod = true;
      continue;
    }
    if (seg.find("kubepods") != std::string_view::npos) under_kubepods = true;
    Segment s = ContainerSegment(seg, parent, parent_is_pod);
    if (s.kind == Segment::kContainer) {
      ref.id = std::string(s.id);
      ref.runtime = s.runtime;
    } else if (s.kind == Segment::kConmon) {
      ref.id.clear();
      ref.runtime.clear();
      break;  // conmon's cgroup holds conmon only, never the container
    }
    parent = seg;
    parent_is_pod = false;
  }
  return ref;
}

ContainerRef ParseProcCgroup(std::string_view text) {
  std::optional<ContainerRef> v2, v1, v1_pod;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // hierarchy-id:controllers:path, where the path may itself hold ':'.
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    ContainerRef ref = ParseCgroupPath(line.substr(second + 1));
    if (line.substr(0, second + 1) == "0::") {
      v2 = std::move(ref);
    } else if (!v1 && !ref.id.empty()) {
      v1 = std::move(ref);
    } else if (!v1_pod && !ref.pod_uid.empty()) {
      v1_pod = std::move(ref);
    }
  }
  if (v2 && !v2->id.empty()) return *v2;
  if (v1) return *v1;
  if (v2 && !v2->empty()) return *v2;
  if (v1_pod) return *v1_pod;
  return {};
}

const ContainerRef& ContainerResolver::Resolve(uint64_t cgroup_id) {
  if (cgroup_id == 0) return none_;
  auto it = cache_.find(cgroup_id);
  if (it != cache_.end()) return it->second;
  CgroupPaths::Found found = paths_.Find(cgroup_id);
  if (found.path) return Insert(cgroup_id, ParseCgroupPath(*found.path));
  if (found.gone) return Insert(cgroup_id, {});
  return none_;
}

const ContainerRef& ContainerResolver::Resolve(uint64_t cgroup_id, std::string_view path) {
  if (cgroup_id == 0) return none_;
  auto it = cache_.find(cgroup_id);
  if (it != cache_.end()) return it->second;
  if (!path.starts_with('/')) return Resolve(cgroup_id);
  return Insert(cgroup_id, ParseCgroupPath(path));
}

const ContainerRef& ContainerResolver::Insert(uint64_t cgroup_id, ContainerRef ref) {
  if (cache_.size() >= max_entries_) cache_.clear();
  return cache_.emplace(cgroup_id, std::move(ref)).first->second;
}

}  // namespace nodescope::sensor::proc
