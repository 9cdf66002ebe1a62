// Resource limits with real load: the sensor, the aggregator, nginx and curl all run in a network
// namespace of the test's own, so that net_limit (bytes on the sensor's busiest interface) sees
// this test's traffic only, not other tests' on the machine's loopback. nsenter switches only the
// network namespace (ip netns exec would also remount /sys, where the sensor needs bpffs, tracefs
// and cgroup2). curl fetches from nginx, one connection per request, in a loop well above
// net_limit: the sensor must shed in order (sampling, l7_payload, then the kernel families), say
// why in its log, metrics and status, count what it left out, keep netflow going while httpflow
// stops, and after the load take every step back and record HTTP again. With on_limit: exit it
// must stop with exit code 3 and say why.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"
#include "tests/integration/nginx.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "limits-node";

// Requests per curl run of the load: enough that a run lasts a fraction of a second.
constexpr int kBatch = 40;

// The lines of `log` from `from` on that hold `steps`, in that order; fewer when one is missing.
std::vector<std::string> StepLines(const std::string& log, size_t from,
                                   const std::vector<std::string>& steps) {
  std::vector<std::string> lines;
  for (const std::string& step : steps) {
    const size_t found = log.find(step, from);
    if (found == std::string::npos) break;
    const size_t start = log.rfind('\n', found) + 1;
    lines.push_back(log.substr(start, log.find('\n', found) - start));
    from = found;
  }
  return lines;
}

// "kernel_families (process)" -> "process".
std::string Families(const std::string& line) {
  const size_t open = line.find("kernel_families (");
  if (open == std::string::npos) return "";
  const size_t start = open + 17;
  return line.substr(start, line.find(')', start) - start);
}

bool BpfStatsOn() { return ReadFile("/proc/sys/kernel/bpf_stats_enabled").starts_with("1"); }

