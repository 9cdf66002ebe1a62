// bench_netflow: what the netflow probe (plugin ebpf-net) costs, measured side by side with a
// baseline in one run. Baseline: the real nodescope-sensor with `enabled_plugins: []` (only the
// process probe, which always runs); probe on: the same sensor with `enabled_plugins: [ebpf-net]`.
// The sensor is restarted before every run on both sides, so both pay the same; within each pair
// the order alternates, so a drift of the machine's speed hits both sides alike.
//
// 1. Throughput: wrk -t 2 -c 50 against nginx (2 workers) serving a 1 KiB file on keep-alive
//    connections. Prints every pair, the median req/s of each side and the ratio of the medians
//    (with / without; target >= 0.99). A pair in which other processes took 5% of the machine is
//    marked noisy and run again (a bounded number of times); the medians are over the quiet pairs
//    when there are three, and the ratio over all pairs is printed too. The later run of a pair
//    was 3-6% slower here whichever side it was, so the mean pair ratio of each order and their
//    geometric mean (each order weighed equally) are printed as well; pairs default to 6.
// 2. CPU per 100k new connections/s: wrk against an nginx that closes every connection after one
//    response (keepalive_timeout 0), so every request is a new TCP connection; connections are
//    counted in nginx's access log.
// 3. CPU per Gbit/s: wrk fetching a 10 MiB file on keep-alive connections; bytes are what nginx's
//    access log says it wrote ($bytes_sent).
// In 2 and 3 the cost is read two ways: the sensor process's utime+stime (/proc/<pid>/stat), and
// the run time of the sensor's BPF programs (the kernel's BPF statistics, on for these parts
// only): they run in the context of nginx, wrk and softirq, so the sensor's own time misses them.
// Every window also reads /proc/stat, to show what else ran on the machine meanwhile.
//
// With --httpflow both sides run ebpf-net and the probe side adds httpflow; with --kernel the
// probe side runs ebpf-kernel with its default families instead (target >= 0.97).
//
// Needs root, nginx and wrk. Prints figures; never fails on them. Exit 1 when something does not
// start or stop; every child is stopped on every path and killed by the kernel if this dies.
//
//   build/bin/bench_netflow [--pairs 6] [--max-reruns 3] [--seconds 5] [--cost-rounds 2]
//                           [--cost-seconds 5] [--httpflow | --kernel]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "bench/netflow_runs.h"
#include "bench/stats.h"
#include "fmt/format.h"

namespace nodescope::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string WhatRan(const Window& w) {
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return fmt::format(
      "machine {:.0f}% busy of {} cores; CPU-s: nginx {:.2f}, wrk {:.2f}, sensor {:.2f}, "
      "aggregator {:.2f}, other processes {:.2f} (softirq, inside these: {:.2f}); steal {:.2f}",
      100 * w.busy / (w.wall * cores), cores, w.nginx, w.wrk, w.sensor, w.aggregator, w.other(),
      w.irq, w.steal);
}

Window Sum(const std::vector<Window>& windows) {
  Window total;
  for (const Window& w : windows) {
    total.wall += w.wall;
    total.busy += w.busy;
    total.irq += w.irq;
    total.steal += w.steal;
    total.sensor += w.sensor;
    total.aggregator += w.aggregator;
    total.nginx += w.nginx;
    total.wrk += w.wrk;
    total.self += w.self;
    for (const auto& [name, run] : w.bpf) {
      total.bpf[name].name = name;
      total.bpf[name].run_time_ns += run.run_time_ns;
      total.bpf[name].run_count += run.run_count;
    }
  }
  return total;
}

double BpfSeconds(const Window& w) {
  uint64_t ns = 0;
  for (const auto& [name, run] : w.bpf) ns += run.run_time_ns;
  return ns / 1e9;
}

struct Throughput {
  double without = 0, with = 0;                      // median requests per second
  double per_cpu_without = 0, per_cpu_with = 0;      // median requests per CPU-second
  double sensor_us_without = 0, sensor_us_with = 0;  // median sensor CPU per request, µs
  int pairs = 0;                                     // pairs the medians are taken over
  // exp of the mean of the two orders' mean log pair ratio: the later run of a pair was
  // 3-6% slower on this machine whichever side it was, which a median of an odd number of
  // alternating pairs does not cancel. 0 when one order has no pair.
  double order_balanced = 0;
  bool quiet_only = false;  // ... all of them quiet ones
  Interval spread;          // of the geometric mean pair ratio, by resampling the pairs
};

