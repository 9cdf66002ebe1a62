#include "sensor/transport/transport.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "fmt/format.h"

namespace nodescope::sensor {
namespace {

constexpr char kStreamMethod[] = "/nodescope.v1.SensorService/Stream";
// Wire tags (field number << 3 | wire type) of the fields Emit() and EncodeBatch() write by hand.
constexpr uint8_t kSensorMessageBatchTag = (1 << 3) | 2;  // SensorMessage.batch, length-delimited
constexpr uint8_t kBatchSeqTag = (3 << 3) | 0;            // Batch.seq, varint
constexpr uint8_t kBatchEventTag = (5 << 3) | 2;          // Batch.events, length-delimited
constexpr size_t kMaxVarint = 10;
// How long a graceful close waits for the aggregator to end the stream after WritesDone.
constexpr auto kCloseWait = std::chrono::seconds(1);

std::string RandomInstance() {
  std::random_device random;
  std::string id;
  for (int i = 0; i < 4; ++i) id += fmt::format("{:08x}", static_cast<uint32_t>(random()));
  return id;
}

grpc::ByteBuffer Encode(const v1::SensorMessage& message) {
  grpc::ByteBuffer bytes;
  bool own_buffer = false;
  // Serializing into a ByteBuffer once lets every resend share the same refcounted slices.
  grpc::Status status =
      grpc::SerializationTraits<v1::SensorMessage>::Serialize(message, &bytes, &own_buffer);
  if (!status.ok()) spdlog::error("transport: encoding a batch failed: {}", status.error_message());
  return bytes;
}

}  // namespace

std::map<std::string, uint64_t> TransportStats::Dropped() const {
  return {{"buffer_full", dropped_buffer_full},
          {"stopped", dropped_stopped},
          {"unacked_at_stop", dropped_unacked_at_stop},
          {"spool_full", dropped_spool_full},
          {"spool_damaged", dropped_spool_damaged}};
}

Result<std::unique_ptr<Transport>> Transport::Create(TransportOptions options, StatusFn status) {
  if (options.trace_server.empty()) return Status::Error("transport: trace_server is empty");
  if (options.node.empty()) return Status::Error("transport: node name is empty");
  if (options.batch_size == 0) return Status::Error("transport: batch_size must be at least 1");
  if (options.batch_max_bytes < 1024) {
    return Status::Error("transport: batch_max_bytes must be at least 1024");
  }
  if (options.buffer_size < options.batch_size) {
    return Status::Error(fmt::format("transport: buffer_size ({}) must hold one batch ({})",
                                     options.buffer_size, options.batch_size));
  }
  if (options.batch_interval <= std::chrono::nanoseconds(0)) {
    return Status::Error("transport: batch_interval must be positive");
  }
  if (!status) return Status::Error("transport: no status callback");
  std::unique_ptr<Transport> transport(new Transport(std::move(options), std::move(status)));
  if (!transport->options_.spool_dir.empty()) {
    Status opened = transport->OpenSpool();
    if (!opened.ok()) return opened;
  }
  transport->sender_ = std::thread(&Transport::SenderLoop, transport.get());
  if (transport->spool_)
    transport->spiller_ = std::thread(&Transport::SpillerLoop, transport.get());
  return transport;
}

Transport::Transport(TransportOptions options, StatusFn status)
    : options_(std::move(options)),
      status_fn_(std::move(status)),
      instance_(options_.instance.empty() ? RandomInstance() : options_.instance),
      backoff_(options_.backoff_initial, options_.backoff_max, std::random_device()()) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options_.keepalive_time.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options_.keepalive_timeout.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // The default (2) stops keepalive pings on a stream that has been idle, which is exactly when
  // a dead peer goes unnoticed.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's own subchannel backoff (default 1 s growing to 120 s) would otherwise sit under ours
  // and keep the channel in TRANSIENT_FAILURE long after the aggregator is back.
  args.SetInt(
      GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
      static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.backoff_initial).count()));
  args.SetInt(
      GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
      static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.backoff_max).count()));
  channel_ = tls::CreateChannel(options_.trace_server, options_.security, args);
  v1::SensorMessage identity;
  identity.set_node(options_.node);
  identity.set_sensor_instance(instance_);
  identity_bytes_ = identity.SerializeAsString();
  v1::Batch header;
  header.set_node(options_.node);
  header.set_sensor_instance(instance_);
  for (const auto& [key, value] : options_.extra_tags) {
    v1::Tag* tag = header.add_extra_tags();
    tag->set_key(key);
    tag->set_value(value);
  }
  batch_header_bytes_ = header.SerializeAsString();
  next_connect_at_ = Clock::now();
}