class Limits : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Netns>> ns = Netns::Create("limits");
    ASSERT_TRUE(ns.ok()) << ns.status().message();
    ns_ = std::move(ns).value();
    NginxOptions options;
    options.ns = ns_.get();
    options.files = {{"/32k.bin", 32 << 10}, {"/after.bin", 1024}};
    options.keepalive_timeout_s = 0;  // one connection per request
    Result<std::unique_ptr<Nginx>> nginx = Nginx::Start(options);
    ASSERT_TRUE(nginx.ok()) << nginx.status().message();
    nginx_ = std::move(nginx).value();
    port_ = std::to_string(nginx_->port());

    grpc_port_ = FreePort();
    http_port_ = FreePort();
    dir_.Write("aggregator.yaml", "listen: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                                      "http_listen: 127.0.0.1:" + std::to_string(http_port_) +
                                      "\nsinks: [\"jsonl:" + dir_.File("records.jsonl") + "\"]\n");
    aggregator_ = std::make_unique<Subprocess>(
        InNs({BinDir() + "/nodescope-aggregator", "--config", dir_.File("aggregator.yaml")}),
        dir_.File("aggregator.log"));
    ASSERT_TRUE(WaitFor(
        [&] {
          int status = 0;
          Get(http_port_, "/readyz", &status);
          return status == 200;
        },
        30s))
        << aggregator_->Log();
  }

  void TearDown() override {
    StopLoad();
    if (sensor_ && sensor_->Running()) sensor_->Stop(SIGTERM, 20s);
    if (aggregator_) aggregator_->Stop(SIGTERM, 20s);
  }

  // argv run with only the network namespace switched to the test's.
  std::vector<std::string> InNs(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {Which("nsenter"), "--net=/run/netns/" + ns_->name(), "--"});
    return argv;
  }

  std::string Get(int port, const std::string& path, int* status = nullptr) const {
    std::string body;
    Status ran = ns_->RunIn([&] { body = HttpGet(port, path, status); });
    EXPECT_TRUE(ran.ok()) << ran.message();
    return body;
  }

  void StartSensor(const std::string& extra) {
    sensor_port_ = FreePort();
    dir_.Write("sensor.yaml", "trace_server: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                                  "pprof_port: " + std::to_string(sensor_port_) + "\n" +
                                  "hostname: " + kHost + "\ninterval: 1s\n" + extra);
    sensor_ = std::make_unique<Subprocess>(
        InNs({BinDir() + "/nodescope-sensor", "--config", dir_.File("sensor.yaml")}),
        dir_.File("sensor.log"));
    ASSERT_TRUE(WaitFor(
        [&] { return sensor_->Log().find("probe netflow: attached") != std::string::npos; }, 60s))
        << sensor_->Log();
  }

  // curl in a loop, a new connection per request, until StopLoad.
  void StartLoad() {
    std::vector<std::string> argv = {Which("curl"), "-s", "-H", "Connection: close"};
    for (int i = 0; i < kBatch; ++i) {
      argv.insert(argv.end(), {"-o", "/dev/null", nginx_->Url("/32k.bin")});
    }
    argv = InNs(argv);
    stop_load_ = false;
    load_ = std::thread([this, argv] {
      while (!stop_load_) {
        CommandResult r = RunCommand(argv, 30s);
        if (r.exit_code != 0) {
          ADD_FAILURE() << "curl: exit " << r.exit_code << ": " << r.err;
          return;
        }
        runs_.fetch_add(1);
      }
    });
  }

  void StopLoad() {
    stop_load_ = true;
    if (load_.joinable()) load_.join();
  }

  double Metric(const std::string& series) {
    return MetricValue(Get(sensor_port_, "/metrics"), series);
  }

  json LimitsStatus(json* all = nullptr) {
    json status = json::parse(Get(sensor_port_, "/debug/status"), nullptr, false);
    if (all) *all = status;
    if (status.is_discarded()) return json();
    for (const json& p : status["probes"]) {
      if (p.value("probe", "") == "limits") return p;
    }
    return json();
  }

  std::string ProbeState(const json& status, const std::string& probe) {
    for (const json& p : status["probes"]) {
      if (p.value("probe", "") == probe) return p.value("state", "");
    }
    return "";
  }

  struct Seen {
    uint64_t http = 0;         // requests nginx's side of httpflow counted
    uint64_t http_after = 0;   // of them, for /after.bin
    uint64_t established = 0;  // connections nginx's side of netflow counted
  };
  Seen Records() {
    Seen s;
    for (const std::string& line : CompleteLines(dir_.File("records.jsonl"))) {
      json r = json::parse(line, nullptr, false);
      if (r.is_discarded()) continue;
      const json& t = r["tags"];
      const json& f = r["fields"];
      if (t.value("process_name", "") != "nginx" || t.value("src_port", "") != port_) continue;
      if (r.value("source", "") == "httpflow" && t.value("direction", "") == "incoming") {
        s.http += f.value("count", 0);
        if (f.value("path", "") == "/after.bin") s.http_after += f.value("count", 0);
      }
      if (r.value("source", "") == "netflow") s.established += f.value("tcp_established", 0);
    }
    return s;
  }

  TempDir dir_;
  std::unique_ptr<Netns> ns_;
  std::unique_ptr<Nginx> nginx_;
  std::string port_;
  int grpc_port_ = 0, http_port_ = 0, sensor_port_ = 0;
  std::unique_ptr<Subprocess> aggregator_;
  std::unique_ptr<Subprocess> sensor_;
  std::thread load_;
  std::atomic<bool> stop_load_{true};
  std::atomic<int> runs_{0};
};