struct Pair {
  ThroughputRun runs[2];  // without, with
  bool quiet = false;
  bool probe_first = false;
};

// A pair is quiet when in both its runs the processes that are not the bench's (and the hypervisor,
// as steal time) took under 5% of the machine: on a shared machine another user's compile moves
// req/s far more than a probe does.
Result<Throughput> PartThroughput(Bench& bench) {
  const Args& args = bench.args;
  fmt::print(
      "\n1. throughput: wrk -t 2 -c 50 -d {}s {} (1 KiB, keep-alive), {} quiet pairs wanted (a "
      "noisy pair is run again, at most {} times); baseline = sensor with {}, "
      "restarted for every run as the probe-on side is{}\n",
      args.seconds, bench.keepalive->Url("/1k.bin"), args.pairs, args.max_reruns,
      args.httpflow ? "ebpf-net and l7net_enabled: [] (the other side adds httpflow)"
                    : "enabled_plugins: []",
      args.calibrate ? "\n   CALIBRATION: the 'with' side runs the baseline sensor too" : "");
  const double cores = sysconf(_SC_NPROCESSORS_ONLN);
  const auto quiet = [&](const Window& w) { return w.other() + w.steal < 0.05 * cores * w.wall; };
  std::vector<Pair> pairs;
  int quiet_pairs = 0;
  for (int attempt = 0; quiet_pairs < args.pairs && attempt < args.pairs + args.max_reruns;
       ++attempt) {
    Pair pair;
    const bool probe_first = attempt % 2 == 1;
    pair.probe_first = probe_first;
    for (int i = 0; i < 2; ++i) {
      const bool netflow = (i == 0) == probe_first;
      Result<ThroughputRun> run = RunThroughput(bench, netflow && !args.calibrate);
      if (!run.ok()) return run.status();
      pair.runs[netflow ? 1 : 0] = *run;
    }
    const ThroughputRun& off = pair.runs[0];
    const ThroughputRun& on = pair.runs[1];
    pair.quiet = quiet(off.window) && quiet(on.window);
    quiet_pairs += pair.quiet;
    pairs.push_back(pair);
    const uint64_t errors = off.errors + on.errors;
    fmt::print(
        "  pair {} ({:>7} first): req/s {:6.0f} / {:6.0f} = {:.3f}; req per CPU-s {:5.0f} / "
        "{:5.0f} = {:.3f}; other processes {:.2f} / {:.2f} CPU-s{}{}\n",
        attempt + 1, probe_first ? "with" : "without", off.requests_per_sec, on.requests_per_sec,
        on.requests_per_sec / off.requests_per_sec, off.RequestsPerCpuSecond(),
        on.RequestsPerCpuSecond(), on.RequestsPerCpuSecond() / off.RequestsPerCpuSecond(),
        off.window.other(), on.window.other(), pair.quiet ? "" : "  NOISY",
        errors > 0 ? fmt::format(" ({} wrk errors)", errors) : "");
    std::fflush(stdout);
  }
  Throughput t;
  t.quiet_only = quiet_pairs >= std::min(3, args.pairs);
  std::vector<double> rate[2], per_cpu[2], sensor_us[2], ratios, all_rate[2];
  double log_sum[2] = {0, 0};  // [probe_first]
  int order_pairs[2] = {0, 0};
  std::vector<Window> windows[2];
  for (const Pair& pair : pairs) {
    for (int side = 0; side < 2; ++side) all_rate[side].push_back(pair.runs[side].requests_per_sec);
    if (t.quiet_only && !pair.quiet) continue;
    for (int side = 0; side < 2; ++side) {
      rate[side].push_back(pair.runs[side].requests_per_sec);
      per_cpu[side].push_back(pair.runs[side].RequestsPerCpuSecond());
      sensor_us[side].push_back(pair.runs[side].SensorMicrosPerRequest());
      windows[side].push_back(pair.runs[side].window);
    }
    ratios.push_back(pair.runs[1].requests_per_sec / pair.runs[0].requests_per_sec);
    log_sum[pair.probe_first] += std::log(ratios.back());
    ++order_pairs[pair.probe_first];
  }
  if (order_pairs[0] > 0 && order_pairs[1] > 0) {
    t.order_balanced = std::exp((log_sum[0] / order_pairs[0] + log_sum[1] / order_pairs[1]) / 2);
  }
  t.without = Median(rate[0]);
  t.with = Median(rate[1]);
  t.per_cpu_without = Median(per_cpu[0]);
  t.per_cpu_with = Median(per_cpu[1]);
  t.sensor_us_without = Median(sensor_us[0]);
  t.sensor_us_with = Median(sensor_us[1]);
  t.pairs = static_cast<int>(ratios.size());
  t.spread = BootstrapGeometricMean(ratios);
  fmt::print(
      "  (each pair: without / with = with/without)\n  over the {} {}pairs: median req/s "
      "without {:.0f}, with {:.0f}; ratio of medians {:.3f} (pair ratios {:.3f} to {:.3f})\n",
      t.pairs, t.quiet_only ? "quiet " : "", t.without, t.with, t.with / t.without,
      *std::min_element(ratios.begin(), ratios.end()),
      *std::max_element(ratios.begin(), ratios.end()));
  if (t.order_balanced > 0) {
    fmt::print(
        "  mean pair ratio, without first {:.3f} ({} pairs), with first {:.3f} ({} pairs); "
        "order-balanced {:.3f}\n",
        std::exp(log_sum[0] / order_pairs[0]), order_pairs[0],
        std::exp(log_sum[1] / order_pairs[1]), order_pairs[1], t.order_balanced);
  }
  fmt::print(
      "  geometric mean pair ratio {:.3f}; 90% of resamplings of the pairs fall in {:.3f} to "
      "{:.3f}: the noise this run leaves in the figures\n",
      t.spread.geometric_mean, t.spread.low, t.spread.high);
  fmt::print(
      "  median requests per CPU-s of nginx + wrk + sensor + aggregator: without {:.0f}, with "
      "{:.0f}; ratio {:.3f}\n",
      t.per_cpu_without, t.per_cpu_with, t.per_cpu_with / t.per_cpu_without);
  fmt::print("  median sensor process CPU per request: without {:.3f} us, with {:.3f} us\n",
             t.sensor_us_without, t.sensor_us_with);
  if (quiet_pairs < static_cast<int>(pairs.size())) {
    fmt::print("  all {} pairs, noisy ones too: ratio of medians {:.3f}{}\n", pairs.size(),
               Median(all_rate[1]) / Median(all_rate[0]),
               t.quiet_only ? "" : " (too few quiet pairs: the figures above are over all)");
  }
  fmt::print("  what ran, without: {}\n", WhatRan(Sum(windows[0])));
  fmt::print("  what ran, with:    {}\n", WhatRan(Sum(windows[1])));
  return t;
}

