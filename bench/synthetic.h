// Synthetic process events with the field sizes real ones have (comm up to 15 bytes, paths of
// 10-60 bytes, real-looking pids, users and cgroup ids), cheap enough to generate that the
// source is not what a benchmark measures.
#pragma once

#include <cstdint>

#include "nodescope/v1/events.pb.h"

namespace nodescope::bench {

class SyntheticProcessEvents {
 public:
  explicit SyntheticProcessEvents(uint64_t seed) : state_(seed | 1) {}
  // Fills `event` (fork, exec and exit in turn, as a real process tree produces them).
  void Next(int64_t time_unix_nano, v1::Event* event);

 private:
  uint64_t Random();
  uint64_t state_;
  uint64_t count_ = 0;
};

}  // namespace nodescope::bench
