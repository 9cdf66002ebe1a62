#pragma once

#include <chrono>
#include <cstdint>

namespace nodescope::aggregator {

inline int64_t NowUnixNano() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace nodescope::aggregator