struct CostTotals {
  Window connect, bulk;
  uint64_t connections = 0, bytes = 0;
  double connect_seconds = 0, bulk_seconds = 0, closes = 0, drops = 0;

  double PerHundredK(double cpu) const { return connections ? cpu * 1e5 / connections : 0; }
  double PerGbit(double cpu) const { return bytes ? cpu / (bytes * 8 / 1e9) : 0; }
  double ConnectionsPerSecond() const { return connections / connect_seconds; }
  double Gbps() const { return bytes * 8 / 1e9 / bulk_seconds; }
};

void PrintCostRun(const CostRun& run, bool netflow) {
  fmt::print(
      "  {:<7} connections: {:7} in {:.1f} s ({:.0f}/s), sensor {:.3f} CPU-s, BPF {:.3f} s, "
      "closes seen {}{}; bulk: {:.2f} GB ({:.2f} Gbit/s), sensor {:.3f} CPU-s, BPF {:.3f} s\n",
      netflow ? "with" : "without", run.connections, run.connect_seconds,
      run.connections / run.connect_seconds, run.connect.sensor, BpfSeconds(run.connect),
      run.closes < 0 ? std::string("n/a")
                     : fmt::format("{:.0f} ({:.2f} a connection)", run.closes,
                                   run.closes / std::max<uint64_t>(1, run.connections)),
      run.drops > 0 ? fmt::format(", {:.0f} dropped", run.drops) : "", run.bytes / 1e9,
      run.bytes * 8 / 1e9 / run.bulk_seconds, run.bulk.sensor, BpfSeconds(run.bulk));
  fmt::print("          what ran (connections): {}\n", WhatRan(run.connect));
  fmt::print("          what ran (bulk):        {}\n", WhatRan(run.bulk));
  std::fflush(stdout);
}

