// bench_soak: the real sensor and aggregator under sustained mixed traffic for ten minutes, and
// whether their memory stays flat once warm. Goal: RSS after warm-up grows by at most 5%.
//
// Traffic, every second, on loopback: curl fetching four URLs of nginx (200s of three sizes and
// a 404, on one keep-alive connection; a new process each time: process exec/exit records),
// five times; dig asking dnsmasq five names over UDP, twice, the names cycling through 20,000
// (dnsflow records, domain cache churn); every fifth second wrk for one second on 4 connections
// (httpflow at volume). The sensor runs ebpf-net (httpflow, dnsflow) and ebpf-kernel with a spool;
// the aggregator writes every record to a jsonl sink (/dev/null) and one `nodescope observe
// --follow` subscriber reads them all. Its history holds 256 records per source (default
// 65,536), so that every ring is full within the warm-up at this rate (dnsflow, the slowest
// source, makes about 80 records a minute) and what is measured after it is growth beyond the
// configured bounds.
//
// Every 10 s it samples both processes' VmRSS and the aggregator's record counters. Printed: a
// line every 30 s, then for each process its RSS at the end of warm-up (median of the minute
// after --warmup), at the end (median of the last minute), the ratio of the two (the baseline is
// the same process's own warm figure in this run) and the peak; and what was ingested and dropped.
// Never fails on the figures; exit 1 when something does not start.
//
//   build/bin/bench_soak [--minutes 10] [--warmup 4]     (as root; needs nginx, dnsmasq, dig, wrk)
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>
#include <utility>

#include "bench/child.h"
#include "common/testing/temp_dir.h"
#include "tests/integration/dnsmasq.h"
#include "tests/integration/harness.h"
#include "tests/integration/nginx.h"
#include "tests/integration/wrk.h"

namespace nodescope::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::TempDir;

constexpr char kDnsIp[] = "127.0.0.53";  // loopback; dnsmasq listens on port 53 there
constexpr int kNames = 20000;

struct Sample {
  double minute = 0;
  double sensor_mib = 0;
  double aggregator_mib = 0;
  double ingested = 0;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The sum of every series of one metric family in a Prometheus exposition.
// One second's worth of traffic (the wrk burst every fifth second).
void Traffic(const test::Nginx& nginx, int second, int* name) {
  for (int i = 0; i < 5; ++i) {
    test::RunCommand(
        {"/usr/bin/curl", "-s", "-o", "/dev/null", nginx.Url("/1k.bin"), nginx.Url("/64k.bin"),
         nginx.Url("/1m.bin"), nginx.Url("/missing-" + std::to_string(i))},
        10s);
  }
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> dig = {"/usr/bin/dig", std::string("@") + kDnsIp, "+tries=1",
                                    "+time=1", "+short"};
    for (int n = 0; n < 5; ++n) dig.push_back(fmt::format("host-{}.soak.test", (*name)++ % kNames));
    test::RunCommand(dig, 10s);
  }
  if (second % 5 == 0) {
    test::WrkOptions wrk;
    wrk.url = nginx.Url("/1k.bin");
    wrk.duration = 1s;
    wrk.connections = 4;
    wrk.threads = 1;
    (void)test::RunWrk(wrk);
  }
}

