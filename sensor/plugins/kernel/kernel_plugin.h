// The ebpf-kernel plugin: Netdata's eBPF families as Prometheus metrics. Every update_every it
// collects each family source (per-process families, IRQs, disk, ...) into one
// KernelMetricsEvent of deltas and hands it to the transport.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "sensor/plugins/kernel/options.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor::kernel {

class KernelPlugin {
 public:
  KernelPlugin();
  ~KernelPlugin();  // Stop()
  KernelPlugin(const KernelPlugin&) = delete;
  KernelPlugin& operator=(const KernelPlugin&) = delete;

  // Starts every source with an enabled family. A source that cannot load is reported in
  // Probes() (state "failed", with why) and the others run; fails only when none could start.
  Status Start(EventSink* sink, const KernelOptions& options);
  // Sends what was counted since the last event, then detaches everything.
  void Stop();
  // One entry per enabled family, including those no source serves here (with why).
  std::vector<v1::ProbeStatus> Probes() const;
  bool running() const { return thread_.joinable(); }

  // Resource limits (sensor/limits/): the sources running now, which may be shed one by one.
  size_t running_sources() const;
  // Sends what every source counted so far, then stops the running source whose programs ran
  // longest (with BPF statistics on), else the first in the fixed order: the per-process
  // families (a program runs at every system call), IRQs, disk, filesystem. Its families are
  // reported with state "shed" and `why` until RestoreShed. Returns them ("" when none runs).
  std::string ShedCostliest(const std::string& why);
  // Starts the source shed last again (its counts start over); returns its families ("" when
  // none was shed). One that cannot start again is logged and reported "failed".
  std::string RestoreShed();

 private:
  struct Running {
    size_t served;  // index in Sources()
    std::unique_ptr<FamilySource> source;
  };
  struct Shed {
    size_t served;
    std::string why;
  };
  void Run();
  void CollectAndEmit();
  std::string FamiliesOf(size_t served) const;

  EventSink* sink_ = nullptr;
  KernelOptions options_;
  mutable std::mutex sources_mu_;  // the three below: shedding runs on another thread
  std::vector<Running> sources_;
  std::vector<Shed> shed_;               // most recent last
  std::vector<v1::ProbeStatus> failed_;  // sources that did not start, per family
  std::chrono::steady_clock::time_point last_emit_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// Why a family has no source in this build or on this kernel ("" when it has one).
std::string UnservedReason(std::string_view family);

}  // namespace nodescope::sensor::kernel
