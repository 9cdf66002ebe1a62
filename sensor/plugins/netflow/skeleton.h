// The ebpf-net probe's skeleton, as bpf::LoadSkeleton takes it: for the plugin and the probe
// tests, which load the same object.
#pragma once

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/abi/l7.h"
#include "netflow.skel.h"
#include "sensor/bpf/clock.h"
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

// Bytes of each CPU's payload ring on a machine of `cpus` possible CPUs: NS_L7_RINGBUF_BYTES
// shared out, in a power of two (what a ring buffer map takes) within the ring bounds.
inline uint32_t L7RingBytes(int cpus) {
  uint64_t bytes = NS_L7_RING_MAX_BYTES;
  while (bytes > NS_L7_RING_MIN_BYTES &&
         bytes * uint64_t(std::max(cpus, 1)) > NS_L7_RINGBUF_BYTES) {
    bytes /= 2;
  }
  return static_cast<uint32_t>(bytes);
}

// Before load: the payload rings' array (bpf/include/l7_capture.bpf.h) gets a slot per possible
// CPU, and the probe the rings' size (they are made after load: ReadL7Rings): `ring_bytes`, a
// power of two, or L7RingBytes when 0.
inline Status SizeL7Rings(netflow_bpf* s, uint32_t ring_bytes = 0) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Status::Error("possible CPUs: " + bpf::LibbpfErrorText(-cpus));
  const uint32_t bytes = ring_bytes != 0 ? ring_bytes : L7RingBytes(cpus);
  if (int err = bpf_map__set_max_entries(s->maps.l7_rings, static_cast<uint32_t>(cpus)); err != 0) {
    return Status::Error("size L7 ring array: " + bpf::LibbpfErrorText(-err));
  }
  s->rodata->l7_ring_bytes = bytes;
  return Status::Ok();
}

// Has every CPU send its batch of payload events to its ring (flush__l7 run on each CPU);
// returns the moment before, on bpf_ktime_get_ns's clock. A CPU that is offline (ENXIO) keeps
// its batch until it is back; any other failure is in `*error` (an errno), the last one.
inline uint64_t FlushL7Batches(int flush_fd, int cpus, int* error) {
  const uint64_t before = bpf::MonotonicNs();
  for (int cpu = 0; cpu < cpus; ++cpu) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU,
                .cpu = static_cast<uint32_t>(cpu));
    if (bpf_prog_test_run_opts(flush_fd, &opts) != 0 && errno != ENXIO) *error = errno;
  }
  return before;
}

// After load: events are batched per CPU when the flush runs; otherwise each goes to its ring at
// once. Returns whether they are batched.
inline bool StartL7Batching(netflow_bpf* s) {
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.flush__l7), &opts) != 0) return false;
  s->bss->l7_batch_limit = NS_L7_BATCH_BYTES;
  return true;
}

// After load: makes a payload ring for every possible CPU, puts it in the rings' array, and reads
// them as one stream into `handler`, with `ring`'s Poll, batched (StartL7Batching) when it can be;
// `batched`, when given, says whether.
inline Status ReadL7Rings(netflow_bpf* s, bpf::RingBuffer& ring, bpf::RingBuffer::Handler handler,
                          bool* batched = nullptr) {
  // The array's slots, one per possible CPU (SizeL7Rings).
  const int cpus = static_cast<int>(bpf_map__max_entries(s->maps.l7_rings));
  const int array_fd = bpf_map__fd(s->maps.l7_rings);
  std::vector<int> fds;
  // The ring buffer reader keeps its own descriptors; these only live until it has them.
  auto close_all = [&fds] {
    for (int fd : fds) close(fd);
  };
  for (uint32_t cpu = 0; cpu < uint32_t(cpus); ++cpu) {
    const int fd =
        bpf_map_create(BPF_MAP_TYPE_RINGBUF, "l7_ring", 0, 0, s->rodata->l7_ring_bytes, nullptr);
    if (fd < 0) {
      close_all();
      return Status::Error("create L7 ring for CPU " + std::to_string(cpu) + ": " +
                           bpf::LibbpfErrorText(fd));
    }
    fds.push_back(fd);
    if (bpf_map_update_elem(array_fd, &cpu, &fd, BPF_ANY) != 0) {
      const int err = -errno;
      close_all();
      return Status::Error("place L7 ring for CPU " + std::to_string(cpu) + ": " +
                           bpf::LibbpfErrorText(err));
    }
  }
  const bool batch = StartL7Batching(s);
  if (batched != nullptr) *batched = batch;
  const int flush_fd = bpf_program__fd(s->progs.flush__l7);
  // Unbatched, each event is a batch of one already in its ring: nothing to flush or wait for.
  // A flush that stops working turns batching off: a CPU's next event then sends what its batch
  // held (the drains in between may hand out newer events of other CPUs first).
  Status added = ring.AddMerged(
      fds, offsetof(ns_l7_event, ts_ns), std::move(handler),
      [s, batching = batch, flush_fd, cpus]() mutable -> uint64_t {
        if (!batching) return UINT64_MAX;
        int error = 0;
        const uint64_t before = FlushL7Batches(flush_fd, cpus, &error);
        if (error != 0) {
          batching = false;
          s->bss->l7_batch_limit = 0;
          spdlog::warn(
              "L7 payload batches: the flush failed ({}); events now go to the rings one by one",
              std::strerror(error));
        }
        return before;
      });
  close_all();
  return added;
}

}  // namespace nodescope::sensor::netflow
