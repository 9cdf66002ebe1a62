// What the aggregator's record conversion asks of cluster metadata. An interface because the
// converter's tests use a double; the Kubernetes watcher's ClusterState is the real one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/net/ip.h"

namespace nodescope::aggregator::enrich {

// The Kubernetes names of one side of a record; empty strings for what is not known.
struct K8sNames {
  std::string ns;
  std::string pod;
  std::string service;
  std::string deployment;
  std::string container;  // only from a container id: an address names no container

  bool empty() const { return ns.empty() && pod.empty() && service.empty(); }
};

class MetadataSource {
 public:
  virtual ~MetadataSource() = default;
  // The pod that held `ip` at `time_unix_nano` (with its service and deployment), else the
  // service whose ClusterIP `ip` was then. A host-network pod shares its node's address, so it is
  // never found by address.
  virtual K8sNames ByIp(const net::IpAddress& ip, int64_t time_unix_nano) const = 0;
  // The pod of a container id (its container's name too), else of a pod UID; ids never repeat,
  // so no time is needed.
  virtual K8sNames ByContainer(std::string_view container_id, std::string_view pod_uid) const = 0;
};

}  // namespace nodescope::aggregator::enrich
