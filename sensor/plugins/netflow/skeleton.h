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
#include <memory>
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

// Bytes of each payload ring when there are `rings` of them: NS_L7_RINGBUF_BYTES shared out, in a
// power of two (what a ring buffer map takes) within the ring bounds.
inline uint32_t L7RingBytes(int rings) {
  uint64_t bytes = NS_L7_RING_MAX_BYTES;
  while (bytes > NS_L7_RING_MIN_BYTES &&
         bytes * uint64_t(std::max(rings, 1)) > NS_L7_RINGBUF_BYTES) {
    bytes /= 2;
  }
  return static_cast<uint32_t>(bytes);
}

// Before load: the payload rings' array (bpf/include/l7_capture.bpf.h) gets a slot per possible
// CPU. The rings are made after load (L7Rings).
inline Status SizeL7Rings(netflow_bpf* s) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Status::Error("possible CPUs: " + bpf::LibbpfErrorText(-cpus));
  if (int err = bpf_map__set_max_entries(s->maps.l7_rings, static_cast<uint32_t>(cpus)); err != 0) {
    return Status::Error("size L7 ring array: " + bpf::LibbpfErrorText(-err));
  }
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

// After load: events are batched per CPU when the flush runs (l7_batch_limit set); otherwise each
// goes to its ring at once (l7_batch_limit stays 0).
inline void StartL7Batching(netflow_bpf* s) {
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.flush__l7), &opts) == 0) {
    s->bss->l7_batch_limit = NS_L7_BATCH_BYTES;
  }
}

// After load: a payload ring for each CPU online, in the array's slot of its number, read as one
// stream into a handler by a RingBuffer's Poll, batched (StartL7Batching) when it can be. Rings
// only for the CPUs online, not every possible one: a virtual machine may declare many more
// possible CPUs than it runs, and each ring is locked kernel memory. A CPU brought online later
// gets its ring from Cover; until then its events are counted (NS_NETFLOW_CNT_L7_NO_RING).
// Used from the polling thread only.
class L7Rings {
 public:
  // Makes the rings of the CPUs `online` (CPUs past the array's slots are left out) and starts
  // reading them with `ring`. `ring_bytes`, a power of two, is every ring's size; 0 sizes them
  // by L7RingBytes of how many CPUs are online when they are made (rings made later by Cover may
  // be smaller than the first ones: the probe asks each its size). `ring` and `s` must outlive
  // the result.
  static Result<std::unique_ptr<L7Rings>> Start(netflow_bpf* s, bpf::RingBuffer& ring,
                                                bpf::RingBuffer::Handler handler,
                                                const std::vector<int>& online,
                                                uint32_t ring_bytes = 0) {
    std::unique_ptr<L7Rings> rings(new L7Rings(s, ring, ring_bytes));
    const int flush_fd = bpf_program__fd(s->progs.flush__l7);
    const int slots = int(rings->placed_.size());
    // Batched or not is l7_batch_limit (0: each event is a batch of one already in its ring,
    // nothing to flush or wait for). A flush that stops working turns batching off: a CPU's
    // next event then sends what its batch held (the drains in between may hand out newer
    // events of other CPUs first). The flush runs on every possible CPU: an offline one says so
    // (ENXIO), one online without a ring yet counts what its batch held.
    Result<size_t> group = ring.AddMerged(
        {}, offsetof(ns_l7_event, ts_ns), std::move(handler), [s, flush_fd, slots]() -> uint64_t {
          if (s->bss->l7_batch_limit == 0) return UINT64_MAX;
          int error = 0;
          const uint64_t before = FlushL7Batches(flush_fd, slots, &error);
          if (error != 0) {
            s->bss->l7_batch_limit = 0;
            spdlog::warn(
                "L7 payload batches: the flush failed ({}); events now go to the rings one by "
                "one",
                std::strerror(error));
          }
          return before;
        });
    if (!group.ok()) return group.status();
    rings->group_ = *group;
    Result<std::vector<int>> made = rings->Cover(online);
    if (!made.ok()) return made.status();
    if (made->empty())
      return Status::Error("no L7 ring made: no CPU online among the array's slots");
    StartL7Batching(s);
    return rings;
  }

  // Makes and reads a ring for each CPU of `online` that has none yet (a CPU brought online
  // since). Returns those CPUs.
  Result<std::vector<int>> Cover(const std::vector<int>& online) {
    std::vector<int> added;
    const uint32_t bytes = BytesFor(online);
    for (int cpu : online) {
      if (!HasSlot(cpu) || placed_[cpu]) continue;
      Result<int> fd = Make(uint32_t(cpu), bytes);
      if (!fd.ok()) return fd.status();
      Status read = ring_.AddToMerged(group_, *fd);
      close(*fd);
      if (!read.ok()) {
        // A ring no one reads would fill and count its events as ringbuf_full: taken out again,
        // so they count as no_ring and the next look tries again.
        const uint32_t slot = uint32_t(cpu);
        bpf_map_delete_elem(bpf_map__fd(s_->maps.l7_rings), &slot);
        placed_[cpu] = false;
        return read;
      }
      added.push_back(cpu);
    }
    return added;
  }

  // Whether events are batched per CPU (StartL7Batching), not sent one by one.
  bool batched() const { return s_->bss->l7_batch_limit != 0; }
  // How many CPUs have a ring.
  int rings() const { return int(std::count(placed_.begin(), placed_.end(), true)); }

 private:
  L7Rings(netflow_bpf* s, bpf::RingBuffer& ring, uint32_t ring_bytes)
      : s_(s),
        ring_(ring),
        ring_bytes_(ring_bytes),
        placed_(bpf_map__max_entries(s->maps.l7_rings), false) {}

  // The array has a slot for `cpu`.
  bool HasSlot(int cpu) const { return cpu >= 0 && size_t(cpu) < placed_.size(); }

  // The size of the rings made now, with the CPUs `online`.
  uint32_t BytesFor(const std::vector<int>& online) const {
    if (ring_bytes_ != 0) return ring_bytes_;
    return L7RingBytes(
        int(std::count_if(online.begin(), online.end(), [this](int cpu) { return HasSlot(cpu); })));
  }

  // A ring of `bytes` for `cpu`, put in the array's slot; its descriptor, for the caller to
  // close.
  Result<int> Make(uint32_t cpu, uint32_t bytes) {
    const int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "l7_ring", 0, 0, bytes, nullptr);
    if (fd < 0) {
      return Status::Error("create L7 ring for CPU " + std::to_string(cpu) + ": " +
                           bpf::LibbpfErrorText(fd));
    }
    if (bpf_map_update_elem(bpf_map__fd(s_->maps.l7_rings), &cpu, &fd, BPF_ANY) != 0) {
      const int err = -errno;
      close(fd);
      return Status::Error("place L7 ring for CPU " + std::to_string(cpu) + ": " +
                           bpf::LibbpfErrorText(err));
    }
    placed_[cpu] = true;
    return fd;
  }

  netflow_bpf* s_;
  bpf::RingBuffer& ring_;
  uint32_t ring_bytes_;
  std::vector<bool> placed_;  // by CPU: has its ring
  size_t group_ = 0;          // the rings' stream in ring_
};

}  // namespace nodescope::sensor::netflow
