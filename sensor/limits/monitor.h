// Resource limits (DataKit's cpu_limit, mem_limit, net_limit): a thread measures the sensor's
// usage once per window and, through the Controller's hysteresis, sheds load one step at a time in
// the configured order, or asks the process to stop (on_limit: exit). Each change is one log line
// naming the resource, its usage and the limit; the state is in Samples() and status().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nodescope/v1/ingest.pb.h"
#include "sensor/limits/controller.h"
#include "sensor/limits/steps.h"
#include "sensor/self_metrics.h"

namespace nodescope::sensor::limits {

// What shedding left out so far, as the probes counted it.
struct Skipped {
  uint64_t l7_calls_payload = 0;   // sends/receives on HTTP connections not copied: l7_payload
  uint64_t l7_calls_sampling = 0;  // the same: connections sampling left out
  uint64_t l7_connections_payload = 0;
  uint64_t l7_connections_sampling = 0;
};

// What the monitor acts on. A null function: that part does not run here, and its steps are
// left out of the plan.
struct Actions {
  // HTTP payload capture: none (payload_off), or of 1 in `keep_one_in` new connections (1: all).
  std::function<void(bool payload_off, uint32_t keep_one_in)> set_l7;
  // Kernel family sources that may be shed (one step each); shed_kernel stops the costliest
  // running one and restore_kernel restarts the one shed last; both return the families they
  // concern ("" when there was none).
  size_t kernel_sources = 0;
  std::function<std::string(const std::string& why)> shed_kernel;
  std::function<std::string()> restore_kernel;
  std::function<Skipped()> skipped;
  std::function<void()> status_changed;  // the status the aggregator shows is stale
  std::function<void()> request_exit;    // on_limit: exit; main stops the process
};

struct MonitorOptions {
  Limits limits;
  bool exit_on_limit = false;
  std::vector<std::string> order = {kStepSampling, kStepL7Payload, kStepKernelFamilies};
  uint32_t sampling = 10;  // keep 1 in this many new HTTP connections
  std::chrono::nanoseconds window = std::chrono::seconds(5);
  int over_windows = 3;
  int under_windows = 6;
  double recover_ratio = 0.8;
};

class Monitor {
 public:
  explicit Monitor(MonitorOptions options);
  ~Monitor();  // Stop()
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Whether any limit is set; without one the monitor does nothing and reports nothing.
  bool enabled() const { return options_.limits.any(); }
  // What to act on, once the plugins run: makes the plan of steps.
  void Configure(Actions actions);
  // The steps, one per level, in the order they are shed.
  std::vector<std::string> plan() const;

  // Measures every window on a thread until Stop (nothing when no limit is set).
  void Start();
  void Stop();
  // One window's usage (the thread calls it; tests call it directly).
  void OnWindow(const Usage& usage, std::chrono::nanoseconds window);

  void AppendSamples(std::vector<Sample>& s) const;
  // "cpu 0.500 cores, network 1.0 MiB/s, measured every 5s": the limits set.
  std::string LimitsText() const;
  // Probe "limits": state "ok" or "shedding", what is shed and why.
  v1::ProbeStatus status() const;
  // Why the process must stop (on_limit: exit); "" until then.
  std::string exit_reason() const;

 private:
  void Run();
  // Applies (on) or undoes the step at `index` of the plan; mu_ held.
  void Apply(size_t index, bool on, const std::string& why);
  std::string ShedText() const;  // mu_ held

  const MonitorOptions options_;

  mutable std::mutex mu_;
  Actions actions_;  // set by Configure, before the thread starts
  std::vector<std::string> plan_;
  std::condition_variable cv_;
  bool stop_ = true;
  std::thread thread_;
  Controller controller_;
  Usage last_;
  bool measured_ = false;
  bool payload_off_ = false;
  bool sampling_on_ = false;
  std::vector<std::string> kernel_shed_;  // families of each kernel source shed, in order
  std::string last_reason_;               // the log line of the last change
  std::string exit_reason_;
  uint64_t sheds_ = 0, restores_ = 0;
  // Seconds each step of kSteps had at least one level on.
  std::array<double, 3> shed_seconds_{};
};

}  // namespace nodescope::sensor::limits
