// BPF programs stamp events with bpf_ktime_get_ns() (CLOCK_MONOTONIC); records carry Unix time.
// The offset between the two clocks changes when the wall clock is set or slewed, so the reader
// recalibrates now and then (the poll loop does it every second).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace nodescope::sensor::bpf {

inline int64_t ReadClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);  // cannot fail for CLOCK_MONOTONIC / CLOCK_REALTIME
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// bpf_ktime_get_ns()'s clock, which the probes stamp events with.
inline uint64_t MonotonicNs() { return static_cast<uint64_t>(ReadClockNs(CLOCK_MONOTONIC)); }
// Unix time, as records carry it.
inline int64_t NowUnixNano() { return ReadClockNs(CLOCK_REALTIME); }

class MonotonicToRealtime {
 public:
  MonotonicToRealtime() { Calibrate(); }

  // Samples the offset; the realtime read that sits in the shortest monotonic window wins, so a
  // preemption between two reads does not skew it.
  void Calibrate() {
    int64_t best_window = INT64_MAX;
    int64_t best_offset = 0;
    for (int i = 0; i < 5; ++i) {
      int64_t before = ReadClockNs(CLOCK_MONOTONIC);
      int64_t real = ReadClockNs(CLOCK_REALTIME);
      int64_t after = ReadClockNs(CLOCK_MONOTONIC);
      if (after - before < best_window) {
        best_window = after - before;
        best_offset = real - (before + (after - before) / 2);
      }
    }
    offset_ns_.store(best_offset, std::memory_order_relaxed);
  }

  int64_t ToUnixNanos(uint64_t monotonic_ns) const {
    return static_cast<int64_t>(monotonic_ns) + offset_ns_.load(std::memory_order_relaxed);
  }

  int64_t offset_ns() const { return offset_ns_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace nodescope::sensor::bpf
