// The ebpf-net probe's skeleton, as bpf::LoadSkeleton takes it: for the plugin and the probe
// tests, which load the same object.
#pragma once

#include <unistd.h>

#include <array>
#include <cstddef>
#include <vector>

#include "bpf/abi/l7.h"
#include "netflow.skel.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/ring_buffer.h"

namespace nodescope::sensor::netflow {

inline constexpr bpf::SkeletonOps<netflow_bpf> kSkeleton = {
    .open = [] { return netflow_bpf__open(); },
    .load = [](netflow_bpf* s) { return netflow_bpf__load(s); },
    .destroy = [](netflow_bpf* s) { netflow_bpf__destroy(s); },
    .ring_map = [](netflow_bpf* s) { return s->maps.events; },
    .counters_map = [](netflow_bpf* s) { return s->maps.counters; },
};

// The payload rings (bpf/include/l7_capture.bpf.h): one per CPU (modulo NS_L7_RINGS), read as
// one stream in timestamp order (bpf::RingBuffer::AddMerged).
inline std::array<bpf_map*, NS_L7_RINGS> L7Rings(netflow_bpf* s) {
  return {s->maps.l7_events0, s->maps.l7_events1, s->maps.l7_events2, s->maps.l7_events3};
}

// Before load: the rings no CPU writes (a machine with fewer than NS_L7_RINGS CPUs) shrink to
// one page, the least a ring buffer map takes, instead of holding their share of kernel memory.
inline Status ShrinkUnusedL7Rings(netflow_bpf* s) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Status::Error("possible CPUs: " + bpf::LibbpfErrorText(-cpus));
  const auto page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  std::array<bpf_map*, NS_L7_RINGS> rings = L7Rings(s);
  for (int i = cpus; i < NS_L7_RINGS; ++i) {
    if (int err = bpf_map__set_max_entries(rings[i], page); err != 0) {
      return Status::Error("shrink L7 ring: " + bpf::LibbpfErrorText(-err));
    }
  }
  return Status::Ok();
}

// Reads the payload rings of `s` as one stream into `handler`, with `ring`'s Poll.
inline Status ReadL7Rings(netflow_bpf* s, bpf::RingBuffer& ring, bpf::RingBuffer::Handler handler) {
  std::vector<int> fds;
  for (bpf_map* map : L7Rings(s)) fds.push_back(bpf_map__fd(map));
  return ring.AddMerged(fds, offsetof(ns_l7_event, ts_ns), std::move(handler));
}

}  // namespace nodescope::sensor::netflow
