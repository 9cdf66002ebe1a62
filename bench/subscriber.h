// The bench's subscriber: follows the aggregator's process records and counts those of the
// measured run, taking CPU readings the moment it has them all.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench/child.h"

namespace nodescope::bench {

struct ResponseCounts {
  uint64_t measured = 0;  // records with time >= threshold
  uint64_t other = 0;     // older records (the warm-up)
  uint64_t lost = 0;      // lost_events counts
  bool ok = true;         // false when the bytes are not a SubscribeResponse
};

// Walks a serialized SubscribeResponse at the wire level: every record's framing is checked and
// its time read, but no Record is built. A real client decodes each record (strings, tags,
// fields), which costs about ten times more; --decode-records measures that instead.
ResponseCounts CountResponse(grpc::ByteBuffer* response, int64_t threshold);
// The same counts from fully decoded records.
ResponseCounts DecodeAndCountResponse(grpc::ByteBuffer* response, int64_t threshold);

class Subscriber {
 public:
  struct End {
    std::chrono::steady_clock::time_point at;
    double self_cpu = 0;
    double aggregator_cpu = 0;
    double subscriber_cpu = 0;
  };

  Subscriber(std::shared_ptr<grpc::Channel> channel, ChildProcess* aggregator, bool decode);
  ~Subscriber();

  // From now on records at or after `threshold` count towards `target`.
  void Measure(int64_t threshold, uint64_t target);
  pid_t tid();  // the subscriber thread's kernel id, once it runs
  uint64_t warm() const { return warm_; }
  uint64_t measured() const { return measured_; }
  uint64_t lost() const { return lost_; }
  // Waits for the target; false when no record arrived for `stall` or the stream ended.
  bool Wait(std::chrono::steady_clock::duration stall, End* end);
  std::string error();

 private:
  void Run();

  std::shared_ptr<grpc::Channel> channel_;
  ChildProcess* aggregator_;
  const bool decode_;
  grpc::ClientContext context_;
  std::mutex mu_;
  std::condition_variable changed_;
  pid_t tid_ = 0;
  std::atomic<int64_t> threshold_{INT64_MAX};
  uint64_t target_ = 0;
  std::atomic<uint64_t> warm_{0}, measured_{0}, lost_{0};
  bool done_ = false;
  bool finished_ = false;  // the stream ended
  End end_;
  std::string error_;
  std::thread thread_;  // last: starts once everything above is constructed
};

}  // namespace nodescope::bench
