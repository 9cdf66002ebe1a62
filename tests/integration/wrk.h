// wrk as the load generator for throughput benches: runs it for a fixed time and parses its
// summary, so a bench can compare nginx throughput with and without a probe attached.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "tests/integration/netns.h"

namespace nodescope::test {

struct WrkOptions {
  const Netns* ns = nullptr;  // where wrk runs; nullptr: the root namespace
  std::string url;
  std::chrono::seconds duration{2};
  int connections = 10;
  int threads = 2;  // wrk needs connections >= threads
};

// wrk's summary. Byte figures are wrk's own (1 KB = 1024 B), rounded as it prints them.
struct WrkResult {
  uint64_t requests = 0;  // completed responses
  double duration_s = 0;
  double bytes_read = 0;
  double requests_per_sec = 0;
  double transfer_bytes_per_sec = 0;
  double latency_avg_us = 0;
  double latency_max_us = 0;
  double latency_p50_us = 0;  // the percentiles need --latency, which RunWrk passes
  double latency_p90_us = 0;
  double latency_p99_us = 0;
  uint64_t non_2xx_3xx = 0;
  uint64_t socket_errors = 0;  // connect + read + write + timeout
  std::string output;          // wrk's stdout as printed
};

// Parses wrk's stdout; an error when the summary lines are missing.
Result<WrkResult> ParseWrkOutput(const std::string& out);

// Runs wrk to completion.
Result<WrkResult> RunWrk(const WrkOptions& options);

}  // namespace nodescope::test
