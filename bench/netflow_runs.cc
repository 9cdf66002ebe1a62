#include "bench/netflow_runs.h"

#include <fstream>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "tests/integration/harness.h"
#include "tests/integration/wrk.h"

namespace nodescope::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kCloses[] = "nodescope_sensor_events_total{source=\"netflow\",event=\"tcp_close\"}";
constexpr char kRingbufDrops[] =
    "nodescope_sensor_dropped_total{reason=\"ringbuf_full\",probe=\"netflow\"}";
constexpr char kMapFull[] = "nodescope_sensor_dropped_total{reason=\"map_full\",probe=\"netflow\"}";

std::string Tail(const std::string& text, size_t bytes) {
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A nodescope-sensor with its own config and log; stopped (SIGKILL at worst) when destroyed.
class Sensor {
 public:
  static Result<std::unique_ptr<Sensor>> Start(Bench& bench, bool netflow) {
    const int n = ++bench.sensor_starts;
    const std::string config = (bench.dir / fmt::format("sensor-{}.yaml", n)).string();
    const std::string log = (bench.dir / fmt::format("sensor-{}.log", n)).string();
    auto sensor = std::unique_ptr<Sensor>(new Sensor());
    sensor->http_port_ = test::FreePort();
    sensor->log_ = log;
    // Without --httpflow: the baseline runs no ebpf-net, the probe side netflow alone. With it:
    // both run netflow, the probe side httpflow too.
    // With --kernel: the baseline runs no plugin, the probe side ebpf-kernel alone.
    const bool kernel = bench.args.kernel && netflow;
    const bool net = !bench.args.kernel && (netflow || bench.args.httpflow);
    const std::string l7 = bench.args.httpflow && netflow ? "httpflow" : "";
    std::ofstream(config) << fmt::format(
        "trace_server: 127.0.0.1:{}\npprof_port: {}\nhostname: bench-node\n"
        "enabled_plugins: [{}]\nl7net_enabled: [{}]\ninterval: {}s\n",
        bench.grpc_port, sensor->http_port_,
        kernel ? "ebpf-kernel" : (net ? "ebpf-net" : ""), l7, bench.args.interval_s);
    auto process =
        ChildProcess::Spawn({bench.args.bin_dir + "/nodescope-sensor", "--config", config}, log);
    if (!process.ok()) return process.status();
    sensor->process_ = std::move(process).value();
    // The self endpoint is the last thing Start() brings up, after every probe.
    const auto deadline = Clock::now() + 60s;
    while (true) {
      if (!sensor->process_->Running()) {
        return Status::Error("the sensor " + sensor->process_->exit_description() + ":\n" +
                             Tail(test::ReadFile(log), 3000));
      }
      const std::string text = test::ReadFile(log);
      if (text.find("self endpoint on") != std::string::npos) {
        if (net && text.find("probe netflow: attached") == std::string::npos) {
          return Status::Error("the netflow probe did not attach:\n" + Tail(text, 3000));
        }
        if (kernel && text.find("probe kernel: attached") == std::string::npos) {
          return Status::Error("the kernel probe did not attach:\n" + Tail(text, 3000));
        }
        return sensor;
      }
      if (Clock::now() > deadline) {
        return Status::Error("the sensor was not up within 60 s:\n" + Tail(text, 3000));
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  ChildProcess& process() { return *process_; }

  // A series of the sensor's /metrics, -1 when absent.
  double Metric(const std::string& series) const {
    return test::MetricValue(test::HttpGet(http_port_, "/metrics"), series);
  }

  Status Stop() {
    const bool on_sigterm = process_->Terminate(15s);
    if (!on_sigterm || process_->exit_description() != "exited with code 0") {
      return Status::Error("the sensor did not stop cleanly on SIGTERM (" +
                           process_->exit_description() + "):\n" +
                           Tail(test::ReadFile(log_), 3000));
    }
    return Status::Ok();
  }

 private:
  Sensor() = default;
  std::unique_ptr<ChildProcess> process_;
  int http_port_ = 0;
  std::string log_;
};

struct Snapshot {
  Clock::time_point at;
  MachineCpu machine;
  double sensor = 0, aggregator = 0, nginx = 0, reaped = 0, self = 0;
  std::map<uint32_t, BpfProgramRun> bpf;
};

Result<Snapshot> Take(Bench& bench, Sensor& sensor, const std::vector<pid_t>& nginx, bool bpf) {
  Snapshot s;
  s.at = Clock::now();
  Result<MachineCpu> machine = ReadMachineCpu();
  if (!machine.ok()) return machine.status();
  s.machine = *machine;
  Result<double> sensor_cpu = sensor.process().CpuSeconds();
  Result<double> aggregator_cpu = bench.aggregator->CpuSeconds();
  if (!sensor_cpu.ok()) return sensor_cpu.status();
  if (!aggregator_cpu.ok()) return aggregator_cpu.status();
  s.sensor = *sensor_cpu;
  s.aggregator = *aggregator_cpu;
  for (pid_t pid : nginx) {
    Result<double> cpu = StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
    if (!cpu.ok()) return Status::Error("an nginx process ended: " + cpu.status().message());
    s.nginx += *cpu;
  }
  s.reaped = ReapedChildrenCpuSeconds();
  s.self = SelfCpuSeconds();
  if (bpf) {
    auto programs = BpfProgramsOf(sensor.process().pid());
    if (!programs.ok()) return programs.status();
    s.bpf = std::move(programs).value();
  }
  return s;
}

Window Between(const Snapshot& a, const Snapshot& b) {
  Window w;
  w.wall = Seconds(b.at - a.at);
  w.busy = b.machine.busy - a.machine.busy;
  w.irq = b.machine.irq - a.machine.irq;
  w.steal = b.machine.steal - a.machine.steal;
  w.sensor = b.sensor - a.sensor;
  w.aggregator = b.aggregator - a.aggregator;
  w.nginx = b.nginx - a.nginx;
  w.wrk = b.reaped - a.reaped;
  w.self = b.self - a.self;
  for (const auto& [id, after] : b.bpf) {
    const auto before = a.bpf.find(id);
    BpfProgramRun& run = w.bpf[after.name];
    run.name = after.name;
    run.run_time_ns += after.run_time_ns - (before == a.bpf.end() ? 0 : before->second.run_time_ns);
    run.run_count += after.run_count - (before == a.bpf.end() ? 0 : before->second.run_count);
  }
  return w;
}

std::vector<pid_t> NginxPids(const test::Nginx& nginx) {
  std::vector<pid_t> pids = nginx.worker_pids();
  pids.push_back(nginx.master_pid());
  return pids;
}

struct Measured {
  Window window;
  test::WrkResult wrk;
  std::vector<test::AccessLogEntry> new_entries;
};

// One window: wrk against `nginx`, then `tail` more, with CPU readings at both ends.
Result<Measured> Measure(Bench& bench, Sensor& sensor, const test::Nginx& nginx,
                         const test::WrkOptions& wrk, std::chrono::milliseconds tail, bool bpf,
                         bool read_log) {
  const std::vector<pid_t> pids = NginxPids(nginx);
  const size_t logged = read_log ? nginx.AccessLog().size() : 0;
  Result<Snapshot> before = Take(bench, sensor, pids, bpf);
  if (!before.ok()) return before.status();
  Result<test::WrkResult> result = test::RunWrk(wrk);
  if (!result.ok()) return result.status();
  std::this_thread::sleep_for(tail);
  Result<Snapshot> after = Take(bench, sensor, pids, bpf);
  if (!after.ok()) return after.status();
  Measured m{Between(*before, *after), *result, {}};
  if (read_log) {
    std::vector<test::AccessLogEntry> log = nginx.AccessLog();
    m.new_entries.assign(log.begin() + static_cast<ptrdiff_t>(std::min(logged, log.size())),
                         log.end());
  }
  return m;
}

}  // namespace

std::set<pid_t> Bench::OurPids() const {
  std::set<pid_t> pids = {getpid()};
  if (aggregator) pids.insert(aggregator->pid());
  for (const auto* nginx : {keepalive.get(), closing.get(), bulk.get()}) {
    if (nginx == nullptr) continue;
    for (pid_t pid : NginxPids(*nginx)) pids.insert(pid);
  }
  return pids;
}

Status SetUp(Bench& bench) {
  // Children first: ChildProcess::Spawn wants a process without threads, and nothing here
  // starts one.
  bench.grpc_port = test::FreePort();
  const int http_port = test::FreePort();
  const std::string config = (bench.dir / "aggregator.yaml").string();
  const std::string log = (bench.dir / "aggregator.log").string();
  std::ofstream(config) << fmt::format(
      "listen: 127.0.0.1:{}\nhttp_listen: 127.0.0.1:{}\nlog_level: warn\n", bench.grpc_port,
      http_port);
  auto aggregator =
      ChildProcess::Spawn({bench.args.bin_dir + "/nodescope-aggregator", "--config", config}, log);
  if (!aggregator.ok()) return aggregator.status();
  bench.aggregator = std::move(aggregator).value();
  const bool ready = test::WaitFor(
      [&] {
        int status = 0;
        test::HttpGet(http_port, "/readyz", &status);
        return status == 200 || !bench.aggregator->Running();
      },
      30s);
  if (!ready || !bench.aggregator->Running()) {
    return Status::Error("the aggregator is not ready: " + Tail(test::ReadFile(log), 3000));
  }
  const auto options = [&](const std::string& path, uint64_t size, int keepalive_timeout_s) {
    test::NginxOptions o;
    o.worker_processes = bench.args.nginx_workers;
    o.files = {{path, size}};
    o.keepalive_timeout_s = keepalive_timeout_s;
    return o;
  };
  auto keepalive = test::Nginx::Start(options("/1k.bin", 1024, 65));
  auto closing = test::Nginx::Start(options("/1k.bin", 1024, 0));
  auto bulk = test::Nginx::Start(options("/10m.bin", 10 << 20, 65));
  for (auto* started : {&keepalive, &closing, &bulk}) {
    if (!started->ok()) return started->status();
  }
  bench.keepalive = std::move(keepalive).value();
  bench.closing = std::move(closing).value();
  bench.bulk = std::move(bulk).value();
  return Status::Ok();
}

Status TearDown(Bench& bench) {
  bench.keepalive.reset();
  bench.closing.reset();
  bench.bulk.reset();
  if (bench.aggregator && !bench.aggregator->Terminate(10s)) {
    return Status::Error("the aggregator did not stop on SIGTERM (" +
                         bench.aggregator->exit_description() + ")");
  }
  return Status::Ok();
}

std::chrono::milliseconds WindowTail(const Args& args) {
  return std::chrono::seconds(args.interval_s) + 500ms;
}

Result<ThroughputRun> RunThroughput(Bench& bench, bool netflow) {
  Result<std::unique_ptr<Sensor>> sensor = Sensor::Start(bench, netflow);
  if (!sensor.ok()) return sensor.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(bench.args.settle_ms));
  Result<Measured> m = Measure(bench, **sensor, *bench.keepalive,
                               {.url = bench.keepalive->Url("/1k.bin"),
                                .duration = std::chrono::seconds(bench.args.seconds),
                                .connections = 50,
                                .threads = 2},
                               0ms, false, false);
  Status stopped = (*sensor)->Stop();
  if (!m.ok()) return m.status();
  if (!stopped.ok()) return stopped;
  return ThroughputRun{m->wrk.requests_per_sec, m->wrk.requests,
                       m->wrk.socket_errors + m->wrk.non_2xx_3xx, m->window};
}

Result<CostRun> RunCost(Bench& bench, bool netflow) {
  Result<std::unique_ptr<Sensor>> started = Sensor::Start(bench, netflow);
  if (!started.ok()) return started.status();
  Sensor& sensor = **started;
  std::this_thread::sleep_for(std::chrono::milliseconds(bench.args.settle_ms));
  const auto duration = std::chrono::seconds(bench.args.cost_seconds);
  const auto tail = WindowTail(bench.args);
  CostRun run;

  const double closes0 = netflow ? sensor.Metric(kCloses) : -1;
  const double drops0 = netflow ? sensor.Metric(kRingbufDrops) + sensor.Metric(kMapFull) : 0;
  Result<Measured> connect = Measure(
      bench, sensor, *bench.closing,
      {.url = bench.closing->Url("/1k.bin"), .duration = duration, .connections = 50, .threads = 2},
      tail, true, true);
  if (!connect.ok()) return connect.status();
  run.connect = connect->window;
  run.connections = connect->new_entries.size();
  run.connect_seconds = connect->wrk.duration_s;
  if (netflow) {
    run.closes = sensor.Metric(kCloses) - closes0;
    run.drops = sensor.Metric(kRingbufDrops) + sensor.Metric(kMapFull) - drops0;
  }

  Result<Measured> bulk = Measure(
      bench, sensor, *bench.bulk,
      {.url = bench.bulk->Url("/10m.bin"), .duration = duration, .connections = 4, .threads = 2},
      tail, true, true);
  if (!bulk.ok()) return bulk.status();
  run.bulk = bulk->window;
  for (const test::AccessLogEntry& entry : bulk->new_entries) run.bytes += entry.bytes_sent;
  run.bulk_seconds = bulk->wrk.duration_s;
  if (Status stopped = sensor.Stop(); !stopped.ok()) return stopped;
  return run;
}

}  // namespace nodescope::bench
