// What the netflow probe tests share: the netflow probe loaded with payload capture on and its
// L7 rings read, and a socket's entry looked up in `conns`.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "bpf/abi/l7.h"
#include "bpf/abi/netflow.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/skeleton.h"

namespace nodescope::sensor::bpf::testing {

// Loads the netflow probe with `strategy`, HTTP and DNS payload capture on (`capture_bytes` per
// call; 0 keeps the probe's default), and hands every L7 ring record to `on_l7`. The records of
// the probe's own ring (closes) are dropped. `ring_bytes`: each CPU's payload ring, 0 for the
// plugin's size.
inline Result<netflow_bpf*> LoadL7Capture(LoadedProbe& probe, const std::string& strategy,
                                          uint32_t capture_bytes,
                                          std::function<void(std::span<const std::byte>)> on_l7,
                                          uint32_t ring_bytes = 0) {
  Result<netflow_bpf*> skel = LoadSkeleton<netflow_bpf>(
      probe, netflow::kSkeleton, strategy, [](std::span<const std::byte>) {},
      [capture_bytes, ring_bytes](netflow_bpf* s) {
        s->rodata->l7_capture = NS_L7_HTTP_ON | NS_L7_DNS_ON;
        if (capture_bytes != 0) s->rodata->l7_capture_bytes = capture_bytes;
        return netflow::SizeL7Rings(s, ring_bytes);
      });
  if (!skel.ok()) return skel;
  if (Status read = netflow::ReadL7Rings(*skel, *probe.ring(), std::move(on_l7)); !read.ok()) {
    return read;
  }
  return skel;
}

// The `conns` entry (map fd `conns_fd`) of the socket with these local and remote ports.
inline std::optional<ns_conn> FindConn(int conns_fd, uint16_t sport, uint16_t dport,
                                       uint8_t protocol) {
  ns_conn_key key{}, next{};
  const void* prev = nullptr;
  ns_conn conn;
  while (bpf_map_get_next_key(conns_fd, prev, &next) == 0) {
    if (bpf_map_lookup_elem(conns_fd, &next, &conn) == 0 && conn.sport == sport &&
        conn.dport == dport && conn.protocol == protocol) {
      return conn;
    }
    key = next;
    prev = &key;
  }
  return std::nullopt;
}

}  // namespace nodescope::sensor::bpf::testing
