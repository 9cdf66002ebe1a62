// Which sensors are (or were recently) connected, with their last status and counters, for
// ObserverService.Status and the sensors_connected gauge.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "nodescope/v1/observer.pb.h"

namespace nodescope::aggregator::ingest {

class SensorRegistry {
 public:
  // A stream of this instance opened / closed. An instance may briefly have two streams (a
  // reconnect before the old stream is torn down); it is connected while any is open.
  void StreamOpened(const std::string& node, const std::string& instance, int64_t now);
  void StreamClosed(const std::string& instance, int64_t now);
  void SetStatus(const std::string& instance, const v1::SensorStatus& status, int64_t now);
  void Batch(const std::string& instance, uint64_t seq, uint64_t records, bool duplicate,
             int64_t now);

  std::vector<v1::SensorInfo> Snapshot() const;
  int64_t connected() const;
  // Forgets disconnected instances not seen for `ttl_ns`.
  size_t ForgetIdle(int64_t now, int64_t ttl_ns);

 private:
  struct Entry {
    v1::SensorInfo info;
    int streams = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> sensors_;  // by sensor instance
};

}  // namespace nodescope::aggregator::ingest
