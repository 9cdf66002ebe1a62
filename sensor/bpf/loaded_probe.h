// The kernel side of one probe: the attach-strategy selection, and once a strategy attached its
// skeleton, links and ring buffer, torn down in the order the kernel needs (links first, so
// nothing new is queued; the ring buffer drained; the object last), plus the per-CPU counters the
// probe keeps, still readable after teardown. Every probe plugin holds one.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"
#include "sensor/bpf/ring_buffer.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::bpf {

class LoadedProbe {
 public:
  // `counter_slots`: the size of the probe's per-CPU `counters` array.
  LoadedProbe(std::string_view probe, uint32_t counter_slots);
  // Frees what Teardown did not, without delivering queued records: the handler may belong to
  // an owner that is being destroyed.
  ~LoadedProbe();
  LoadedProbe(const LoadedProbe&) = delete;
  LoadedProbe& operator=(const LoadedProbe&) = delete;

  // Tries `strategies` best first (only `forced` when it is not empty) with `attach`, which loads
  // one strategy (LoadSkeleton below) or fails leaving nothing loaded.
  Status Select(const std::vector<std::string>& strategies, std::string_view forced,
                const std::function<Status(const std::string&)>& attach);
  // Takes what a successful attach made: `programs` are those `links` attach, for Programs().
  void Adopt(std::function<void()> destroy_object, std::vector<LinkPtr> links,
             std::unique_ptr<RingBuffer> ring, int counters_fd,
             std::vector<bpf_program*> programs = {});
  // More links of the adopted object (hooks attached apart from the strategy's programs).
  void AdoptLinks(std::vector<LinkPtr> links);
  // The ring buffer, between Adopt and Teardown; for the probe's polling thread.
  RingBuffer* ring() { return ring_.get(); }
  // Detaches, delivers what is still queued, keeps the counters' last values, frees everything.
  void Teardown() { TeardownImpl(true); }

  // Slot i of the per-CPU counters summed over CPUs: live, or as they were at teardown.
  std::vector<uint64_t> KernelCounters() const;
  // The adopted programs the kernel can tell about, those `which` picks by name (all when it is
  // null); none before Adopt and after Teardown.
  std::vector<ProgramStats> Programs(bool (*which)(std::string_view program) = nullptr) const;
  // Their recursion misses, summed: each a run the kernel skipped, so an event not measured.
  uint64_t RecursionMisses(bool (*which)(std::string_view program) = nullptr) const;
  v1::ProbeStatus status() const;

 private:
  void TeardownImpl(bool deliver);
  std::vector<uint64_t> ReadCounters() const;  // mu_ held

  const uint32_t counter_slots_;
  mutable std::mutex mu_;  // guards everything below against status()/KernelCounters()
  Selection selection_;
  std::function<void()> destroy_object_;
  std::vector<LinkPtr> links_;
  std::unique_ptr<RingBuffer> ring_;
  int counters_fd_ = -1;
  std::vector<bpf_program*> programs_;  // of the object, so gone with it
  std::vector<uint64_t> final_counters_;
};

// What LoadSkeleton needs of a bpftool skeleton type `x_bpf`.
template <typename Skel>
struct SkeletonOps {
  Skel* (*open)();
  int (*load)(Skel*);
  void (*destroy)(Skel*);
  // The BPF_MAP_TYPE_RINGBUF the probe emits to; null for a probe user space only reads the maps
  // of, which then has no ring buffer.
  bpf_map* (*ring_map)(Skel*) = nullptr;
  bpf_map* (*counters_map)(Skel*);  // its per-CPU counters
  // Programs of the strategy to attach before the others (StrategyPrograms); null: object order.
  bool (*attach_first)(std::string_view program) = nullptr;
};

// Opens the skeleton, selects the programs of `strategy`, lets `configure` set its read-only data
// (and turn programs outside every strategy on, which it then attaches itself, or programs of the
// strategy off), loads, attaches the strategy's programs and opens the ring buffer with `handler`;
// hands all of it to `probe`. Returns the skeleton, owned by `probe` until its Teardown.
template <typename Skel>
Result<Skel*> LoadSkeleton(LoadedProbe& probe, const SkeletonOps<Skel>& ops,
                           std::string_view strategy, RingBuffer::Handler handler,
                           const std::function<Status(Skel*)>& configure = {}) {
  LibbpfLogCapture capture;
  std::unique_ptr<Skel, void (*)(Skel*)> skel(ops.open(), ops.destroy);
  if (!skel) return Status::Error("open: " + LibbpfErrorText(errno));
  if (Status s = SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  // After the selection: `configure` may also turn on programs outside every strategy.
  if (configure) {
    if (Status s = configure(skel.get()); !s.ok()) return s;
  }
  if (int err = ops.load(skel.get()); err != 0) {
    return Status::Error("load: " + LibbpfErrorText(err));
  }
  std::vector<bpf_program*> programs = StrategyPrograms(skel->obj, strategy, ops.attach_first);
  Result<std::vector<LinkPtr>> links = AttachPrograms(programs);
  if (!links.ok()) return links.status();
  std::unique_ptr<RingBuffer> ring;
  if (ops.ring_map != nullptr) {
    Result<std::unique_ptr<RingBuffer>> opened =
        RingBuffer::Open(bpf_map__fd(ops.ring_map(skel.get())), std::move(handler));
    if (!opened.ok()) return opened.status();
    ring = std::move(opened).value();
  }
  const int counters_fd = bpf_map__fd(ops.counters_map(skel.get()));
  Skel* raw = skel.release();
  probe.Adopt([raw, destroy = ops.destroy] { destroy(raw); }, std::move(links).value(),
              std::move(ring), counters_fd, std::move(programs));
  return raw;
}

}  // namespace nodescope::sensor::bpf