Transport::~Transport() { Stop(Clock::now()); }

Status Transport::OpenSpool() {
  auto spool = Spool::Open(options_.spool_dir, instance_, options_.spool_size);
  if (!spool.ok()) return spool.status();
  spool_ = std::move(spool).value();
  memory_high_ = std::max<size_t>(1, options_.buffer_size / 2);
  std::lock_guard lock(mu_);
  if (spool_->batches() > 0) {
    // A stopped sensor's batches: continue its sequence where its acknowledgements ended.
    stats_.acked_seq = spool_->first_seq() - 1;
    max_sent_seq_ = stats_.acked_seq;
    released_through_ = stats_.acked_seq;
    next_send_seq_ = spool_->first_seq();
    next_seq_ = spool_->last_seq() + 1;
    stats_.spooled_events = spool_->unloaded_events();
    spool_unloaded_ = spool_->batches();
    spdlog::info("transport: replaying {} spooled batches ({} events, {} bytes) of instance {}",
                 spool_->batches(), spool_->unloaded_events(), spool_->bytes(), instance_);
  }
  stats_.spool_bytes = spool_->bytes();
  return Status::Ok();
}

std::string Transport::BatchPrefix(const Closed& batch) const {
  // A serialized message is the concatenation of its fields in any order, so the batch is the
  // fixed header, the seq and the events as Emit() serialized them.
  using google::protobuf::io::CodedOutputStream;
  const size_t batch_size = batch_header_bytes_.size() + 1 +
                            CodedOutputStream::VarintSize64(batch.seq) + batch.bytes.size();
  std::string prefix = identity_bytes_;
  prefix.reserve(prefix.size() + 2 + 2 * kMaxVarint + batch_header_bytes_.size());
  uint8_t varint[kMaxVarint];
  prefix.push_back(static_cast<char>(kSensorMessageBatchTag));
  prefix.append(reinterpret_cast<char*>(varint),
                CodedOutputStream::WriteVarint64ToArray(batch_size, varint) - varint);
  prefix += batch_header_bytes_;
  prefix.push_back(static_cast<char>(kBatchSeqTag));
  prefix.append(reinterpret_cast<char*>(varint),
                CodedOutputStream::WriteVarint64ToArray(batch.seq, varint) - varint);
  return prefix;
}

grpc::ByteBuffer Transport::EncodeBatch(const Closed& batch) const {
  const grpc::Slice slices[2] = {grpc::Slice(BatchPrefix(batch)), grpc::Slice(batch.bytes)};
  return grpc::ByteBuffer(slices, 2);
}

v1::SensorMessage Transport::StatusMessage() const {
  v1::SensorMessage message;
  message.set_node(options_.node);
  message.set_sensor_instance(instance_);
  *message.mutable_status() = status_fn_();
  return message;
}

void Transport::Emit(v1::Event event) { Append(event, true); }

bool Transport::EmitIfRoom(v1::Event event) { return Append(event, false); }

bool Transport::Append(const v1::Event& event, bool count_drop) {
  // Serialized before taking the lock, so concurrent emitters only contend for the append.
  thread_local std::string framed;
  const size_t size = event.ByteSizeLong();
  framed.resize(1 + kMaxVarint + size);
  auto* out = reinterpret_cast<uint8_t*>(framed.data());
  *out++ = kBatchEventTag;
  out = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size),
                                                                      out);
  out = event.SerializeWithCachedSizesToArray(out);
  framed.resize(out - reinterpret_cast<uint8_t*>(framed.data()));

  std::lock_guard lock(mu_);
  if (stopping_) {
    if (!count_drop) return false;
    ++stats_.events_in;
    ++stats_.dropped_stopped;
    return false;
  }
  // Dropping here, before the event joins a batch, keeps sequence numbers free of gaps.
  if (stats_.buffered_events >= options_.buffer_size) {
    if (!count_drop) return false;
    ++stats_.events_in;
    ++(spool_blocked_ ? stats_.dropped_spool_full : stats_.dropped_buffer_full);
    return false;
  }
  ++stats_.events_in;
  // No wake-up for a batch's first event: the sender never sleeps longer than batch_interval,
  // so it wakes in time for this batch's deadline on its own (one futex wake per batch saved).
  if (open_events_++ == 0) open_since_ = Clock::now();
  open_ += framed;
  ++stats_.buffered_events;
  if (open_events_ >= options_.batch_size || open_.size() >= options_.batch_max_bytes) {
    CloseOpenLocked();
    wake_sender_.notify_one();
  }
  return true;
}

