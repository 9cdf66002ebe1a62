// The sensor's side of the resource limits (sensor/limits/): what the monitor may shed in this
// sensor, and how it asks main to stop.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "sensor/limits/quantity.h"
#include "sensor/sensor.h"

namespace nodescope::sensor {

limits::MonitorOptions LimitOptionsFrom(const SensorConfig& config) {
  limits::MonitorOptions o;
  // Checked by the schema already: a value that did not parse never gets here.
  auto value = [](const Result<double>& r) { return r.ok() ? r.value() : 0.0; };
  o.limits.cpu_cores = value(limits::ParseCpuLimit(config.cpu_limit));
  o.limits.rss_bytes = value(limits::ParseMemLimit(config.mem_limit));
  o.limits.net_bytes_per_s = value(limits::ParseNetLimit(config.net_limit));
  o.exit_on_limit = config.on_limit == "exit";
  o.order = config.limit_shed_order;
  o.sampling = static_cast<uint32_t>(config.limit_sampling);
  o.window = config.limit_window;
  return o;
}

void Sensor::StartLimits() {
  if (!limits_.enabled()) return;
  limits::Actions a;
  const bool httpflow = std::find(config_.l7net_enabled.begin(), config_.l7net_enabled.end(),
                                  "httpflow") != config_.l7net_enabled.end() ||
                        std::find(config_.l7net_enabled.begin(), config_.l7net_enabled.end(),
                                  "httpflow-tls") != config_.l7net_enabled.end();
  if (Enabled("ebpf-net") && httpflow && netflow_.probe_status().state() == "attached") {
    a.set_l7 = [this](bool payload_off, uint32_t keep_one_in) {
      if (Status s = netflow_.SetL7Limit(payload_off, keep_one_in); !s.ok()) {
        spdlog::error("resource limit: cannot change the HTTP payload capture: {}", s.message());
      }
    };
    a.skipped = [this] {
      const netflow::NetflowPlugin::Counters c = netflow_.counters();
      return limits::Skipped{.l7_calls_payload = c.l7_shed_calls_payload,
                             .l7_calls_sampling = c.l7_shed_calls_sampled,
                             .l7_connections_payload = c.l7_shed_conns_payload,
                             .l7_connections_sampling = c.l7_shed_conns_sampled};
    };
  }
  if (Enabled("ebpf-kernel") && kernel_.running()) {
    a.kernel_sources = kernel_.running_sources();
    a.shed_kernel = [this](const std::string& why) { return kernel_.ShedCostliest(why); };
    a.restore_kernel = [this] { return kernel_.RestoreShed(); };
  }
  a.status_changed = [this] {
    if (transport_) transport_->StatusChanged();
  };
  // main blocks SIGUSR1 in every thread and waits for it (sigtimedwait): it stops the sensor
  // there, since a process exits only from main.
  a.request_exit = [] { ::kill(::getpid(), SIGUSR1); };
  limits_.Configure(std::move(a));
  const std::vector<std::string> plan = limits_.plan();
  spdlog::info(
      "resource limits: {}; on_limit {}; steps to shed in order: {}", limits_.LimitsText(),
      config_.on_limit,
      plan.empty() ? "none (exceeding is only counted)" : fmt::format("{}", fmt::join(plan, ", ")));
  limits_.Start();
}

std::string Sensor::limit_exit_reason() const { return limits_.exit_reason(); }

}  // namespace nodescope::sensor
