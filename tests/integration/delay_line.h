// A fixed delay between two hosts, for tests of RTT measurement: namespaces A and B on one
// subnet, bridged at layer 2 through a middle namespace where ns-delay-bridge holds every frame
// for `delay` in each direction, so A and B see an RTT of 2 * delay plus a fraction of a ms.
//
// Why a program: sch_netem and sch_fq are not built on the test machines; tbf only shapes rate
// (a packet waits only while its bucket is empty, so the delay follows the load), and a tc BPF
// program can set a departure time (EDT) but only sch_fq honours it. Holding frames in user
// space is deterministic and needs nothing but AF_PACKET.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"

namespace nodescope::test {

// Counters ns-delay-bridge prints when it stops.
struct DelayBridgeStats {
  uint64_t a_to_b_frames = 0;
  uint64_t a_to_b_bytes = 0;  // Ethernet bytes; a GSO frame counts whole
  uint64_t b_to_a_frames = 0;
  uint64_t b_to_a_bytes = 0;
  uint64_t dropped = 0;
  uint64_t late_frames = 0;  // sent more than 1 ms after their due time
  int64_t max_late_us = 0;   // the worst lag of a send behind its due time
};

// Parses the bridge's closing line; false when `line` is not one.
bool ParseDelayBridgeStats(const std::string& line, DelayBridgeStats* stats);

class DelayLine {
 public:
  // Creates the three namespaces and the two veth links, fills the neighbour tables (permanent
  // entries, so no ARP or neighbour discovery crosses the delay), and starts the bridge.
  static Result<std::unique_ptr<DelayLine>> Create(std::chrono::microseconds delay);
  ~DelayLine();
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // Side A: 198.18.x.1 / fd00:198:18:x::1; side B: .2 / ::2.
  const Endpoint& a() const { return a_; }
  const Endpoint& b() const { return b_; }
  const Netns& middle() const { return *middle_; }
  std::chrono::microseconds delay() const { return delay_; }
  // Stops the bridge and returns its counters; the link is cut from then on.
  Result<DelayBridgeStats> Stop();

 private:
  DelayLine() = default;
  std::unique_ptr<Netns> ns_a_;
  std::unique_ptr<Netns> ns_b_;
  std::unique_ptr<Netns> middle_;
  Endpoint a_;
  Endpoint b_;
  std::chrono::microseconds delay_{0};
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Subprocess> bridge_;  // last: stopped before the namespaces go
};

}  // namespace nodescope::test