Result<std::pair<CostTotals, CostTotals>> PartCost(Bench& bench) {
  const Args& args = bench.args;
  fmt::print(
      "\n2. and 3. sensor cost, {} rounds; per sensor start: {} s of wrk -t 2 -c 50 {} "
      "(keepalive_timeout 0: one connection per request), then {} s of wrk -t 2 -c 4 {} "
      "(10 MiB, keep-alive); each window ends {} ms after wrk so the sensor's work for the last "
      "connections is inside it\n",
      args.cost_rounds, args.cost_seconds, bench.closing->Url("/1k.bin"), args.cost_seconds,
      bench.bulk->Url("/10m.bin"), WindowTail(args).count());
  Result<std::unique_ptr<BpfStatsOn>> stats = BpfStatsOn::Enable();
  if (!stats.ok()) return stats.status();
  CostTotals totals[2];
  std::vector<Window> windows[2][2];
  for (int round = 0; round < args.cost_rounds; ++round) {
    for (int i = 0; i < 2; ++i) {
      const bool netflow = (i == 0) == (round % 2 == 1);
      Result<CostRun> run = RunCost(bench, netflow);
      if (!run.ok()) return run.status();
      PrintCostRun(*run, netflow);
      CostTotals& t = totals[netflow ? 1 : 0];
      windows[netflow][0].push_back(run->connect);
      windows[netflow][1].push_back(run->bulk);
      t.connections += run->connections;
      t.bytes += run->bytes;
      t.connect_seconds += run->connect_seconds;
      t.bulk_seconds += run->bulk_seconds;
      t.closes += std::max(run->closes, 0.0);
      t.drops += run->drops;
    }
  }
  for (int netflow = 0; netflow < 2; ++netflow) {
    totals[netflow].connect = Sum(windows[netflow][0]);
    totals[netflow].bulk = Sum(windows[netflow][1]);
  }
  // Where the probe's kernel time goes, program by program; the programs the baseline sensor
  // holds too are the process probe's.
  const CostTotals& on = totals[1];
  const CostTotals& off = totals[0];
  fmt::print("  netflow's BPF programs, kernel run time (with):\n");
  for (const auto& [name, run] : on.connect.bpf) {
    if (off.connect.bpf.count(name)) continue;
    const BpfProgramRun& bulk = on.bulk.bpf.count(name) ? on.bulk.bpf.at(name) : BpfProgramRun{};
    const double mib = on.bytes / 1048576.0;
    fmt::print(
        "    {:<30} per connection {:5.1f} runs {:6.0f} ns; per MiB bulk {:6.1f} runs {:6.0f} "
        "ns; {:4.0f} ns a run\n",
        name, double(run.run_count) / on.connections, double(run.run_time_ns) / on.connections,
        bulk.run_count / mib, bulk.run_time_ns / mib,
        double(run.run_time_ns + bulk.run_time_ns) /
            std::max<uint64_t>(1, run.run_count + bulk.run_count));
  }
  return std::make_pair(totals[0], totals[1]);
}

