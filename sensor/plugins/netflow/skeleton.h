// The ebpf-net probe's skeleton, as bpf::LoadSkeleton takes it: for the plugin and the probe
// tests, which load the same object.
#pragma once

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

}  // namespace nodescope::sensor::netflow
