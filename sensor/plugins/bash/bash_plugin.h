// ebpf-bash: every line an interactive bash reads (readline's return value, from a uretprobe on
// each bash file the node runs), as a BashEvent with the shell's pid, parent, user, tty and
// cgroup.
#pragma once

#include <atomic>
#include <cstdint>
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
#include "sensor/plugins/bash/binaries.h"
#include "sensor/proc/process_cache.h"
#include "sensor/transport/event_sink.h"

struct bash_bpf;

namespace nodescope::sensor::bash {

class BashPlugin {
 public:
  static constexpr std::string_view kProbe = "bash";

  struct Counters {
    uint64_t lines = 0;              // BashEvents emitted
    uint64_t truncated = 0;          // of which cut at NS_BASH_LINE_MAX
    uint64_t ringbuf_drops = 0;      // lines the kernel could not queue
    uint64_t read_failed = 0;        // lines the kernel could not copy from the shell's memory
    uint64_t malformed = 0;          // records of an unexpected size (ABI skew)
    uint64_t duplicates = 0;         // lines a second attachment on the same real file saw
    uint64_t binaries_attached = 0;  // bash files probed
    uint64_t binaries_failed = 0;    // bash files the uprobe could not attach to
  };

  BashPlugin();
  ~BashPlugin();  // Stop()
  BashPlugin(const BashPlugin&) = delete;
  BashPlugin& operator=(const BashPlugin&) = delete;

  // Only "uprobe": readline is a user-space function, no kernel hook sees its result.
  static std::vector<std::string> Strategies();

  // An exec seen by the process probe, on its thread: queued when it may be bash, looked at on
  // this plugin's thread. Safe to call before Start (queued) and after Stop (ignored).
  void OnExec(uint32_t pid, std::string_view filename);

  // Loads the probe, attaches it to the host's bash (under `host_root`, HOST_ROOT, "" for /)
  // and to the bash files of the processes running now (under `proc_root`, HOST_PROC), then
  // emits lines to `sink` and attaches to new bash files from a thread until Stop(). `sink` and
  // `cache` (for user names) must outlive the plugin.
  Status Start(EventSink* sink, proc::ProcessCache* cache, const std::string& proc_root,
               const std::string& host_root, std::string_view forced_strategy = {});
  // Detaches every uprobe, delivers what is still queued, joins the thread.
  void Stop();

  // The strategy, state, and in `coverage` the bash files probed; files that could not be
  // probed are listed in `error` (the probe itself stays attached).
  v1::ProbeStatus probe_status() const;
  Counters counters() const;

 private:
  Status Attach(std::string_view strategy);
  Status AttachBinary(const std::string& exe);
  void OnRecord(std::span<const std::byte> record);
  void OfferPending();
  void PollLoop();

  EventSink* sink_ = nullptr;
  proc::ProcessCache* cache_ = nullptr;
  bpf::MonotonicToRealtime clock_;
  bpf::LoadedProbe probe_;
  bash_bpf* skel_ = nullptr;  // owned by probe_, between Attach and Teardown
  uint64_t attachments_ = 0;  // the last bpf cookie given; on the attaching thread only
  Binaries binaries_;         // Files() and counts are safe from any thread

  // Bounded: if the plugin's thread stalls, a burst of execs must not grow memory without end.
  static constexpr size_t kMaxPending = 4096;
  std::mutex pending_mu_;
  std::vector<uint32_t> pending_;
  bool stopped_ = false;  // under pending_mu_

  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> lines_{0}, truncated_{0}, malformed_{0};
};

}  // namespace nodescope::sensor::bash
