#include "sensor/transport/replayer.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace nodescope::sensor {
namespace {

void Add(const TransportStats& t, SpoolReplayer::Stats* out) {
  out->batches_acked += t.batches_acked;
  out->pending_events += t.buffered_events + t.spooled_events;
  out->dropped_spool_damaged += t.dropped_spool_damaged;
}

}  // namespace

SpoolReplayer::SpoolReplayer(TransportOptions options, Transport::StatusFn status)
    : options_(std::move(options)), status_(std::move(status)) {
  if (options_.spool_dir.empty()) return;
  std::vector<std::string> instances = Spool::Orphans(options_.spool_dir);
  if (instances.empty()) return;
  done_.instances = instances.size();
  thread_ = std::thread(&SpoolReplayer::Run, this, std::move(instances));
}

SpoolReplayer::~SpoolReplayer() { Stop(); }

void SpoolReplayer::Run(std::vector<std::string> instances) {
  pthread_setname_np(pthread_self(), "ns-tx-replay");
  for (const std::string& instance : instances) {
    TransportOptions options = options_;
    options.instance = instance;
    auto transport = Transport::Create(options, status_);
    if (!transport.ok()) {
      spdlog::warn("spool: cannot replay {}: {}", instance, transport.status().message());
      continue;
    }
    const uint64_t events = transport.value()->Stats().spooled_events;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      current_ = transport.value().get();
    }
    bool drained = false;
    while (!drained) {
      drained = transport.value()->Flush(std::chrono::steady_clock::now() +
                                         std::chrono::milliseconds(500)) &&
                transport.value()->Drained();
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    std::lock_guard lock(mu_);
    current_ = nullptr;
    // Stopped early: what is left stays on disk (Stop spools it) for the next start.
    transport.value()->Stop(std::chrono::steady_clock::now());
    const TransportStats t = transport.value()->Stats();
    Add(t, &done_);
    if (drained) {
      done_.events += events - t.dropped_spool_damaged;
      spdlog::info("spool: replayed {} batches ({} events) of stopped instance {}", t.batches_acked,
                   events - t.dropped_spool_damaged, instance);
    }
    if (stopping_) break;
  }
}

void SpoolReplayer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

SpoolReplayer::Stats SpoolReplayer::stats() const {
  std::lock_guard lock(mu_);
  Stats out = done_;
  if (current_ != nullptr) Add(current_->Stats(), &out);
  return out;
}

}  // namespace nodescope::sensor
