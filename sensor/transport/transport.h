// Streams the sensor's events to the aggregator over SensorService.Stream.
//
// Emit() never waits on the network: it serializes the event (outside the lock) and appends the
// bytes to the open batch under a mutex. A batch is closed when it holds `batch_size` events,
// `batch_max_bytes` bytes, or `batch_interval` after its first event, and then gets the next
// sequence number (1, 2, 3, ... without gaps for this sensor instance). Closed batches stay in
// memory until the aggregator acknowledges them (acks are cumulative); at most `buffer_size`
// events are held in total, counting the open batch. An event that does not fit is dropped
// before it gets a sequence number, and counted as dropped{reason="buffer_full"}.
//
// A sender thread frames each closed batch once (resends share its bytes), connects, and writes;
// a reader thread per stream reads acks. When the stream breaks the sender reconnects after an
// exponential backoff with full jitter, sends the sensor's status first, then every
// unacknowledged batch in order. The aggregator drops duplicates by (sensor_instance, seq).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/transport/backoff.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor {

struct TransportOptions {
  std::string trace_server;                       // aggregator "host:port"
  std::string node;                               // node identity, the records' host tag
  std::map<std::string, std::string> extra_tags;  // config `tags`, carried in every batch
  std::string instance;                           // empty: a random 128-bit hex id

  size_t batch_size = 512;
  // A batch is also closed at this many bytes, so one message stays far below gRPC's limits
  // whatever the events hold.
  size_t batch_max_bytes = 1 << 20;
  std::chrono::nanoseconds batch_interval = std::chrono::milliseconds(200);
  size_t buffer_size = 262144;  // events held (open + unacknowledged batches)

  std::chrono::nanoseconds backoff_initial = std::chrono::milliseconds(100);
  std::chrono::nanoseconds backoff_max = std::chrono::seconds(5);

  // HTTP/2 keepalive: a silently dead aggregator (no RST, e.g. its node lost power) is noticed
  // after keepalive_time + keepalive_timeout instead of after the kernel's TCP timeout (minutes).
  std::chrono::milliseconds keepalive_time = std::chrono::seconds(20);
  std::chrono::milliseconds keepalive_timeout = std::chrono::seconds(10);
};

struct TransportStats {
  uint64_t events_in = 0;       // every Emit() call, dropped or not
  uint64_t batches_closed = 0;  // sequence numbers handed out (the last seq)
  uint64_t batches_sent = 0;    // first transmissions
  uint64_t batches_acked = 0;
  uint64_t resent = 0;                   // batches written again on a new stream
  uint64_t dropped_buffer_full = 0;      // events: the buffer held buffer_size events
  uint64_t dropped_stopped = 0;          // events: Emit() after Stop()
  uint64_t dropped_unacked_at_stop = 0;  // events still unacknowledged when Stop() gave up
  uint64_t buffered_events = 0;          // open batch + closed, unacknowledged batches
  uint64_t acked_seq = 0;
  bool connected = false;
  uint64_t connects = 0;          // streams opened
  uint64_t reconnects = 0;        // streams opened after a previous one broke
  uint64_t connect_failures = 0;  // stream attempts that failed

  // dropped_total by reason, as the sensor's metrics and status report it.
  std::map<std::string, uint64_t> Dropped() const;
};

class Transport : public EventSink {
 public:
  // Supplies the status message sent first on every (re)connected stream.
  using StatusFn = std::function<v1::SensorStatus()>;

  // Validates the options and starts the sender thread; the first connection is attempted at
  // once, in the background.
  static Result<std::unique_ptr<Transport>> Create(TransportOptions options, StatusFn status);
  ~Transport() override;  // Stop(now) if Stop() was not called

  void Emit(v1::Event event) override;

  // Closes the open batch and waits until every batch closed so far is acknowledged or the
  // deadline passes. True when everything was acknowledged.
  bool Flush(std::chrono::steady_clock::time_point deadline);
  // Flush(deadline), then ends the stream and the threads. Events still unacknowledged are
  // counted as dropped. Later Emit() calls are counted as dropped{reason="stopped"}.
  bool Stop(std::chrono::steady_clock::time_point deadline);
  // The status changed: send a new status message on the current stream.
  void StatusChanged();

  TransportStats Stats() const;
  const std::string& instance() const { return instance_; }
  const TransportOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  using Stream = grpc::ClientReaderWriter<grpc::ByteBuffer, v1::AggregatorMessage>;
  struct Closed {
    uint64_t seq;
    size_t events;
    std::string bytes;  // the events, each framed as Batch field 5
  };
  struct Pending {
    uint64_t seq;
    size_t events;
    grpc::ByteBuffer bytes;  // the encoded SensorMessage, shared (refcounted) with writes
  };

  Transport(TransportOptions options, StatusFn status);
  v1::SensorMessage StatusMessage() const;
  grpc::ByteBuffer EncodeBatch(const Closed& batch) const;

  void CloseOpenLocked();
  void SenderLoop();
  bool Connect();
  void Teardown(bool graceful);
  void ReaderLoop(Stream* stream);
  void OnAck(uint64_t seq);
  bool WriteLocked(std::unique_lock<std::mutex>& lock, const grpc::ByteBuffer& message);

  const TransportOptions options_;
  const StatusFn status_fn_;
  const std::string instance_;
  std::shared_ptr<grpc::Channel> channel_;

  mutable std::mutex mu_;
  std::condition_variable wake_sender_;
  std::condition_variable acked_;
  std::string identity_bytes_;      // SensorMessage node + sensor_instance, serialized
  std::string batch_header_bytes_;  // Batch node + sensor_instance + extra_tags, serialized

  std::string open_;  // the batch being filled: serialized events
  size_t open_events_ = 0;
  // Emptied batch buffers handed back by the sender. Reusing them keeps the emitting thread
  // from allocating, and another thread from freeing, a batch-sized block per batch: such
  // cross-thread frees of large blocks made glibc consolidate the emitter's heap over and over.
  std::vector<std::string> spare_buffers_;
  Clock::time_point open_since_;
  uint64_t next_seq_ = 1;
  std::deque<Closed> closed_;    // closed, not yet framed
  std::deque<Pending> pending_;  // encoded, not yet acknowledged
  uint64_t next_send_seq_ = 1;   // on the current stream
  uint64_t max_sent_seq_ = 0;
  bool status_dirty_ = false;
  bool stopping_ = false;  // no new events
  bool shutdown_ = false;  // the sender thread ends
  bool stream_broken_ = false;
  bool reader_done_ = false;
  int failures_in_row_ = 0;
  Clock::time_point stop_deadline_ = Clock::time_point::max();
  Clock::time_point next_connect_at_;
  Backoff backoff_;
  grpc::ClientContext* live_context_ = nullptr;  // so Stop() can cancel a blocked call
  TransportStats stats_;

  // Owned by the sender thread.
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::thread reader_;
  std::thread sender_;
  bool ever_connected_ = false;
};

}  // namespace nodescope::sensor
