// A real gRPC SensorService for the transport's tests: it records every message each server
// instance receives (kept across restarts) and acknowledges cumulatively.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nodescope/v1/ingest.grpc.pb.h"

namespace nodescope::sensor::fake {

using Clock = std::chrono::steady_clock;

// Everything every server instance received, kept across server restarts.
class Recorder {
 public:
  struct Entry {
    int stream;  // which stream (counted across servers) carried it
    v1::SensorMessage message;
  };

  void Add(int stream, const v1::SensorMessage& message) {
    std::lock_guard lock(mu_);
    entries_.push_back({stream, message});
    if (message.has_batch()) seqs_.insert(message.batch().seq());
    changed_.notify_all();
  }
  int NewStream() { return streams_++; }
  std::vector<Entry> Entries() const {
    std::lock_guard lock(mu_);
    return entries_;
  }
  // Waits until batches 1..seq have all arrived at least once.
  bool WaitForSeq(uint64_t seq, Clock::duration timeout) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] {
      for (uint64_t s = 1; s <= seq; ++s) {
        if (!seqs_.count(s)) return false;
      }
      return true;
    });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Entry> entries_;
  std::set<uint64_t> seqs_;
  std::atomic<int> streams_{0};
};

// Acknowledges cumulatively after every batch, unless told to hold acks back.
class FakeAggregator final : public v1::SensorService::Service {
 public:
  explicit FakeAggregator(Recorder* recorder) : recorder_(recorder) {}
  void set_acking(bool on) { acking_ = on; }
  // Stops reading the streams (as an aggregator behind a cut network would): the sensor's writes
  // block once HTTP/2 flow control runs out.
  void set_stalled(bool on) { stalled_ = on; }

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AggregatorMessage, v1::SensorMessage>* stream) override {
    const int id = recorder_->NewStream();
    v1::SensorMessage message;
    uint64_t highest = 0;
    while (true) {
      while (stalled_ && !context->IsCancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!stream->Read(&message)) break;
      recorder_->Add(id, message);
      if (!message.has_batch()) continue;
      highest = std::max(highest, message.batch().seq());
      if (!acking_) continue;
      v1::AggregatorMessage ack;
      ack.mutable_ack()->set_seq(highest);
      if (!stream->Write(ack)) break;
    }
    return grpc::Status::OK;
  }

 private:
  Recorder* recorder_;
  std::atomic<bool> acking_{true};
  std::atomic<bool> stalled_{false};
};

inline std::unique_ptr<grpc::Server> StartServer(grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  // What the aggregator must allow for the sensors' keepalive pings on idle streams; without it
  // gRPC servers answer pings more frequent than every 5 minutes with GOAWAY "too_many_pings".
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddListeningPort("127.0.0.1:" + std::to_string(*port), grpc::InsecureServerCredentials(),
                           port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

inline void Kill(std::unique_ptr<grpc::Server>& server) {
  server->Shutdown(std::chrono::system_clock::now());  // cancels the open streams at once
  server->Wait();
  server.reset();
}

}  // namespace nodescope::sensor::fake