void Transport::CloseOpenLocked() {
  if (open_events_ == 0) return;
  closed_.push_back({next_seq_++, open_events_, std::move(open_)});
  open_.clear();
  if (!spare_buffers_.empty()) {
    open_ = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  }
  open_events_ = 0;
  ++stats_.batches_closed;
  if (spool_) wake_spiller_.notify_one();
}

void Transport::StatusChanged() {
  std::lock_guard lock(mu_);
  status_dirty_ = true;
  wake_sender_.notify_one();
}

bool Transport::Flush(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  CloseOpenLocked();
  wake_sender_.notify_one();
  const uint64_t target = next_seq_ - 1;
  return acked_.wait_until(lock, deadline, [&] { return stats_.acked_seq >= target; });
}

bool Transport::Stop(Clock::time_point deadline) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return stats_.buffered_events == 0;
    stopping_ = true;
    stop_deadline_ = deadline;
  }
  const bool all_acked = Flush(deadline);
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    // The sender may be blocked connecting or writing to an aggregator that does not answer.
    if (!all_acked && live_context_ != nullptr) live_context_->TryCancel();
    wake_sender_.notify_one();
  }
  if (sender_.joinable()) sender_.join();
  if (spiller_.joinable()) {
    wake_spiller_.notify_all();
    spiller_.join();
  }
  if (spool_) SpoolRemainingAtStop();
  std::lock_guard lock(mu_);
  stats_.dropped_unacked_at_stop += stats_.buffered_events;
  if (stats_.buffered_events > 0) {
    spdlog::warn("transport: stopped with {} events not acknowledged by {}", stats_.buffered_events,
                 options_.trace_server);
  }
  return all_acked;
}

TransportStats Transport::Stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Transport::Drained() const {
  std::lock_guard lock(mu_);
  return open_events_ == 0 && closed_.empty() && pending_.empty() && stats_.spooled_events == 0;
}

void Transport::SenderLoop() {
  pthread_setname_np(pthread_self(), "ns-tx-send");  // names show in top -H and perf
  std::unique_lock lock(mu_);
  while (true) {
    if (open_events_ > 0 && Clock::now() - open_since_ >= options_.batch_interval) {
      CloseOpenLocked();
    }
    if (ReleaseLocked(lock)) continue;
    if (!closed_.empty() && ToMemoryLocked()) {
      // Framed once, outside the lock; resends share the ByteBuffer's slices.
      Closed closed = std::move(closed_.front());
      closed_.pop_front();
      lock.unlock();
      Pending pending{closed.seq, closed.events, EncodeBatch(closed)};
      closed.bytes.clear();
      lock.lock();
      pending_events_ += pending.events;
      pending_.push_back(std::move(pending));
      if (spare_buffers_.size() < kSpareBuffers) spare_buffers_.push_back(std::move(closed.bytes));
      continue;
    }
    if (shutdown_) break;
    if (stream_ != nullptr && UnspillLocked(lock)) continue;

    if (stream_ != nullptr && stream_broken_) {
      lock.unlock();
      Teardown(/*graceful=*/false);
      lock.lock();
      next_connect_at_ = Clock::now() + backoff_.Next();
      continue;
    }
    if (stream_ == nullptr && Clock::now() >= next_connect_at_) {
      lock.unlock();
      const bool connected = Connect();
      lock.lock();
      if (!connected) {
        ++stats_.connect_failures;
        next_connect_at_ = Clock::now() + backoff_.Next();
      }
      continue;
    }
    if (stream_ != nullptr && status_dirty_) {
      status_dirty_ = false;
      lock.unlock();
      const grpc::ByteBuffer status = Encode(StatusMessage());
      lock.lock();
      if (!WriteLocked(lock, status)) stream_broken_ = true;
      continue;
    }
    if (stream_ != nullptr && !pending_.empty() && next_send_seq_ <= pending_.back().seq) {
      const uint64_t seq = next_send_seq_;
      const grpc::ByteBuffer bytes = pending_[seq - pending_.front().seq].bytes;
      // Recorded before the write: the ack may arrive before this thread gets the lock back.
      if (seq > max_sent_seq_) {
        max_sent_seq_ = seq;
        ++stats_.batches_sent;
      } else {
        ++stats_.resent;
      }
      if (!WriteLocked(lock, bytes)) {
        stream_broken_ = true;
        continue;
      }
      if (next_send_seq_ == seq) next_send_seq_ = seq + 1;  // an ack may have moved it on
      continue;
    }

    // At most batch_interval: a batch opened while this thread sleeps is then closed on time
    // without Emit() having to wake it.
    Clock::time_point wake = open_events_ > 0 ? open_since_ + options_.batch_interval
                                              : Clock::now() + options_.batch_interval;
    if (stream_ == nullptr) wake = std::min(wake, next_connect_at_);
    wake_sender_.wait_until(lock, wake);
  }
  lock.unlock();
  Teardown(/*graceful=*/true);
}

