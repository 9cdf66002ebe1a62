// nodescope-sensor: loads the eBPF probes of this node and streams their events to the
// aggregator. Exit codes: 0 stopped by a signal, 1 cannot run here (privileges, kernel, ports),
// 2 bad configuration, 3 a resource limit was exceeded with on_limit: exit.
#include <grpc/support/log.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

#include "common/daemon.h"
#include "sensor/bpf/environment.h"
#include "sensor/config.h"
#include "sensor/sensor.h"
#include "sensor/tls_options.h"

namespace {

// One line on stderr, nothing else: what a user reads when the sensor cannot start.
int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "nodescope-sensor: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nodescope;
  sensor::SensorConfig config;
  config::Schema schema = sensor::BuildSchema(&config);
  if (auto code = daemon::LoadConfig(
          argc, argv, "nodescope-sensor", "eBPF probes of this node, streamed to the aggregator",
          &schema, [&config] {
            Status net = sensor::NetflowOptionsFrom(config).status();
            if (!net.ok()) return net;
            Status tls = tls::CheckClientOptions(sensor::ClientTlsOptions(config));
            if (!tls.ok()) return tls.Prefixed("config: ");
            return sensor::KernelOptionsFrom(config).status();
          })) {
    return *code;
  }
  // The TLS files are read at start, not for --print-config (they may exist only where the
  // configuration will run); bad ones are bad configuration all the same.
  Status tls_files = tls::CheckClientFiles(sensor::ClientTlsOptions(config));
  if (!tls_files.ok()) return Fail(2, tls_files.message());

  Status ready = sensor::bpf::PrepareEnvironment();
  if (!ready.ok()) return Fail(1, ready.message());

  spdlog::set_default_logger(spdlog::stderr_logger_mt("sensor"));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // gRPC's own multi-line logs go to debug; the transport reports outages itself, once each.
  gpr_set_log_function([](gpr_log_func_args* args) {
    spdlog::debug("grpc {}:{}: {}", args->file, args->line, args->message);
  });

  // Signals are taken by sigwait in this thread only; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the sensor's own: a resource limit with on_limit: exit
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sensor::Sensor node(config);
  Status started = node.Start();
  if (!started.ok()) {
    node.Stop(std::chrono::steady_clock::now());
    return Fail(1, started.message());
  }
  spdlog::info("nodescope-sensor {} on node {}, sending to {}", NODESCOPE_VERSION, node.node(),
               config.trace_server);

  // The aggregator's Status API shows this node's counters as of the last status message.
  // Every second the losses since the last report are sent; every 10 s the status.
  const timespec tick{1, 0};
  int sig = 0;
  for (int ticks = 1; sig != SIGINT && sig != SIGTERM; ++ticks) {
    sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig < 0) node.ReportLosses();
    if (sig < 0 && ticks % 10 == 0) node.RefreshStatus();
    // Another process's SIGUSR1 is ignored: only the sensor's own comes with a reason.
    if (sig == SIGUSR1 && !node.limit_exit_reason().empty()) break;
  }
  if (sig == SIGUSR1) {
    spdlog::error("stopping for a resource limit (on_limit: exit): {}; exit code 3",
                  node.limit_exit_reason());
    node.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    return 3;
  }
  spdlog::info("{}: detaching probes and flushing", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  node.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  return 0;
}
