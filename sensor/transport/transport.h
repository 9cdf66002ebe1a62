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
//
// With a spool (spool_dir), unacknowledged batches beyond half of buffer_size go to disk instead
// of memory, in order behind the ones in memory, and are read back as acks make room; Stop()
// writes every batch still unacknowledged there. A transport opened on a spool that already holds
// batches (options.instance naming a stopped sensor's instance) replays them. Only when the spool
// is full too are new events dropped, as dropped{reason="spool_full"}.
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
#include "common/tls/grpc_tls.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/transport/backoff.h"
#include "sensor/transport/event_sink.h"
#include "sensor/transport/spool.h"

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
  // TLS to the aggregator (tls_ca, tls_cert, tls_key, tls_server_name); empty: plaintext.
  tls::ChannelSecurity security;

  std::string spool_dir;                      // empty: no spool, memory only
  uint64_t spool_size = uint64_t(256) << 20;  // bytes the spool may hold on disk
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
  uint64_t dropped_spool_full = 0;       // events: memory and spool were both full
  uint64_t dropped_spool_damaged = 0;    // events: a spooled batch could not be read back
  uint64_t buffered_events = 0;          // in memory: open batch + closed, unacknowledged batches
  uint64_t spooled_events = 0;           // on disk only, waiting to be read back and sent
  uint64_t spool_bytes = 0;              // the spool's files
  uint64_t batches_spooled = 0;          // batches written to the spool
  uint64_t batches_unspooled = 0;        // batches read back from the spool
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
  // Emit, but an event that does not fit is neither taken nor counted as dropped: false. For the
  // sensor's reports of its own losses, which it sends again later.
  bool EmitIfRoom(v1::Event event);

  // Closes the open batch and waits until every batch closed so far is acknowledged or the
  // deadline passes. True when everything was acknowledged.
  bool Flush(std::chrono::steady_clock::time_point deadline);
  // Flush(deadline), then ends the stream and the threads. Events still unacknowledged are
  // counted as dropped. Later Emit() calls are counted as dropped{reason="stopped"}.
  bool Stop(std::chrono::steady_clock::time_point deadline);
  // The status changed: send a new status message on the current stream.
  void StatusChanged();

  TransportStats Stats() const;
  // Nothing left to send: every batch closed so far is acknowledged and the spool is empty.
  bool Drained() const;
  const std::string& instance() const { return instance_; }
  const TransportOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  using Stream = grpc::ClientReaderWriter<grpc::ByteBuffer, v1::AggregatorMessage>;
  // Batch buffers kept for reuse: enough for the emitter to close a few batches while the sender
  // frames the previous ones.
  static constexpr size_t kSpareBuffers = 4;
  struct Closed {
    uint64_t seq;
    size_t events;
    std::string bytes;  // the events, each framed as Batch field 5
  };
  struct Pending {
    uint64_t seq;
    size_t events;
    grpc::ByteBuffer bytes;  // the encoded SensorMessage, shared (refcounted) with writes
    bool on_disk = false;    // read back from the spool, whose file stays until acknowledged
  };

  Transport(TransportOptions options, StatusFn status);
  v1::SensorMessage StatusMessage() const;
  // The SensorMessage fields that precede a batch's events (identity, header, seq).
  std::string BatchPrefix(const Closed& batch) const;
  grpc::ByteBuffer EncodeBatch(const Closed& batch) const;
  Status OpenSpool();
  // Whether the next closed batch goes to memory (else to the spool, behind what is there).
  bool ToMemoryLocked() const;
  // The spiller thread writes closed batches to disk: the sender may be blocked in a write to an
  // aggregator that stopped reading (a network cut), and memory must not fill meanwhile.
  void SpillerLoop();
  void SpillLocked(std::unique_lock<std::mutex>& lock);
  // Sender-thread steps with the spool; each returns true when it did something.
  bool UnspillLocked(std::unique_lock<std::mutex>& lock);
  bool ReleaseLocked(std::unique_lock<std::mutex>& lock);
  void SpoolRemainingAtStop();

  void CloseOpenLocked();
  // Emit and EmitIfRoom: false when the event was not taken (counted when `count_drop`).
  bool Append(const v1::Event& event, bool count_drop);
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
  size_t pending_events_ = 0;
  // Without a spool, unlimited (Emit() enforces buffer_size); with one, half of buffer_size:
  // closed batches beyond it go to disk.
  size_t memory_high_ = SIZE_MAX;
  bool spool_blocked_ = false;  // the spool refused a batch; retried once space is freed
  size_t spool_unloaded_ = 0;   // batches on disk (or being written) not read back yet
  std::condition_variable wake_spiller_;
  bool spool_full_warned_ = false;
  uint64_t released_through_ = 0;  // spool files up to this seq are deleted
  uint64_t next_send_seq_ = 1;     // on the current stream
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

  // Used by the sender and spiller threads (and Stop() once they have ended), under spool_mu_,
  // never while holding mu_.
  std::unique_ptr<Spool> spool_;
  std::mutex spool_mu_;
  std::thread spiller_;

  // Owned by the sender thread.
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::thread reader_;
  std::thread sender_;
  bool ever_connected_ = false;
};

}  // namespace nodescope::sensor
