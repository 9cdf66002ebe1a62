// The ebpf-net probe's skeleton, as bpf::LoadSkeleton takes it: for the plugin and the probe
// tests, which load the same object.
#pragma once

#include <array>

#include "bpf/abi/l7.h"
#include "netflow.skel.h"
#include "sensor/bpf/loaded_probe.h"

namespace nodescope::sensor::netflow {

inline constexpr bpf::SkeletonOps<netflow_bpf> kSkeleton = {
    .open = [] { return netflow_bpf__open(); },
    .load = [](netflow_bpf* s) { return netflow_bpf__load(s); },
    .destroy = [](netflow_bpf* s) { netflow_bpf__destroy(s); },
    .ring_map = [](netflow_bpf* s) { return s->maps.events; },
    .counters_map = [](netflow_bpf* s) { return s->maps.counters; },
};

// The payload rings (bpf/include/l7_capture.bpf.h): each socket's events in one of them, in order.
inline std::array<bpf_map*, NS_L7_RINGS> L7Rings(netflow_bpf* s) {
  return {s->maps.l7_events0, s->maps.l7_events1, s->maps.l7_events2, s->maps.l7_events3};
}

}  // namespace nodescope::sensor::netflow
