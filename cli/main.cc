// nodescope: the command-line client of the aggregator's ObserverService.
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/filter.h"

namespace {

using nodescope::cli::Canceller;

constexpr char kFilterHelp[] =
    R"(Filters (key is a tag name such as pid or dst_ip, or source / host; fields are not
filtered):
  key=value     the tag equals value            --filter process_name=bash
  key^=prefix   the tag value starts with it    --filter process_name^=kube
  key@cidr      the tag is an IP inside cidr    --filter dst_ip@10.0.0.0/8
Every --filter must hold (AND); a record matching any --deny is left out.
Durations: 500ms, 60s, 5m, 1h, 1m30s; --since 5m means newer than five minutes ago.
Without --last, --since or --follow the newest 20 records per source are shown.)";

constexpr char kConnectHelp[] =
    R"(TLS: --tls-ca turns it on (the aggregator's certificate must chain to it and name the
--server host, or --tls-server-name); --tls-cert/--tls-key for an aggregator with mutual TLS.
Bearer token (aggregator api_token): --token-file FILE, else the NODESCOPE_TOKEN variable.
Exit codes: 0 done, 1 aggregator unreachable or failed, 2 bad usage, 3 refused (bearer token
missing or wrong, or the TLS handshake failed).)";

void AddConnectOptions(CLI::App* command, nodescope::cli::ConnectOptions* connect) {
  command->add_option(
      "--tls-ca", connect->tls_ca,
      "PEM CA bundle the aggregator's certificate is checked against; turns TLS on");
  command->add_option("--tls-cert", connect->tls_cert,
                      "PEM client certificate, for an aggregator with mutual TLS");
  command->add_option("--tls-key", connect->tls_key, "PEM private key of --tls-cert");
  command->add_option("--tls-server-name", connect->tls_server_name,
                      "Name the aggregator's certificate must hold (default: the --server host)");
  command->add_option("--token-file", connect->token_file,
                      "File holding the bearer token (default: the NODESCOPE_TOKEN variable)");
}

// Ctrl-C and SIGTERM end a follow cleanly: the signal is taken by a thread (every other thread,
// including gRPC's, has it blocked) which cancels the call the command is blocked on.
void WatchSignals(Canceller* canceller) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  std::thread([set, canceller] {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) return;
    canceller->Cancel();
    // Still connecting, or the server does not let go: do not hold the terminal hostage.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::fflush(stdout);
    std::_Exit(128 + signal);
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    std::fprintf(stderr, "nodescope: cannot block signals\n");
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows as a write error instead
  // gRPC would print its own lines (a failed TLS handshake, in several words) next to ours; every
  // failure comes back through the call and is said once, in one line.
  gpr_set_log_function([](gpr_log_func_args*) {});

  CLI::App app("nodescope: observe records and status of a nodescope aggregator", "nodescope");
  app.set_version_flag("--version", NODESCOPE_VERSION);
  app.require_subcommand(1);

  nodescope::cli::ObserveOptions observe_options;
  CLI::App* observe = app.add_subcommand("observe", "Print records from the aggregator");
  observe->footer(std::string(kFilterHelp) + "\n" + kConnectHelp);
  nodescope::cli::ConnectOptions connect;
  if (const char* token = std::getenv("NODESCOPE_TOKEN")) connect.token = token;
  AddConnectOptions(observe, &connect);
  observe->add_option("--server", observe_options.server, "Aggregator gRPC address HOST:PORT")
      ->capture_default_str();
  observe->add_option("--source", observe_options.sources,
                      "Only this source (process, netflow, httpflow, dnsflow, ...); repeatable");
  observe->add_flag("-f,--follow", observe_options.follow, "Keep printing new records");
  observe
      ->add_option("--last", observe_options.last,
                   "First print the newest N stored records per source")
      ->check(CLI::NonNegativeNumber);
  observe->add_option("--since", observe_options.since, "Only records newer than DURATION ago");
  observe->add_option("--until", observe_options.until,
                      "Only records older than DURATION ago (with --follow: stop there)");
  observe->add_option("--filter", observe_options.filters,
                      "Only records matching key=value, key^=prefix or key@cidr; repeatable");
  observe->add_option("--deny", observe_options.denies,
                      "Leave out records matching key=value, key^=prefix or key@cidr; repeatable");
  observe->add_option("-o,--output", observe_options.output, "Output format")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str();

  std::string status_server = "127.0.0.1:9970";
  std::string status_output = "table";
  CLI::App* status =
      app.add_subcommand("status", "Connected sensors with their probes, strategies and counters");
  status->add_option("--server", status_server, "Aggregator gRPC address HOST:PORT")
      ->capture_default_str();
  status->add_option("-o,--output", status_output, "Output format")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str();
  status->footer(kConnectHelp);
  AddConnectOptions(status, &connect);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "nodescope: %s (see nodescope --help)\n", e.what());
    return nodescope::cli::kExitUsage;
  }

  Canceller canceller;
  WatchSignals(&canceller);
  if (observe->parsed()) {
    return nodescope::cli::RunObserve(observe_options, stdout, stderr, &canceller, connect);
  }
  return nodescope::cli::RunStatus(status_server, status_output, stdout, stderr, connect);
}
