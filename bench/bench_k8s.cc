// The aggregator's memory with Kubernetes enrichment on a large cluster: the test API server
// (tests/fixtures/kube) serves a synthetic cluster (default 5,000 pods, 1,000 services, 50 nodes,
// with the bulk real objects carry), and the real aggregator binary follows it. Printed: its RSS
// without enrichment (the baseline, same binary, same run), with the cluster listed, after a
// round of pod churn, its peak, and the time to list everything. Goal: <= 50 MiB with the
// cluster. The server runs in this process, the aggregator in its own, so only the aggregator
// is measured.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench/child.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "tests/fixtures/kube/fake_api_server.h"
#include "tests/fixtures/kube/objects.h"
#include "tests/integration/harness.h"

namespace nodescope::bench {
namespace {

using namespace std::chrono_literals;
namespace kube = nodescope::testing::kube;
using test::TempDir;

struct Args {
  std::string bin_dir;
  int pods = 5000;
  int services = 1000;
  int nodes = 50;
  int churn = 1000;  // pods replaced after the first measurement
};

struct Aggregator {
  std::unique_ptr<test::Subprocess> process;
  int http_port = 0;
};

Result<Aggregator> StartAggregator(const Args& args, const TempDir& dir, const std::string& name,
                                   const std::string& extra) {
  Aggregator a;
  a.http_port = test::FreePort();
  const int grpc_port = test::FreePort();
  dir.Write(name + ".yaml", fmt::format("listen: 127.0.0.1:{}\nhttp_listen: 127.0.0.1:{}\n{}",
                                        grpc_port, a.http_port, extra));
  a.process = std::make_unique<test::Subprocess>(
      std::vector<std::string>{args.bin_dir + "/nodescope-aggregator", "--config",
                               dir.File(name + ".yaml")},
      dir.File(name + ".log"));
  const bool ready = test::WaitFor(
      [&] {
        int status = 0;
        test::HttpGet(a.http_port, "/readyz", &status);
        return status == 200 || !a.process->Running();
      },
      30s);
  if (!ready || !a.process->Running()) {
    return Status::Error("aggregator did not start:\n" + a.process->Log());
  }
  return a;
}

double Metric(const Aggregator& a, const std::string& series) {
  return test::MetricValue(test::HttpGet(a.http_port, "/metrics"), series);
}

int Run(const Args& args) {
  TempDir dir;
  // Baseline: the same binary with enrichment off.
  auto base = StartAggregator(args, dir, "baseline", "kubernetes_enrich: off\n");
  if (!base.ok()) {
    fmt::print(stderr, "{}\n", base.status().message());
    return 1;
  }
  std::this_thread::sleep_for(1s);
  const double base_rss = StatusMiB(base->process->pid(), "VmRSS");
  base->process->Stop(SIGTERM);

  const auto generate_start = std::chrono::steady_clock::now();
  kube::Cluster cluster = kube::GenerateCluster(args.pods, args.services, args.nodes, 42);
  std::string error;
  auto api = kube::FakeApiServer::Start({}, &error);
  if (api == nullptr) {
    fmt::print(stderr, "test API server: {}\n", error);
    return 1;
  }
  kube::Load(api.get(), cluster);
  const double generate_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - generate_start).count();
  api->WriteKubeconfig(dir.File("kubeconfig"));

  const auto sync_start = std::chrono::steady_clock::now();
  auto agg = StartAggregator(args, dir, "k8s", "kubeconfig: " + dir.File("kubeconfig") + "\n");
  if (!agg.ok()) {
    fmt::print(stderr, "{}\n", agg.status().message());
    return 1;
  }
  const bool synced = test::WaitFor(
      [&] {
        return Metric(*agg, "nodescope_k8s_objects{resource=\"pods\"}") == args.pods &&
               Metric(*agg, "nodescope_k8s_objects{resource=\"services\"}") == args.services;
      },
      120s);
  const double sync_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - sync_start).count();
  if (!synced) {
    fmt::print(stderr, "the aggregator did not list the cluster in 120 s:\n{}\n",
               agg->process->Log());
    return 1;
  }
  std::this_thread::sleep_for(1s);
  const double rss = StatusMiB(agg->process->pid(), "VmRSS");

  // Churn: each pod replaced by a MODIFIED event (a new resourceVersion, same pod).
  const double events_before = std::max(
      0.0, Metric(*agg, "nodescope_k8s_watch_events_total{resource=\"pods\",type=\"modified\"}"));
  for (int i = 0; i < args.churn && i < static_cast<int>(cluster.pods.size()); ++i) {
    nlohmann::json pod = cluster.pods[i];
    pod["metadata"]["labels"]["bench-churn"] = "1";
    api->Apply("pods", pod);
  }
  test::WaitFor(
      [&] {
        return Metric(*agg,
                      "nodescope_k8s_watch_events_total{resource=\"pods\",type=\"modified\"}") >=
               events_before + args.churn;
      },
      60s);
  std::this_thread::sleep_for(1s);
  const double churn_rss = StatusMiB(agg->process->pid(), "VmRSS");
  const double peak = StatusMiB(agg->process->pid(), "VmHWM");
  agg->process->Stop(SIGTERM);

  fmt::print(
      "cluster: {} pods, {} services, {} endpointslices, {} replicasets, {} nodes "
      "(generated and loaded in {:.1f} s)\n",
      cluster.pods.size(), cluster.services.size(), cluster.endpointslices.size(),
      cluster.replicasets.size(), cluster.nodes.size(), generate_s);
  fmt::print("aggregator RSS, enrichment off:           {:6.1f} MiB\n", base_rss);
  fmt::print(
      "aggregator RSS, cluster listed:           {:6.1f} MiB  (+{:.1f} MiB, {:.2f}x the "
      "baseline; listed in {:.1f} s)\n",
      rss, rss - base_rss, rss / base_rss, sync_s);
  fmt::print("aggregator RSS, after {} pod updates:    {:6.1f} MiB\n", args.churn, churn_rss);
  fmt::print("aggregator peak RSS (VmHWM):              {:6.1f} MiB\n", peak);
  fmt::print("goal: <= 50 MiB with the cluster: {}\n",
             std::max(rss, churn_rss) <= 50 ? "met" : "MISSED");
  return 0;
}

}  // namespace
}  // namespace nodescope::bench

int main(int argc, char** argv) {
  nodescope::bench::Args args;
  args.bin_dir = std::filesystem::path(argv[0]).parent_path().string();
  CLI::App app("bench_k8s: the aggregator's memory following a large Kubernetes cluster");
  app.add_option("--bin-dir", args.bin_dir, "where nodescope-aggregator is");
  app.add_option("--pods", args.pods, "pods in the cluster")->check(CLI::Range(1, 100000));
  app.add_option("--services", args.services, "services")->check(CLI::Range(1, 20000));
  app.add_option("--nodes", args.nodes, "nodes")->check(CLI::Range(1, 5000));
  app.add_option("--churn", args.churn, "pods updated after the first figure")
      ->check(CLI::Range(0, 100000));
  CLI11_PARSE(app, argc, argv);
  return nodescope::bench::Run(args);
}
