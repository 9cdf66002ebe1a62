// The transport's steps that move batches between memory and its on-disk spool. All run on the
// sender thread (SpoolRemainingAtStop after it has ended), which is the spool's only user; the
// disk I/O happens with the lock released.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include "sensor/transport/transport.h"

namespace nodescope::sensor {

bool Transport::ToMemoryLocked() const {
  return spool_ == nullptr ||
         (spool_unloaded_ == 0 &&
          pending_events_ + (closed_.empty() ? 0 : closed_.front().events) <= memory_high_);
}

void Transport::SpillerLoop() {
  pthread_setname_np(pthread_self(), "ns-tx-spool");
  std::unique_lock lock(mu_);
  while (!shutdown_) {
    if (!closed_.empty() && !spool_blocked_ && !ToMemoryLocked()) {
      SpillLocked(lock);
      continue;
    }
    // Woken when a batch closes or the spool has room again; the timeout covers the sender
    // framing batches into memory past memory_high_.
    wake_spiller_.wait_for(lock, options_.batch_interval);
  }
}

void Transport::SpillLocked(std::unique_lock<std::mutex>& lock) {
  Closed closed = std::move(closed_.front());
  closed_.pop_front();
  ++spool_unloaded_;  // counted while written: nothing later may go to memory ahead of it
  lock.unlock();
  const std::string prefix = BatchPrefix(closed);
  Status written;
  uint64_t spool_bytes = 0;
  {
    std::lock_guard spool_lock(spool_mu_);
    written = spool_->Append(closed.seq, closed.events, {prefix, closed.bytes});
    spool_bytes = spool_->bytes();
  }
  lock.lock();
  if (!written.ok()) {
    // Stays first in line in memory; new events are dropped (spool_full) once memory is full too.
    closed_.push_front(std::move(closed));
    --spool_unloaded_;
    spool_blocked_ = true;
    if (!spool_full_warned_) {  // one line per episode, not per retry
      spool_full_warned_ = true;
      spdlog::warn(
          "transport: {}; keeping batches in memory (buffer_size {} events), then dropping",
          written.message(), options_.buffer_size);
    }
    return;
  }
  spool_full_warned_ = false;
  stats_.buffered_events -= closed.events;
  stats_.spooled_events += closed.events;
  stats_.spool_bytes = spool_bytes;
  ++stats_.batches_spooled;
  closed.bytes.clear();
  if (spare_buffers_.size() < kSpareBuffers) spare_buffers_.push_back(std::move(closed.bytes));
  wake_sender_.notify_one();  // it may be waiting to read this batch back
}

bool Transport::UnspillLocked(std::unique_lock<std::mutex>& lock) {
  if (spool_ == nullptr || spool_unloaded_ == 0 || pending_events_ >= memory_high_) return false;
  lock.unlock();
  std::optional<Spool::Loaded> loaded;
  uint64_t spool_bytes = 0;
  {
    std::lock_guard spool_lock(spool_mu_);
    loaded = spool_->Load();
    spool_bytes = spool_->bytes();
  }
  lock.lock();
  if (!loaded) return false;  // still being written: the spiller wakes this thread
  --spool_unloaded_;
  stats_.spool_bytes = spool_bytes;
  if (spool_blocked_) {
    spool_blocked_ = false;
    wake_spiller_.notify_one();
  }
  if (loaded->batch) {
    Spool::Batch& batch = *loaded->batch;
    grpc::Slice slice(std::move(batch.message));
    pending_.push_back({batch.seq, batch.events, grpc::ByteBuffer(&slice, 1), /*on_disk=*/true});
    pending_events_ += batch.events;
    stats_.buffered_events += batch.events;
    stats_.spooled_events -= batch.events;
    ++stats_.batches_unspooled;
    return true;
  }
  // Sent empty in its place, so sequence numbers stay without gaps for the acks.
  spdlog::error("transport: {}; its {} events are lost (dropped, reason spool_damaged)",
                loaded->error, loaded->lost_events);
  stats_.dropped_spool_damaged += loaded->lost_events;
  stats_.spooled_events -= loaded->lost_events;
  pending_.push_back({loaded->lost_seq, 0, EncodeBatch(Closed{loaded->lost_seq, 0, {}}), false});
  return true;
}

bool Transport::ReleaseLocked(std::unique_lock<std::mutex>& lock) {
  if (spool_ == nullptr || released_through_ >= stats_.acked_seq) return false;
  const uint64_t through = stats_.acked_seq;
  lock.unlock();
  uint64_t spool_bytes = 0;
  {
    std::lock_guard spool_lock(spool_mu_);
    spool_->Release(through);
    spool_bytes = spool_->bytes();
  }
  lock.lock();
  released_through_ = through;
  stats_.spool_bytes = spool_bytes;
  if (spool_blocked_) {
    spool_blocked_ = false;
    wake_spiller_.notify_one();
  }
  return true;
}

void Transport::SpoolRemainingAtStop() {
  // Everything unacknowledged, in sequence order: batches in memory (those read back from the
  // spool are still on disk) and batches closed but never framed.
  std::vector<Closed> closed;
  std::vector<Pending> pending;
  {
    std::lock_guard lock(mu_);
    pending.assign(pending_.begin(), pending_.end());
    for (Closed& c : closed_) closed.push_back(std::move(c));
  }
  uint64_t spooled_batches = 0;
  std::string last_error;
  auto account = [&](const Status& written) {
    if (!written.ok()) {
      last_error = written.message();
      return false;
    }
    ++spooled_batches;
    return true;
  };
  // The sender and spiller have ended, so nothing else changes these batches: what is written
  // is counted as it goes.
  uint64_t moved_events = 0;
  for (const Pending& p : pending) {
    if (p.on_disk || spool_->Contains(p.seq)) {
      moved_events += p.events;
      continue;
    }
    std::vector<grpc::Slice> slices;
    if (!p.bytes.Dump(&slices).ok()) continue;
    std::vector<std::string_view> pieces;
    for (const grpc::Slice& slice : slices) {
      pieces.emplace_back(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    if (account(spool_->Append(p.seq, p.events, pieces))) moved_events += p.events;
  }
  for (const Closed& c : closed) {
    const std::string prefix = BatchPrefix(c);
    if (account(spool_->Append(c.seq, c.events, {prefix, c.bytes}))) moved_events += c.events;
  }
  std::lock_guard lock(mu_);
  // What is on disk now is not lost: the next sensor replays it.
  stats_.buffered_events -= moved_events;
  stats_.spooled_events += moved_events;
  stats_.batches_spooled += spooled_batches;
  stats_.spool_bytes = spool_->bytes();
  if (stats_.spooled_events > 0) {
    spdlog::info("transport: {} unacknowledged events ({} bytes) are in {} for the next start",
                 stats_.spooled_events, spool_->bytes(), spool_->path());
  }
  if (!last_error.empty()) spdlog::warn("transport: at stop, {}", last_error);
}

}  // namespace nodescope::sensor
