// RAII reader of a BPF ring buffer map, and per-CPU counter reads.
#pragma once

#include <bpf/libbpf.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "sensor/bpf/merged_rings.h"

namespace nodescope::sensor::bpf {

class RingBuffer {
 public:
  // Called on the polling thread for each record, in the order the kernel committed them.
  using Handler = RecordHandler;

  static Result<std::unique_ptr<RingBuffer>> Open(int map_fd, Handler handler);
  // Reads another ring buffer map of the same probe in the same Poll, with its own handler.
  Status Add(int map_fd, Handler handler);
  // Reads the ring buffer maps `map_fds` in the same Poll as one stream: their records, each
  // with a bpf_ktime_get_ns() u64 at `ts_offset`, oldest first across the maps
  // (DrainInTimeOrder). For a writer that picks the ring by CPU. Keeps its own descriptor of each
  // map.
  // With `flush` the maps' records are batches of events (merged_rings.h): before each drain
  // `flush` has every writer send what it holds and returns the moment (bpf_ktime_get_ns's clock)
  // before it began; no event newer than that is handed out in that drain.
  // Returns the group's number, for AddToMerged.
  Result<size_t> AddMerged(const std::vector<int>& map_fds, size_t ts_offset, Handler handler,
                           std::function<uint64_t()> flush = nullptr);
  // Reads one more map as part of the stream AddMerged made (`group`): a ring for a writer that
  // appeared later (a CPU brought online). On the polling thread, between Polls.
  Status AddToMerged(size_t group, int map_fd);
  ~RingBuffer();
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  // Waits up to `timeout` for a wakeup, then hands every record in the ring to the handler,
  // including those submitted without a wakeup (BPF_RB_NO_WAKEUP). Returns how many were
  // consumed; an interrupted wait (EINTR) still reads what is there.
  Result<int> Poll(std::chrono::milliseconds timeout);

 private:
  RingBuffer() = default;
  static int OnRecord(void* ctx, void* data, size_t size);
  // Maps the ring `map_fd` (a dup of it) into groups_[group] and adds it to the epoll set.
  Status MapInto(size_t group, int map_fd);

  // Rings read as one stream (AddMerged); each view's positions are the start of its two
  // mappings.
  struct Group {
    std::vector<RingView> views;
    std::vector<int> fds;  // dups of the maps' descriptors, closed with the reader
    size_t ts_offset = 0;
    Handler handler;
    std::function<uint64_t()> flush;
    BatchedDrain batched;
  };

  // One per map; stable addresses, they are libbpf's callback contexts.
  std::vector<std::unique_ptr<Handler>> handlers_;
  ring_buffer* rb_ = nullptr;
  std::vector<Group> groups_;
  // Poll waits on libbpf's epoll fd and the groups' maps (edge-triggered: records a drain
  // leaves for the next one must not wake the reader again at once).
  int epoll_fd_ = -1;
};

// Sums slot `key` of a BPF_MAP_TYPE_PERCPU_ARRAY of __u64 over every possible CPU.
Result<uint64_t> ReadPerCpuSum(int map_fd, uint32_t key);

}  // namespace nodescope::sensor::bpf