bool Transport::WriteLocked(std::unique_lock<std::mutex>& lock, const grpc::ByteBuffer& message) {
  lock.unlock();
  const bool ok = stream_->Write(message);
  lock.lock();
  return ok;
}

bool Transport::Connect() {
  auto context = std::make_unique<grpc::ClientContext>();
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return false;
    live_context_ = context.get();
  }
  // The generated stub would serialize every batch again on each resend; writing the encoded
  // ByteBuffer through the same factory the generated code uses avoids that.
  const grpc::internal::RpcMethod method(kStreamMethod, grpc::internal::RpcMethod::BIDI_STREAMING,
                                         channel_);
  std::unique_ptr<Stream> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, v1::AggregatorMessage>::Create(
          channel_.get(), method, context.get()));
  const bool ok = stream->Write(Encode(StatusMessage()));
  if (!ok) {
    const grpc::Status status = stream->Finish();
    stream.reset();
    std::lock_guard lock(mu_);
    live_context_ = nullptr;
    // One line per outage, not one per attempt.
    if (failures_in_row_++ == 0) {
      spdlog::warn("transport: cannot reach aggregator {}: {} (retrying with backoff)",
                   options_.trace_server, status.error_message());
    }
    return false;
  }
  context_ = std::move(context);
  stream_ = std::move(stream);
  {
    std::lock_guard lock(mu_);
    stream_broken_ = false;
    reader_done_ = false;
    stats_.connected = true;
    ++stats_.connects;
    if (ever_connected_) ++stats_.reconnects;
    ever_connected_ = true;
    failures_in_row_ = 0;
    next_send_seq_ = stats_.acked_seq + 1;
    status_dirty_ = false;
    const uint64_t unacked = max_sent_seq_ - stats_.acked_seq;
    spdlog::info("transport: streaming to {} as {} (instance {}){}", options_.trace_server,
                 options_.node, instance_,
                 unacked > 0 ? fmt::format(", resending {} unacknowledged batches", unacked)
                             : std::string());
  }
  reader_ = std::thread(&Transport::ReaderLoop, this, stream_.get());
  return true;
}

void Transport::ReaderLoop(Stream* stream) {
  pthread_setname_np(pthread_self(), "ns-tx-acks");
  v1::AggregatorMessage message;
  while (stream->Read(&message)) {
    if (message.has_ack()) OnAck(message.ack().seq());
  }
  std::lock_guard lock(mu_);
  reader_done_ = true;
  stream_broken_ = true;
  wake_sender_.notify_one();
}

void Transport::OnAck(uint64_t ack) {
  std::lock_guard lock(mu_);
  // An aggregator may only acknowledge what it was sent.
  const uint64_t seq = std::min(ack, max_sent_seq_);
  if (seq <= stats_.acked_seq) return;
  stats_.acked_seq = seq;
  while (!pending_.empty() && pending_.front().seq <= seq) {
    stats_.buffered_events -= pending_.front().events;
    pending_events_ -= pending_.front().events;
    ++stats_.batches_acked;
    pending_.pop_front();
  }
  next_send_seq_ = std::max(next_send_seq_, seq + 1);
  backoff_.Reset();  // the stream carried data end to end: the next outage starts short again
  acked_.notify_all();
  if (spool_ != nullptr) wake_sender_.notify_one();  // spool files to delete, batches to read
}

void Transport::Teardown(bool graceful) {
  if (stream_ == nullptr) return;
  if (graceful) {
    // Lets the aggregator finish the stream, so it sees a clean end rather than a cancel.
    stream_->WritesDone();
    std::unique_lock lock(mu_);
    const auto limit = std::min(stop_deadline_, Clock::now() + kCloseWait);
    wake_sender_.wait_until(lock, std::max(limit, Clock::now()), [&] { return reader_done_; });
  }
  {
    std::lock_guard lock(mu_);
    if (!reader_done_) context_->TryCancel();
  }
  reader_.join();
  const grpc::Status status = stream_->Finish();
  {
    std::lock_guard lock(mu_);
    live_context_ = nullptr;
    stats_.connected = false;
  }
  if (!graceful) {
    spdlog::warn("transport: stream to {} ended: {} (reconnecting)", options_.trace_server,
                 status.ok() ? "closed by the aggregator" : status.error_message());
  }
  stream_.reset();
  context_.reset();
}

}  // namespace nodescope::sensor
