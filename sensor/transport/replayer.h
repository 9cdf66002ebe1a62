// Sends what stopped sensors left in spool_dir: one Transport per orphaned instance, under that
// instance's id (the aggregator's duplicate check by instance and seq then applies to batches it
// committed before the previous sensor saw the ack), one instance at a time, oldest id first.
// A replay interrupted by Stop() stays on disk for the next start.
#pragma once

#include <memory>
#include <mutex>
#include <thread>

#include "sensor/transport/transport.h"

namespace nodescope::sensor {

class SpoolReplayer {
 public:
  struct Stats {
    uint64_t instances = 0;       // orphaned spools found at start
    uint64_t batches_acked = 0;   // replayed batches the aggregator acknowledged
    uint64_t events = 0;          // events in them
    uint64_t pending_events = 0;  // still waiting on disk or in memory
    uint64_t dropped_spool_damaged = 0;
  };

  // `options` are the live transport's; instance is replaced per orphan. No thread when
  // options.spool_dir is empty or holds nothing to replay.
  SpoolReplayer(TransportOptions options, Transport::StatusFn status);
  ~SpoolReplayer();  // Stop()
  // Ends the replay within about half a second; what is left stays on disk.
  void Stop();
  Stats stats() const;

 private:
  void Run(std::vector<std::string> instances);

  const TransportOptions options_;
  const Transport::StatusFn status_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  Transport* current_ = nullptr;  // under mu_
  Stats done_;                    // replays finished or stopped
  std::thread thread_;
};

}  // namespace nodescope::sensor
