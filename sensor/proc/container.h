// cgroup -> container: containerd, CRI-O and docker name a container's cgroup after its 64-hex
// id, and the kubelet names a pod's cgroup after its UID, under either cgroup driver:
//
//   systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
//               cri-containerd-<id>.scope | crio-<id>.scope[/container] | docker-<id>.scope
//             (guaranteed QoS: /kubepods.slice/kubepods-pod<uid_>.slice/...)
//   cgroupfs: /kubepods[/burstable|/besteffort]/pod<uid>/<id> | crio-<id>
//   docker:   /docker/<id>, /system.slice/docker-<id>.scope
//
// The aggregator joins the container id (or the pod UID) to a pod from the pod's status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sensor/proc/cgroup_paths.h"

namespace nodescope::sensor::proc {

struct ContainerRef {
  std::string id;       // 64 lowercase hex digits; "" for a pod-level cgroup
  std::string pod_uid;  // with dashes, as the API server has it; "" outside Kubernetes
  std::string runtime;  // "containerd", "crio", "docker"; "" when the path does not say
                        // (cgroupfs driver: containerd and docker both use the bare id)
  bool empty() const { return id.empty() && pod_uid.empty(); }
  bool operator==(const ContainerRef&) const = default;
};

// One cgroup path ("/a/b", as /proc/<pid>/cgroup or CgroupPaths name it).
// - Nested runtimes (kind, k3d, docker-in-docker): the innermost container, and the UID of the
//   pod segment; a container segment above the pod's (the kind node itself) does not count.
// - A pod-level cgroup with no container segment under it: pod_uid only.
// - CRI-O's crio-conmon-<id> (the container's monitor, a host process CRI-O parks in the pod's
//   cgroup) is not the container: pod_uid only, so the aggregator still finds its pod.
// - Anything else (/user.slice/..., /, ids that are not 64 hex digits): empty.
ContainerRef ParseCgroupPath(std::string_view path);

// A whole /proc/<pid>/cgroup: the v2 line ("0::/path") when it names a container, else the first
// v1 line ("N:controllers:/path") that does (a hybrid host whose runtime manages only the v1
// hierarchies), else whichever names a pod (v2 first).
ContainerRef ParseProcCgroup(std::string_view proc_pid_cgroup);

// cgroup v2 id -> container, through CgroupPaths. Not thread-safe: one per thread, or behind the
// caller's lock (ContainerSink).
//
// Cached per id, containers and "no container" alike, so an id costs a walk at most once; the
// cache is cleared when it holds max_entries ids. Clearing rather than LRU: a node has a few
// thousand cgroups at most (110 pods of a few containers, plus system units), so the default
// bound is reached only after a lot of churn, and refilling costs a path parse per id (CgroupPaths
// still knows every live cgroup), not a walk. An id CgroupPaths cannot name yet (made after its
// last walk, with no walk left) is not cached, so it is looked up again on next use.
class ContainerResolver {
 public:
  static constexpr size_t kDefaultMaxEntries = 16384;

  explicit ContainerResolver(CgroupPaths paths, size_t max_entries = kDefaultMaxEntries)
      : paths_(std::move(paths)), max_entries_(max_entries) {}

  // The reference stays valid until the next call.
  const ContainerRef& Resolve(uint64_t cgroup_id);
  // For a caller that has the path already (the kernel plugin's `cgroup` label): parsed, not
  // walked for. A path CgroupPaths could not name ("#<id>") falls back to Resolve(cgroup_id).
  const ContainerRef& Resolve(uint64_t cgroup_id, std::string_view path);

  size_t size() const { return cache_.size(); }
  uint64_t walks() const { return paths_.walks(); }

 private:
  const ContainerRef& Insert(uint64_t cgroup_id, ContainerRef ref);

  CgroupPaths paths_;
  const size_t max_entries_;
  std::unordered_map<uint64_t, ContainerRef> cache_;
  const ContainerRef none_;
};

}  // namespace nodescope::sensor::proc
