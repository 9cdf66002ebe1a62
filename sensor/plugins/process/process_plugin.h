// The process lifecycle probe (bpf/progs/process.bpf.c): exec, fork and exit of processes, turned
// into ProcessEvents and kept in the process cache every other plugin resolves pids with.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/bpf/clock.h"
#include "sensor/bpf/loaded_probe.h"
#include "sensor/proc/process_cache.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor::process {

class ProcessPlugin {
 public:
  static constexpr std::string_view kProbe = "process";

  struct Counters {
    uint64_t exec = 0;
    uint64_t fork = 0;
    uint64_t exit = 0;
    uint64_t ringbuf_drops = 0;    // events the kernel could not queue (ring buffer full)
    uint64_t fork_unresolved = 0;  // tracepoint strategy: forks whose child was not found
    uint64_t malformed = 0;        // records of an unexpected size (never seen unless ABI skew)
  };

  ProcessPlugin();
  ~ProcessPlugin();  // Stop()
  ProcessPlugin(const ProcessPlugin&) = delete;
  ProcessPlugin& operator=(const ProcessPlugin&) = delete;

  // The strategies this probe offers, best first: its natural hooks are the sched_process_*
  // tracepoints, so there is no fentry or kprobe variant.
  static std::vector<std::string> Strategies();

  // Loads and attaches with the first strategy that works (only `forced_strategy` when it is not
  // empty), then emits events to `sink` from a polling thread until Stop(). `sink` and `cache`
  // must outlive the plugin. The environment preflight (sensor/bpf/environment.h) comes first.
  Status Start(EventSink* sink, proc::ProcessCache* cache, std::string_view forced_strategy = {});
  // Called on the polling thread for every exec (the new program's pid and the path executed),
  // after its event is emitted; it must be cheap. Set before Start.
  using ExecObserver = std::function<void(uint32_t pid, std::string_view filename)>;
  void SetExecObserver(ExecObserver observer) { exec_observer_ = std::move(observer); }
  // Detaches every program, delivers what is still queued, joins the thread, frees everything.
  void Stop();

  // What the strategy selection did; state "failed" with the reasons after a failed Start.
  v1::ProbeStatus probe_status() const;
  Counters counters() const;

 private:
  Status Attach(std::string_view strategy);
  void OnRecord(std::span<const std::byte> record);
  void PollLoop();

  EventSink* sink_ = nullptr;
  proc::ProcessCache* cache_ = nullptr;
  ExecObserver exec_observer_;
  bpf::MonotonicToRealtime clock_;

  bpf::LoadedProbe probe_;
  std::thread poller_;
  std::atomic<bool> stop_{false};

  std::atomic<uint64_t> exec_{0}, fork_{0}, exit_{0}, malformed_{0};
};

}  // namespace nodescope::sensor::process