void PrintTable(const Throughput& t, const CostTotals& off, const CostTotals& on,
                const Args& args) {
  const auto row = [](const std::string& figure, const std::string& without,
                      const std::string& with, const std::string& netflow) {
    fmt::print("{:<58} {:>9} {:>9}   {}\n", figure, without, with, netflow);
  };
  const auto f = [](const char* format, double v) { return fmt::format(fmt::runtime(format), v); };
  const char* part = args.kernel ? "ebpf-kernel" : args.httpflow ? "httpflow" : "netflow";
  fmt::print("\n{} bench ({} cores, sensor interval {} s)\n", part, sysconf(_SC_NPROCESSORS_ONLN),
             args.interval_s);
  row("figure", "without", "with", part);
  row(fmt::format("wrk -> nginx 1 KiB keep-alive, req/s (median, {} {}pairs)", t.pairs,
                  t.quiet_only ? "quiet " : ""),
      f("{:.0f}", t.without), f("{:.0f}", t.with),
      fmt::format("ratio {:.3f} (target >= {})", t.with / t.without,
                  args.kernel     ? "0.97"
                  : args.httpflow ? "0.95"
                                  : "0.99"));
  if (t.order_balanced > 0) {
    row("  the same, each order's pairs weighed equally", "", "",
        fmt::format("ratio {:.3f}", t.order_balanced));
  }
  row("  geometric mean pair ratio, 90% resampling interval", "", "",
      fmt::format("{:.3f} ({:.3f} to {:.3f})", t.spread.geometric_mean, t.spread.low,
                  t.spread.high));
  row("  requests per CPU-s of nginx + wrk + sensor + aggregator", f("{:.0f}", t.per_cpu_without),
      f("{:.0f}", t.per_cpu_with), fmt::format("ratio {:.3f}", t.per_cpu_with / t.per_cpu_without));
  row("  sensor process CPU per request, us (median)", f("{:.3f}", t.sensor_us_without),
      f("{:.3f}", t.sensor_us_with), f("{:+.3f}", t.sensor_us_with - t.sensor_us_without));
  row("new connections/s reached", f("{:.0f}", off.ConnectionsPerSecond()),
      f("{:.0f}", on.ConnectionsPerSecond()), "");
  const double sensor_conn_off = off.PerHundredK(off.connect.sensor);
  const double sensor_conn_on = on.PerHundredK(on.connect.sensor);
  const double bpf_conn_off = off.PerHundredK(BpfSeconds(off.connect));
  const double bpf_conn_on = on.PerHundredK(BpfSeconds(on.connect));
  row("sensor process CPU-s per 100k connections", f("{:.3f}", sensor_conn_off),
      f("{:.3f}", sensor_conn_on), f("{:+.3f}", sensor_conn_on - sensor_conn_off));
  row("BPF programs (in kernel) CPU-s per 100k connections", f("{:.3f}", bpf_conn_off),
      f("{:.3f}", bpf_conn_on), f("{:+.3f}", bpf_conn_on - bpf_conn_off));
  row("  = cores busy at 100k new connections/s, total", "", "",
      f("{:.3f}", sensor_conn_on - sensor_conn_off + bpf_conn_on - bpf_conn_off));
  row("loopback Gbit/s reached (10 MiB files)", f("{:.2f}", off.Gbps()), f("{:.2f}", on.Gbps()),
      "");
  const double sensor_bulk_off = off.PerGbit(off.bulk.sensor);
  const double sensor_bulk_on = on.PerGbit(on.bulk.sensor);
  const double bpf_bulk_off = off.PerGbit(BpfSeconds(off.bulk));
  const double bpf_bulk_on = on.PerGbit(BpfSeconds(on.bulk));
  row("sensor process CPU-s per Gbit", f("{:.5f}", sensor_bulk_off), f("{:.5f}", sensor_bulk_on),
      f("{:+.5f}", sensor_bulk_on - sensor_bulk_off));
  row("BPF programs (in kernel) CPU-s per Gbit", f("{:.5f}", bpf_bulk_off),
      f("{:.5f}", bpf_bulk_on), f("{:+.5f}", bpf_bulk_on - bpf_bulk_off));
  row("  = cores busy at 1 Gbit/s, total", "", "",
      f("{:.5f}", sensor_bulk_on - sensor_bulk_off + bpf_bulk_on - bpf_bulk_off));
  if (on.drops > 0)
    fmt::print("the probe dropped {:.0f} close events: CPU is understated\n", on.drops);
}

// Long-lived processes that are not the bench's, by CPU used between two readings.
void PrintOthers(const std::map<pid_t, ThreadCpu>& before, const std::map<pid_t, ThreadCpu>& after,
                 const std::set<pid_t>& ours, double wall) {
  std::vector<std::pair<double, std::string>> used;
  for (const auto& [pid, proc] : after) {
    const auto it = before.find(pid);
    if (it == before.end() || ours.count(pid) || it->second.name != proc.name) continue;
    if (proc.seconds - it->second.seconds >= 0.05) {
      used.emplace_back(proc.seconds - it->second.seconds, proc.name);
    }
  }
  std::sort(used.rbegin(), used.rend());
  std::string list;
  for (size_t i = 0; i < used.size() && i < 6; ++i) {
    list += fmt::format("{}{} {:.1f}", i ? ", " : "", used[i].second, used[i].first);
  }
  fmt::print(
      "other processes that ran through the whole bench ({:.0f} s), CPU-s: {}\n"
      "(short-lived ones, e.g. compilers, are only in the per-window 'other processes' figures)\n",
      wall, list.empty() ? "none above 0.05" : list);
}