TEST_F(Limits, ShedsInOrderUnderLoadTellsWhyAndRecovers) {
  // Two kernel family sources (the per-process families, IRQs): two kernel_families steps.
  StartSensor(
      "enabled_plugins: [ebpf-net, ebpf-kernel]\n"
      "ebpf_programs: [process, hardirq]\n"
      "net_limit: 1MiB/s\n"
      "limit_window: 500ms\n"
      "limit_sampling: 4\n");
  const std::string& log_path = dir_.File("sensor.log");
  ASSERT_TRUE(WaitFor(
      [&] {
        return sensor_->Log().find(
                   "resource limits: network 1.0 MiB/s, measured every 500ms; "
                   "on_limit shed; steps to shed in order: sampling, l7_payload, "
                   "kernel_families, kernel_families") != std::string::npos;
      },
      30s))
      << sensor_->Log();
  json limits = LimitsStatus();
  EXPECT_EQ(limits.value("state", ""), "ok") << limits.dump();
  EXPECT_EQ(Metric("nodescope_sensor_limit_shed_level"), 0);
  EXPECT_EQ(Metric("nodescope_sensor_limit{resource=\"network\"}"), 1 << 20);

  // Before the load: HTTP is recorded.
  ASSERT_TRUE(Curl(ns_.get(), nginx_->Url("/after.bin")).ok());
  ASSERT_TRUE(WaitFor([&] { return Records().http_after >= 1; }, 15s)) << ReadFile(log_path);

  StartLoad();
  // Every step shed, in order, each with one line naming the resource, usage and limit.
  ASSERT_TRUE(WaitFor([&] { return Metric("nodescope_sensor_limit_shed_level") == 4; }, 60s))
      << sensor_->Log();
  // The kernel sources go costliest first: by run time with BPF statistics on, else the per-process
  // families first; either way one step each.
  const std::string log = sensor_->Log();
  const std::vector<std::string> shed_lines =
      StepLines(log, 0,
                {"shedding step 1/4: sampling (HTTP payload of 1 in 4 new connections)",
                 "shedding step 2/4: l7_payload (no HTTP payload copied)",
                 "shedding step 3/4: kernel_families (", "shedding step 4/4: kernel_families ("});
  ASSERT_EQ(shed_lines.size(), 4u) << log;
  for (const std::string& line : shed_lines) {
    EXPECT_NE(line.find("resource limit: network "), std::string::npos) << line;
    EXPECT_NE(line.find(" (lo) over the limit 1.0 MiB/s in 3 windows of 500ms: shedding"),
              std::string::npos)
        << line;
  }
  EXPECT_EQ(
      Families(shed_lines[2]) + " " + Families(shed_lines[3]),
      BpfStatsOn() ? Families(shed_lines[2]) + " " + Families(shed_lines[3]) : "process hardirq");
  EXPECT_NE(Families(shed_lines[2]), Families(shed_lines[3]));
  json status;
  limits = LimitsStatus(&status);
  EXPECT_EQ(limits.value("state", ""), "shedding") << limits.dump();
  EXPECT_NE(limits.value("coverage", "")
                .find("shed 4/4: sampling 1 in 4, l7_payload, kernel "
                      "process, kernel hardirq"),
            std::string::npos)
      << limits.dump();
  EXPECT_NE(limits.value("error", "").find("network"), std::string::npos) << limits.dump();
  EXPECT_EQ(ProbeState(status, "kernel/process"), "shed") << status.dump();
  EXPECT_EQ(ProbeState(status, "kernel/hardirq"), "shed") << status.dump();
  EXPECT_EQ(ProbeState(status, "netflow"), "attached");
  EXPECT_GE(Metric("nodescope_sensor_limit_exceeded_total{resource=\"network\"}"), 12);
  EXPECT_GT(Metric("nodescope_sensor_limit_usage{resource=\"network\"}"), 1 << 20);
  // Sampling left out connections before l7_payload left out every one.
  EXPECT_GT(
      Metric("nodescope_sensor_limit_skipped_total{what=\"l7_connections\",step=\"sampling\"}"), 0);
  EXPECT_GT(Metric("nodescope_sensor_limit_skipped_total{what=\"l7_calls\",step=\"sampling\"}"), 0);

  // With l7_payload shed, httpflow stops and netflow goes on. Intervals are 1 s: what was
  // captured before is flushed within 2 s.
  std::this_thread::sleep_for(2500ms);
  const Seen before = Records();
  const double skipped_before =
      Metric("nodescope_sensor_limit_skipped_total{what=\"l7_connections\",step=\"l7_payload\"}");
  const int runs_before = runs_;
  std::this_thread::sleep_for(4s);
  ASSERT_EQ(Metric("nodescope_sensor_limit_shed_level"), 4) << "restored under load";
  const Seen during = Records();
  const uint64_t requests = uint64_t(runs_ - runs_before) * kBatch;
  EXPECT_GT(requests, 0u);
  EXPECT_EQ(during.http, before.http) << "httpflow went on while l7_payload was shed";
  // Flushed once per 1 s interval, so the two counts cover windows shifted by up to one interval.
  EXPECT_GE(during.established - before.established, requests / 2) << "netflow stopped";
  EXPECT_GE(
      Metric("nodescope_sensor_limit_skipped_total{what=\"l7_connections\",step=\"l7_payload\"}") -
          skipped_before,
      double(requests))
      << "connections not copied are not all counted";

  std::printf(
      "under l7_payload for 4 s: %llu requests, httpflow +%llu, netflow established +%llu, "
      "connections left out +%.0f; usage %.1f MiB/s\n",
      static_cast<unsigned long long>(requests),
      static_cast<unsigned long long>(during.http - before.http),
      static_cast<unsigned long long>(during.established - before.established),
      Metric("nodescope_sensor_limit_skipped_total{what=\"l7_connections\",step=\"l7_payload\"}") -
          skipped_before,
      Metric("nodescope_sensor_limit_usage{resource=\"network\"}") / (1 << 20));

  // After the load: every step taken back, last first, each with its line.
  StopLoad();
  ASSERT_TRUE(WaitFor([&] { return Metric("nodescope_sensor_limit_shed_level") == 0; }, 60s))
      << sensor_->Log();
  const std::string after_log = sensor_->Log();
  const std::vector<std::string> restore_lines =
      StepLines(after_log, log.size(),
                {"restoring step 4/4: kernel_families (" + Families(shed_lines[3]) + ")",
                 "restoring step 3/4: kernel_families (" + Families(shed_lines[2]) + ")",
                 "restoring step 2/4: l7_payload", "restoring step 1/4: sampling"});
  ASSERT_EQ(restore_lines.size(), 4u) << after_log;
  for (const std::string& line : restore_lines) {
    EXPECT_NE(line.find("below 80% of the limit 1.0 MiB/s (and every other limit) in 6 windows "
                        "of 500ms: restoring"),
              std::string::npos)
        << line;
  }
  limits = LimitsStatus(&status);
  EXPECT_EQ(limits.value("state", ""), "ok") << limits.dump();
  EXPECT_EQ(ProbeState(status, "kernel/process"), "attached") << status.dump();
  EXPECT_EQ(ProbeState(status, "kernel/hardirq"), "attached") << status.dump();
  EXPECT_EQ(Metric("nodescope_sensor_limit_changes_total{direction=\"shed\"}"), 4);
  EXPECT_EQ(Metric("nodescope_sensor_limit_changes_total{direction=\"restore\"}"), 4);

  // HTTP is recorded again: every new request, exactly.
  const uint64_t after_before = Records().http_after;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Curl(ns_.get(), nginx_->Url("/after.bin")).ok());
  EXPECT_TRUE(WaitFor([&] { return Records().http_after >= after_before + 10; }, 15s))
      << Records().http_after - after_before;
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Records().http_after, after_before + 10);

  EXPECT_EQ(sensor_->Stop(SIGTERM, 20s), 0) << sensor_->Log();
}

