// What the netflow probe tests share: the netflow probe loaded with payload capture on and its
// L7 rings read, and a socket's entry looked up in `conns`.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf/abi/l7.h"
#include "bpf/abi/netflow.h"
#include "sensor/bpf/cpus.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/plugins/netflow/skeleton.h"

namespace nodescope::sensor::bpf::testing {

// Loads the netflow probe with `strategy`, HTTP and DNS payload capture on (`capture_bytes` per
// call; 0 keeps the probe's default), and hands every L7 ring record to `on_l7`. The records of
// the probe's own ring (closes) are dropped. `ring_bytes`: each CPU's payload ring, 0 for the
// plugin's size. Rings are made for the CPUs `online` (null: those online now), and `rings`,
// when given, gets them (for Cover).
inline Result<netflow_bpf*> LoadL7Capture(LoadedProbe& probe, const std::string& strategy,
                                          uint32_t capture_bytes,
                                          std::function<void(std::span<const std::byte>)> on_l7,
                                          uint32_t ring_bytes = 0,
                                          std::unique_ptr<netflow::L7Rings>* rings = nullptr,
                                          const std::vector<int>* online = nullptr) {
  Result<netflow_bpf*> skel = LoadSkeleton<netflow_bpf>(
      probe, netflow::kSkeleton, strategy, [](std::span<const std::byte>) {},
      [capture_bytes](netflow_bpf* s) {
        s->rodata->l7_capture = NS_L7_HTTP_ON | NS_L7_DNS_ON;
        if (capture_bytes != 0) s->rodata->l7_capture_bytes = capture_bytes;
        return netflow::SizeL7Rings(s);
      });
  if (!skel.ok()) return skel;
  Result<std::vector<int>> now = online != nullptr ? *online : OnlineCpus();
  if (!now.ok()) return now.status();
  Result<std::unique_ptr<netflow::L7Rings>> made =
      netflow::L7Rings::Start(*skel, *probe.ring(), std::move(on_l7), *now, ring_bytes);
  if (!made.ok()) return made.status();
  if (rings != nullptr) *rings = std::move(*made);
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
