// nodescope-aggregator: ingests sensor streams, keeps the history, serves subscribers and
// Prometheus. Exit codes: 0 clean shutdown, 1 runtime failure (cannot listen, cannot open a
// sink or the state directory), 2 configuration error.
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "aggregator/aggregator.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/tls/grpc_tls.h"

namespace {

// gRPC's own log lines (e.g. a multi-line bind error) would break the one-line error contract;
// every failure that matters comes back through the API and is reported by us. The exception is
// a refused TLS handshake (no client certificate, one from another CA, plaintext on the TLS
// port), which gRPC reports nowhere but in its log: a warning, each distinct one at most once a
// second, so a client retrying in a loop does not flood the log.
void GrpcLog(gpr_log_func_args* args) {
  if (!nodescope::tls::IsHandshakeFailure(args->file, args->message)) {
    spdlog::debug("grpc {}:{}: {}", args->file, args->line, args->message);
    return;
  }
  struct Seen {
    int64_t second = -1;
    uint64_t suppressed = 0;
  };
  static std::mutex mu;
  static std::map<std::string, Seen> seen;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  uint64_t suppressed = 0;
  {
    std::lock_guard lock(mu);
    if (seen.size() > 64) seen.clear();  // OpenSSL has a few dozen reasons; a bound anyway
    Seen& s = seen[args->message];
    if (s.second == now) {
      ++s.suppressed;
      return;
    }
    s.second = now;
    suppressed = std::exchange(s.suppressed, 0);
  }
  spdlog::warn("TLS handshake refused: {}{}", args->message,
               suppressed > 0 ? fmt::format(" (and {} more times)", suppressed) : "");
}

int Run(int argc, char** argv) {
  using nodescope::aggregator::Aggregator;
  using nodescope::aggregator::Options;

  Options options;
  nodescope::config::Schema schema("nodescope-aggregator");
  nodescope::aggregator::RegisterOptions(&schema, &options);
  if (auto code = nodescope::daemon::LoadConfig(
          argc, argv, "nodescope-aggregator",
          "ingests sensor streams, serves subscribers and metrics", &schema,
          [&] { return nodescope::aggregator::ValidateOptions(options); })) {
    return *code;
  }
  // The files the configuration names, before anything starts (exit 2 like any bad option).
  if (nodescope::Status files = nodescope::aggregator::CheckFiles(options); !files.ok()) {
    std::fprintf(stderr, "nodescope-aggregator: %s\n", files.message().c_str());
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("aggregator");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  gpr_set_log_function(GrpcLog);

  // Blocked before any thread starts, so every thread inherits the mask and only sigwait below
  // sees these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A subscriber or a `| head` consumer going away must not kill the aggregator.
  signal(SIGPIPE, SIG_IGN);

  auto aggregator = Aggregator::Start(options);
  if (!aggregator.ok()) {
    std::fprintf(stderr, "nodescope-aggregator: %s\n", aggregator.status().message().c_str());
    return 1;
  }
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      (*aggregator)->ReopenSinks();
      continue;
    }
    spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  (*aggregator)->Shutdown();
  spdlog::info("stopped");
  spdlog::shutdown();
  // Everything is written (sinks write each batch with write(2), sequence files with pwrite).
  // gRPC's library teardown after this can block for seconds joining its executor thread (seen
  // with gRPC 1.51: ~10 s in grpc_shutdown -> Executor::SetThreading while that thread sat in a
  // 10 s epoll_wait), which would break "stops promptly on SIGTERM"; skip it.
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
