#include "aggregator/ingest/sensors.h"

#include <algorithm>

namespace nodescope::aggregator::ingest {

void SensorRegistry::StreamOpened(const std::string& node, const std::string& instance,
                                  int64_t now) {
  std::lock_guard lock(mu_);
  Entry& e = sensors_[instance];
  if (e.streams++ == 0) {
    e.info.set_connected(true);
    e.info.set_connected_since_unix_nano(now);
  }
  e.info.set_node(node);
  e.info.set_sensor_instance(instance);
  e.info.set_last_seen_unix_nano(now);
}

void SensorRegistry::StreamClosed(const std::string& instance, int64_t now) {
  std::lock_guard lock(mu_);
  auto it = sensors_.find(instance);
  if (it == sensors_.end()) return;
  Entry& e = it->second;
  if (e.streams > 0 && --e.streams == 0) e.info.set_connected(false);
  e.info.set_last_seen_unix_nano(now);
}

void SensorRegistry::SetStatus(const std::string& instance, const v1::SensorStatus& status,
                               int64_t now) {
  std::lock_guard lock(mu_);
  auto it = sensors_.find(instance);
  if (it == sensors_.end()) return;
  *it->second.info.mutable_status() = status;
  it->second.info.set_last_seen_unix_nano(now);
}

void SensorRegistry::Batch(const std::string& instance, uint64_t seq, uint64_t records,
                           bool duplicate, int64_t now) {
  std::lock_guard lock(mu_);
  auto it = sensors_.find(instance);
  if (it == sensors_.end()) return;
  v1::SensorInfo& info = it->second.info;
  info.set_last_seen_unix_nano(now);
  info.set_batches(info.batches() + 1);
  if (duplicate) {
    info.set_duplicate_batches(info.duplicate_batches() + 1);
  } else {
    info.set_records(info.records() + records);
    info.set_last_seq(std::max(info.last_seq(), seq));
  }
}

std::vector<v1::SensorInfo> SensorRegistry::Snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<v1::SensorInfo> out;
  out.reserve(sensors_.size());
  for (const auto& [instance, e] : sensors_) out.push_back(e.info);
  std::stable_sort(out.begin(), out.end(), [](const v1::SensorInfo& a, const v1::SensorInfo& b) {
    return a.node() < b.node();
  });
  return out;
}

int64_t SensorRegistry::connected() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& [instance, e] : sensors_) n += e.streams > 0 ? 1 : 0;
  return n;
}

size_t SensorRegistry::ForgetIdle(int64_t now, int64_t ttl_ns) {
  std::lock_guard lock(mu_);
  size_t forgotten = 0;
  for (auto it = sensors_.begin(); it != sensors_.end();) {
    const Entry& e = it->second;
    if (e.streams == 0 && now - e.info.last_seen_unix_nano() > ttl_ns) {
      it = sensors_.erase(it);
      ++forgotten;
    } else {
      ++it;
    }
  }
  return forgotten;
}

}  // namespace nodescope::aggregator::ingest
