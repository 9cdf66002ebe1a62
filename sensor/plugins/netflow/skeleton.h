// The ebpf-net probe's skeleton, as bpf::LoadSkeleton takes it: for the plugin and the probe
// tests, which load the same object.
#pragma once

#include <time.h>
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

// Has every CPU send its batch of payload events to its ring (flush__l7 run on each CPU);
// returns the moment before, on bpf_ktime_get_ns's clock. A CPU that is offline keeps its batch
// until it is back.
inline uint64_t FlushL7Batches(int flush_fd, int cpus) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t before = uint64_t(now.tv_sec) * 1000000000 + uint64_t(now.tv_nsec);
  for (int cpu = 0; cpu < cpus; ++cpu) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU,
                .cpu = static_cast<uint32_t>(cpu));
    bpf_prog_test_run_opts(flush_fd, &opts);
  }
  return before;
}

// After load: events are batched per CPU when every CPU has a ring of its own and the flush runs;
// otherwise each goes to its ring at once. Returns whether they are batched.
inline bool StartL7Batching(netflow_bpf* s) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0 || cpus > NS_L7_RINGS) return false;
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.flush__l7), &opts) != 0) return false;
  s->bss->l7_batch_limit = NS_L7_BATCH_BYTES;
  return true;
}

// Reads the payload rings of `s` as one stream into `handler`, with `ring`'s Poll, batched
// (StartL7Batching) when it can be; `batched`, when given, says whether.
inline Status ReadL7Rings(netflow_bpf* s, bpf::RingBuffer& ring, bpf::RingBuffer::Handler handler,
                          bool* batched = nullptr) {
  std::vector<int> fds;
  for (bpf_map* map : L7Rings(s)) fds.push_back(bpf_map__fd(map));
  const bool batch = StartL7Batching(s);
  if (batched != nullptr) *batched = batch;
  const int flush_fd = bpf_program__fd(s->progs.flush__l7);
  const int cpus = libbpf_num_possible_cpus();
  // Unbatched, each event is a batch of one already in its ring: nothing to flush or wait for.
  return ring.AddMerged(
      fds, offsetof(ns_l7_event, ts_ns), std::move(handler),
      [batch, flush_fd, cpus] { return batch ? FlushL7Batches(flush_fd, cpus) : UINT64_MAX; });
}

}  // namespace nodescope::sensor::netflow