int Main(int argc, char** argv) {
  Args args;
  CLI::App app("bench_netflow: the netflow probe's cost, side by side with a baseline sensor");
  app.add_option("--bin-dir", args.bin_dir,
                 "directory of nodescope-sensor and nodescope-aggregator (default: this binary's)");
  app.add_option("--pairs", args.pairs, "quiet throughput pairs wanted (baseline + probe on)")
      ->capture_default_str()
      ->check(CLI::Range(1, 50));
  app.add_option("--max-reruns", args.max_reruns,
                 "throughput pairs run again at most when other processes took 5% of the machine")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
  app.add_option("--seconds", args.seconds, "wrk duration of one throughput run")
      ->capture_default_str()
      ->check(CLI::Range(1, 120));
  app.add_option("--cost-rounds", args.cost_rounds, "sensor-cost rounds (baseline + probe on)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  app.add_option("--cost-seconds", args.cost_seconds, "wrk duration of one sensor-cost window")
      ->capture_default_str()
      ->check(CLI::Range(1, 120));
  app.add_option("--interval", args.interval_s, "the sensor's netflow interval, seconds")
      ->capture_default_str()
      ->check(CLI::Range(1, 60));
  app.add_option("--settle-ms", args.settle_ms, "wait after a sensor start before measuring")
      ->capture_default_str()
      ->check(CLI::Range(0, 30000));
  app.add_option("--nginx-workers", args.nginx_workers, "nginx worker_processes")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_flag("--keep-temp", args.keep_temp, "keep the configs and logs");
  app.add_flag("--kernel", args.kernel,
               "measure ebpf-kernel's default families against a sensor with no plugin");
  app.add_flag("--httpflow", args.httpflow,
               "measure httpflow: baseline = ebpf-net with l7net_enabled: [], probe on = with "
               "httpflow");
  app.add_flag("--calibrate", args.calibrate,
               "throughput pairs only, the baseline sensor on both sides: what the method reads "
               "when nothing differs (ideally a ratio of 1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (args.bin_dir.empty()) {
    std::error_code error;
    args.bin_dir = fs::read_symlink("/proc/self/exe", error).parent_path().string();
  }
  for (const char* binary : {"nodescope-sensor", "nodescope-aggregator"}) {
    if (access((args.bin_dir + "/" + binary).c_str(), X_OK) != 0) {
      fmt::print(stderr, "bench_netflow: no {} in {} (build it or pass --bin-dir)\n", binary,
                 args.bin_dir);
      return 1;
    }
  }
  if (geteuid() != 0) {
    fmt::print(stderr, "bench_netflow: needs root (the sensor loads BPF programs)\n");
    return 1;
  }
  char dir_template[] = "/tmp/nodescope-bench-netflow.XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    fmt::print(stderr, "bench_netflow: mkdtemp failed\n");
    return 1;
  }
  const auto start = Clock::now();
  const auto processes0 = AllProcessesCpu();
  std::set<pid_t> ours = {getpid()};
  Status status = Status::Ok();
  {
    Bench bench;
    bench.args = args;
    bench.dir = dir_template;
    status = SetUp(bench);
    Result<Throughput> throughput = Status::Error("not run");
    Result<std::pair<CostTotals, CostTotals>> cost = Status::Error("not run");
    if (status.ok()) throughput = PartThroughput(bench);
    if (status.ok() && throughput.ok() && !args.calibrate) cost = PartCost(bench);
    if (status.ok()) status = throughput.status();
    if (status.ok() && !args.calibrate) status = cost.status();
    if (status.ok() && !args.calibrate) PrintTable(*throughput, cost->first, cost->second, args);
    for (pid_t pid : bench.OurPids()) ours.insert(pid);
    if (status.ok()) {
      PrintOthers(processes0, AllProcessesCpu(), ours,
                  std::chrono::duration<double>(Clock::now() - start).count());
    }
    if (Status down = TearDown(bench); status.ok()) status = down;
  }
  fmt::print("bench took {:.0f} s\n", std::chrono::duration<double>(Clock::now() - start).count());
  if (!status.ok()) fmt::print(stderr, "bench_netflow: {}\n", status.message());
  std::error_code error;
  if (!args.keep_temp) fs::remove_all(dir_template, error);
  if (args.keep_temp) fmt::print("configs and logs kept in {}\n", dir_template);
  return status.ok() ? 0 : 1;
}

}  // namespace
}  // namespace nodescope::bench

int main(int argc, char** argv) {
  // The test tools report some failures (no free port, fork) as exceptions; none may escape.
  try {
    return nodescope::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_netflow: %s\n", e.what());
    return 1;
  }
}