int Run(int minutes, int warmup) {
  if (minutes < warmup + 2) {
    fmt::print(stderr, "bench_soak: --minutes must be at least --warmup + 2\n");
    return 1;
  }
  TempDir dir;
  test::NginxOptions nginx_options;
  nginx_options.worker_processes = 2;
  nginx_options.files = {{"/1k.bin", 1024}, {"/64k.bin", 64 << 10}, {"/1m.bin", 1 << 20}};
  auto nginx = test::Nginx::Start(nginx_options);
  if (!nginx.ok()) {
    fmt::print(stderr, "bench_soak: nginx: {}\n", nginx.status().message());
    return 1;
  }
  test::DnsmasqOptions dns_options;
  dns_options.listen = kDnsIp;
  dns_options.addresses = {{"soak.test", "198.18.7.7"}};
  auto dnsmasq = test::Dnsmasq::Start(dns_options);
  if (!dnsmasq.ok()) {
    fmt::print(stderr, "bench_soak: dnsmasq: {}\n", dnsmasq.status().message());
    return 1;
  }

  const int grpc_port = test::FreePort();
  const int http_port = test::FreePort();
  const int sensor_port = test::FreePort();
  dir.Write(
      "aggregator.yaml",
      fmt::format("listen: 127.0.0.1:{}\nhttp_listen: 127.0.0.1:{}\nsinks: [\"jsonl:/dev/null\"]\n"
                  "history_size: 256\n",
                  grpc_port, http_port));
  dir.Write("sensor.yaml",
            fmt::format("trace_server: 127.0.0.1:{}\npprof_port: {}\nhostname: soak\n"
                        "enabled_plugins: [ebpf-net, ebpf-kernel]\ninterval: 10s\n"
                        "spool_dir: {}\n",
                        grpc_port, sensor_port, dir.File("spool")));
  bool ready = false;
  auto aggregator = test::StartAggregator(dir.File("aggregator.yaml"), dir.File("aggregator.log"),
                                          http_port, &ready);
  if (!ready) {
    fmt::print(stderr, "bench_soak: aggregator did not start:\n{}\n", aggregator->Log());
    return 1;
  }
  test::Subprocess sensor(
      {test::BinDir() + "/nodescope-sensor", "--config", dir.File("sensor.yaml")},
      dir.File("sensor.log"));
  if (!test::WaitFor(
          [&] {
            return test::MetricValue(test::HttpGet(sensor_port, "/metrics"),
                                     "nodescope_sensor_connected") == 1.0;
          },
          120s)) {
    fmt::print(stderr, "bench_soak: sensor did not connect:\n{}\n", sensor.Log());
    return 1;
  }
  test::Subprocess observer({test::BinDir() + "/nodescope", "observe", "--server",
                             fmt::format("127.0.0.1:{}", grpc_port), "--follow", "-o", "json"},
                            "/dev/null");

  fmt::print(
      "bench_soak: {} min of mixed traffic, warm-up {} min; sensor pid {}, aggregator pid {}\n",
      minutes, warmup, sensor.pid(), aggregator->pid());
  fmt::print("{:>6}  {:>12}  {:>16}  {:>12}\n", "minute", "sensor MiB", "aggregator MiB",
             "records");
  std::vector<Sample> samples;
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    const auto start = Clock::now();
    auto next = start;
    while (!done) {
      Sample s;
      s.minute = std::chrono::duration<double>(Clock::now() - start).count() / 60;
      s.sensor_mib = StatusMiB(sensor.pid(), "VmRSS");
      s.aggregator_mib = StatusMiB(aggregator->pid(), "VmRSS");
      s.ingested =
          test::MetricSum(test::HttpGet(http_port, "/metrics"), "nodescope_records_ingested_total");
      samples.push_back(s);
      if (samples.size() % 3 == 1) {
        fmt::print("{:>6.1f}  {:>12.1f}  {:>16.1f}  {:>12.0f}\n", s.minute, s.sensor_mib,
                   s.aggregator_mib, s.ingested);
        std::fflush(stdout);
      }
      next += 10s;
      while (!done && Clock::now() < next) std::this_thread::sleep_for(100ms);
    }
  });
  const auto end = Clock::now() + std::chrono::minutes(minutes);
  int name = 0;
  for (int second = 0; Clock::now() < end; ++second) {
    const auto tick = Clock::now() + 1s;
    Traffic(**nginx, second, &name);
    std::this_thread::sleep_until(tick);
  }
  done = true;
  sampler.join();

  const std::string sensor_metrics = test::HttpGet(sensor_port, "/metrics");
  const std::string aggregator_metrics = test::HttpGet(http_port, "/metrics");
  auto report = [&](const char* who, double Sample::*field) {
    std::vector<double> warm;
    std::vector<double> last;
    double peak = 0;
    for (const Sample& s : samples) {
      if (s.minute >= warmup && s.minute < warmup + 1) warm.push_back(s.*field);
      if (s.minute >= minutes - 1) last.push_back(s.*field);
      if (s.minute >= warmup) peak = std::max(peak, s.*field);
    }
    const double w = Median(warm);
    const double l = Median(last);
    fmt::print(
        "{:<11} RSS warm {:.1f} MiB, end {:.1f} MiB, end/warm {:.3f} ({:+.1f}%; goal <= +5%), "
        "peak after warm-up {:.1f} MiB\n",
        who, w, l, w > 0 ? l / w : 0, w > 0 ? (l / w - 1) * 100 : 0, peak);
  };
  fmt::print("\n");
  report("sensor", &Sample::sensor_mib);
  report("aggregator", &Sample::aggregator_mib);
  fmt::print(
      "records ingested {:.0f}; sensor dropped {:.0f}; aggregator dropped {:.0f}; "
      "DNS queries answered by dnsmasq {}\n",
      test::MetricSum(aggregator_metrics, "nodescope_records_ingested_total"),
      test::MetricSum(sensor_metrics, "nodescope_sensor_dropped_total"),
      test::MetricSum(aggregator_metrics, "nodescope_records_dropped_total"),
      (*dnsmasq)->Queries());
  // Where anything was dropped, by which reason: every non-zero series of the drop counters.
  for (const auto& [exposition, family] :
       {std::pair{&sensor_metrics, "nodescope_sensor_dropped_total"},
        std::pair{&aggregator_metrics, "nodescope_records_dropped_total"}}) {
    std::istringstream in(*exposition);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(std::string(family) + "{", 0) == 0 && test::MetricSum(line, family) > 0) {
        fmt::print("  {}\n", line);
      }
    }
  }
  observer.Stop(SIGTERM);
  sensor.Stop(SIGTERM, 30s);
  aggregator->Stop(SIGTERM);
  return 0;
}

}  // namespace
}  // namespace nodescope::bench

int main(int argc, char** argv) {
  CLI::App app{"nodescope soak: RSS of sensor and aggregator under sustained mixed traffic"};
  int minutes = 10;
  int warmup = 4;
  app.add_option("--minutes", minutes, "length of the run")->check(CLI::Range(3, 240));
  app.add_option("--warmup", warmup, "minutes before the warm figure")->check(CLI::Range(1, 60));
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) {
    fmt::print(stderr, "bench_soak: needs root (the sensor loads eBPF programs)\n");
    return 1;
  }
  return nodescope::bench::Run(minutes, warmup);
}
