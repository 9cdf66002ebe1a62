// Tests only: an EventSink that keeps every event, for probe tests to wait on a process's events.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "sensor/transport/event_sink.h"

namespace nodescope::sensor {

class CapturingSink : public EventSink {
 public:
  void Emit(v1::Event event) override {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  // The process events of `pid`, in arrival order, once `count` of them arrived (or after 5 s).
  std::vector<v1::Event> WaitFor(uint32_t pid, size_t count) {
    std::unique_lock lock(mu_);
    std::vector<v1::Event> mine;
    cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      mine = Of(pid);
      return mine.size() >= count;
    });
    return mine;
  }
  std::vector<v1::Event> Snapshot(uint32_t pid) {
    std::lock_guard lock(mu_);
    return Of(pid);
  }

 private:
  std::vector<v1::Event> Of(uint32_t pid) const {
    std::vector<v1::Event> mine;
    for (const auto& e : events_) {
      if (e.has_process() && e.process().pid() == pid) mine.push_back(e);
    }
    return mine;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Event> events_;
};

}  // namespace nodescope::sensor
