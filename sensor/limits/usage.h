// What the resource limits measure (sensor/limits/monitor.h): the sensor's CPU time, its
// resident memory, and the bytes every network interface it sees receives and sends. A reading is
// the counters at one moment; usage is what happened between two readings.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nodescope::sensor::limits {

struct Reading {
  int64_t time_ns = 0;  // CLOCK_MONOTONIC
  int64_t cpu_ns = 0;   // CPU time of every thread of the process, user and system
  uint64_t rss_bytes = 0;
  std::map<std::string, uint64_t> nic_bytes;  // interface -> bytes received + sent
};

struct Usage {
  double cpu_cores = 0;        // CPU time over wall time
  double rss_bytes = 0;        // at the later reading
  double net_bytes_per_s = 0;  // of the busiest interface
  std::string nic;             // that interface; "" when none moved a byte
};

// /proc/net/dev: interface -> bytes received + bytes sent.
Result<std::map<std::string, uint64_t>> ParseNetDev(std::string_view text);
// The VmRSS line of /proc/<pid>/status, in bytes.
Result<uint64_t> ParseStatusRss(std::string_view text);

// Reads this process's counters now: CLOCK_PROCESS_CPUTIME_ID, /proc/self/status and
// /proc/self/net/dev (the interfaces of the sensor's network namespace: the node's, with
// hostNetwork).
Result<Reading> ReadNow();

// Usage between two readings of one process. An interface missing from either, or whose counter
// went back (recreated), is left out of the network figure.
Usage Between(const Reading& before, const Reading& after);

}  // namespace nodescope::sensor::limits