// on_limit: exit, as the reference does: one line with the resource, usage and limit, a graceful
// stop, and exit code 3 (so that the DaemonSet restarts it).
void ExpectExit(Subprocess& sensor, const std::string& resource_line) {
  EXPECT_EQ(sensor.Wait(60s), 3) << sensor.Log();
  const std::string log = sensor.Log();
  EXPECT_NE(log.find(resource_line), std::string::npos) << log;
  EXPECT_NE(log.find("on_limit is exit: stopping"), std::string::npos) << log;
  EXPECT_NE(log.find("stopping for a resource limit (on_limit: exit): "), std::string::npos) << log;
  EXPECT_NE(log.find("exit code 3"), std::string::npos) << log;
}

TEST_F(Limits, ExitOnCpuLimitWithCode3) {
  StartSensor("cpu_limit: 1m\non_limit: exit\nlimit_window: 500ms\n");
  StartLoad();
  ExpectExit(*sensor_, "resource limit: cpu ");
  EXPECT_NE(sensor_->Log().find("over the limit 0.001 cores in 3 windows of 500ms"),
            std::string::npos)
      << sensor_->Log();
}

TEST_F(Limits, ExitOnMemLimitWithCode3) {
  StartSensor("mem_limit: 1MiB\non_limit: exit\nlimit_window: 200ms\n");
  ExpectExit(*sensor_, "resource limit: memory ");
  EXPECT_NE(sensor_->Log().find("over the limit 1.0 MiB in 3 windows of 200ms"), std::string::npos)
      << sensor_->Log();
}

}  // namespace
}  // namespace nodescope::test
