// The sensor as one object: process cache, probes, transport to the aggregator and the self
// HTTP endpoint, started in that order and stopped in reverse.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http/server.h"
#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"
#include "sensor/config.h"
#include "sensor/limits/monitor.h"
#include "sensor/plugins/bash/bash_plugin.h"
#include "sensor/plugins/conntrack/conntrack_plugin.h"
#include "sensor/plugins/kernel/kernel_plugin.h"
#include "sensor/plugins/netflow/netflow_plugin.h"
#include "sensor/plugins/process/process_plugin.h"
#include "sensor/proc/container_sink.h"
#include "sensor/proc/process_cache.h"
#include "sensor/proc/users.h"
#include "sensor/self_metrics.h"
#include "sensor/transport/replayer.h"
#include "sensor/transport/transport.h"

namespace nodescope::sensor {

// The netflow plugin's options from the configuration; reads the ephemeral port range when
// ephemeral_port is 0. Also checks the connection filters, so a bad one is a configuration error.
Result<netflow::NetflowOptions> NetflowOptionsFrom(const SensorConfig& config);
// The ebpf-kernel plugin's options; checks apps_groups, so a bad group is a configuration error.
Result<kernel::KernelOptions> KernelOptionsFrom(const SensorConfig& config);
// The resource limits' options (sensor_limits.cc); the limits' forms were checked by the schema.
limits::MonitorOptions LimitOptionsFrom(const SensorConfig& config);

class Sensor {
 public:
  explicit Sensor(SensorConfig config);
  ~Sensor();

  // Starts everything; on error what was started is stopped again. The environment preflight
  // (root, BTF, tracefs, bpffs) must have passed.
  Status Start();
  // Sends the current status (probes, counters) to the aggregator, so its Status API is current.
  void RefreshStatus();
  // Sends what was dropped (nodescope_sensor_dropped_total) since the last report as LostEvent
  // events, which subscribers get as lost_events; a report that does not fit in the buffer is
  // sent with the next. Called by main every second.
  void ReportLosses();
  // Detaches every probe, then flushes what is buffered to the aggregator until `deadline`.
  void Stop(std::chrono::steady_clock::time_point deadline);

  v1::SensorStatus status() const;
  std::vector<Sample> Samples() const;
  const std::string& node() const { return node_; }
  // With on_limit: exit, why a resource limit ended the sensor ("" otherwise). The sensor then
  // raises SIGUSR1, which main waits for with SIGINT and SIGTERM (sensor_limits.cc).
  std::string limit_exit_reason() const;

 private:
  std::vector<v1::ProbeStatus> Probes() const;
  bool Enabled(std::string_view plugin) const;
  void AppendNetflowSamples(std::vector<Sample>& s) const;
  void AppendSpoolSamples(const TransportStats& t, std::vector<Sample>& s) const;
  void AppendConntrackSamples(std::vector<Sample>& s) const;
  void AppendBashSamples(std::vector<Sample>& s) const;
  // Resource limits (cpu_limit, mem_limit, net_limit): what the monitor may shed, then its
  // thread; after the plugins started (sensor_limits.cc).
  void StartLimits();

  const SensorConfig config_;
  const std::string node_;
  const int64_t started_unix_nano_;
  proc::UserResolver users_;
  proc::ProcessCache cache_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<SpoolReplayer> replayer_;          // what stopped sensors left in spool_dir
  std::unique_ptr<proc::ContainerSink> containers_;  // in front of transport_: plugins emit here
  process::ProcessPlugin process_;
  conntrack::ConntrackPlugin conntrack_;  // before netflow_, which looks translations up in it
  netflow::NetflowPlugin netflow_;
  bash::BashPlugin bash_;
  kernel::KernelPlugin kernel_;
  limits::Monitor limits_;  // cpu_limit, mem_limit, net_limit: idle when none is set
  std::unique_ptr<http::HttpServer> http_;
  std::atomic<uint64_t> kept_capabilities_{0};  // set at the end of Start, read by scrapes
  // (reason, probe) -> dropped events already sent as LostEvent (ReportLosses; main's thread).
  std::map<std::pair<std::string, std::string>, uint64_t> losses_reported_;
  bool stopped_ = false;
};

}  // namespace nodescope::sensor
