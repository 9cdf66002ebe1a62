// The spine end to end: the real aggregator and sensor as processes on loopback, real processes
// observed by the real eBPF probe, read back through the CLI and Prometheus /metrics.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kHost[] = "it-node";

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc_port_ = FreePort();
    http_port_ = FreePort();
    sensor_port_ = FreePort();
    dir_.Write("aggregator.yaml",
               "listen: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                   "http_listen: 127.0.0.1:" + std::to_string(http_port_) + "\n" +
                   "sinks: [\"jsonl:" + dir_.File("records.jsonl") + "\"]\n" +
                   "state_dir: " + dir_.File("state") + "\n");
    dir_.Write("sensor.yaml", "trace_server: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                                  "pprof_port: " + std::to_string(sensor_port_) + "\n" +
                                  "hostname: " + kHost + "\n" +
                                  "enabled_plugins: []\n" + "tags: {cluster: it}\n");
    StartAggregator();
    sensor_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config",
                                 dir_.File("sensor.yaml")},
        dir_.File("sensor.log"));
    ASSERT_TRUE(WaitFor([&] { return SensorAttached(); }, 60s))
        << "sensor never reported an attached probe\nsensor log:\n"
        << sensor_->Log() << "\naggregator log:\n"
        << aggregator_->Log();
  }

  void TearDown() override {
    if (sensor_) EXPECT_EQ(sensor_->Stop(SIGTERM, 20s), 0) << sensor_->Log();
    if (aggregator_) aggregator_->Stop(SIGTERM, 20s);
  }

  void StartAggregator() {
    bool ready = false;
    aggregator_ = nodescope::test::StartAggregator(dir_.File("aggregator.yaml"),
                                                   dir_.File("aggregator.log"), http_port_, &ready);
    ASSERT_TRUE(ready) << aggregator_->Log();
  }

  std::string Server() const { return "127.0.0.1:" + std::to_string(grpc_port_); }

  bool SensorAttached() {
    auto r = RunCommand({BinDir() + "/nodescope", "status", "--server", Server(), "-o", "json"}, 10s);
    if (r.exit_code != 0) return false;
    auto status = json::parse(r.out, nullptr, false);
    if (status.is_discarded()) return false;
    for (const auto& sensor : status.value("sensors", json::array())) {
      if (sensor.value("node", "") != kHost || !sensor.value("connected", false)) continue;
      for (const auto& probe : sensor["status"].value("probes", json::array())) {
        if (probe.value("probe", "") == "process" && probe.value("state", "") == "attached") {
          return true;
        }
      }
    }
    return false;
  }

  // Every process record the aggregator holds, via the CLI.
  std::vector<json> Observe() {
    auto r = RunCommand({BinDir() + "/nodescope", "observe", "--server", Server(), "--source",
                  "process", "--last", "1000000", "-o", "json"},
                 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> records;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      records.push_back(json::parse(line));
    }
    return records;
  }

  TempDir dir_;
  int grpc_port_ = 0, http_port_ = 0, sensor_port_ = 0;
  std::unique_ptr<Subprocess> aggregator_;
  std::unique_ptr<Subprocess> sensor_;
};

// Forks a child that execs `path` with `args` and returns its pid after it exited with `code`.
pid_t RunChild(const std::vector<std::string>& argv, int* exit_code) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return pid;
}

const json* Find(const std::vector<json>& records, const std::string& event, pid_t pid) {
  for (const auto& r : records) {
    if (r["fields"].value("event", "") == event && r["tags"].value("pid", "") ==
                                                       std::to_string(pid)) {
      return &r;
    }
  }
  return nullptr;
}

TEST_F(Pipeline, ProcessRecordsReachSubscribersAndPrometheus) {
  int code = -1;
  pid_t true_pid = RunChild({"/bin/true"}, &code);
  ASSERT_EQ(code, 0);
  // A short-lived tree: sh forks a subshell that exits 7; sh then exits with that code.
  TempDir tree;
  std::string pids_file = tree.File("pids");
  pid_t sh_pid = RunChild({"/bin/sh", "-c", "(echo $(exec sh -c 'echo $PPID'); exit 7) > " +
                                                pids_file + "; exit $?"},
                          &code);
  ASSERT_EQ(code, 7);
  ASSERT_TRUE(WaitFor([&] { return Find(Observe(), "exit", sh_pid) != nullptr; }, 20s));

  auto records = Observe();
  const json* exec = Find(records, "exec", true_pid);
  const json* fork = Find(records, "fork", true_pid);
  const json* exit = Find(records, "exit", true_pid);
  ASSERT_TRUE(exec && fork && exit) << "records for /bin/true pid " << true_pid << " missing";
  EXPECT_EQ((*fork)["tags"]["ppid"], std::to_string(getpid()));
  EXPECT_EQ((*exec)["tags"]["process_name"], "true");
  EXPECT_EQ((*exec)["fields"]["filename"], "/bin/true");
  EXPECT_EQ((*exec)["tags"]["user"], "root");
  EXPECT_EQ((*exec)["tags"]["host"], kHost);
  EXPECT_EQ((*exec)["host"], kHost);
  EXPECT_EQ((*exec)["tags"]["cluster"], "it");
  EXPECT_EQ((*exit)["fields"]["exit_code"], 0);
  EXPECT_GT((*exit)["fields"]["duration"].get<int64_t>(), 0);
  EXPECT_LE((*fork)["time"].get<int64_t>(), (*exec)["time"].get<int64_t>());
  EXPECT_LE((*exec)["time"].get<int64_t>(), (*exit)["time"].get<int64_t>());

  // The sh tree: sh forked a subshell (exit 7) which forked the inner sh.
  const json* sh_exit = Find(records, "exit", sh_pid);
  ASSERT_NE(sh_exit, nullptr);
  EXPECT_EQ((*sh_exit)["fields"]["exit_code"], 7);
  int subshell = 0;
  for (const auto& r : records) {
    if (r["fields"].value("event", "") == "fork" &&
        r["tags"].value("ppid", "") == std::to_string(sh_pid)) {
      subshell = std::stoi(r["tags"]["pid"].get<std::string>());
    }
  }
  ASSERT_NE(subshell, 0) << "no fork record with ppid " << sh_pid;
  const json* subshell_exit = Find(records, "exit", subshell);
  ASSERT_NE(subshell_exit, nullptr);
  EXPECT_EQ((*subshell_exit)["fields"]["exit_code"], 7);
  // The innermost sh printed its parent's pid, the subshell: the tree as the kernel saw it.
  EXPECT_EQ(std::stoi(ReadFile(pids_file)), subshell);

  std::string metrics = HttpGet(http_port_, "/metrics");
  for (const char* event : {"exec", "fork", "exit"}) {
    std::string series = std::string("nodescope_process_events_total{event=\"") + event +
                         "\",host=\"" + kHost + "\"}";
    // At least /bin/true's and the sh tree's own events.
    EXPECT_GE(MetricValue(metrics, series), 2.0) << series << " in\n" << metrics;
  }
  EXPECT_NE(metrics.find("nodescope_probe_info{host=\"it-node\",probe=\"process\""),
            std::string::npos);
  std::string sensor_metrics = HttpGet(sensor_port_, "/metrics");
  EXPECT_NE(sensor_metrics.find("nodescope_probe_info{probe=\"process\",strategy="),
            std::string::npos)
      << sensor_metrics;
}

// Linux file names are bytes, not UTF-8: such a name must reach subscribers (made valid UTF-8)
// and must not stall the stream for the records after it.
TEST_F(Pipeline, NonUtf8FileNameDoesNotStallTheStream) {
  const std::string bad = dir_.File("ns-\xff\xfe-bad");
  std::filesystem::copy_file("/bin/true", bad);
  int code = -1;
  pid_t bad_pid = RunChild({bad}, &code);
  ASSERT_EQ(code, 0);
  pid_t after_pid = RunChild({"/bin/true"}, &code);
  ASSERT_TRUE(WaitFor([&] { return Find(Observe(), "exit", after_pid) != nullptr; }, 20s))
      << "records after the bad name never arrived\n" << sensor_->Log() << aggregator_->Log();
  auto records = Observe();
  const json* exec = Find(records, "exec", bad_pid);
  ASSERT_NE(exec, nullptr);
  // Each invalid byte became U+FFFD; the valid rest is unchanged.
  EXPECT_EQ((*exec)["fields"]["filename"], dir_.File("ns-\xEF\xBF\xBD\xEF\xBF\xBD-bad"));
}

// Debian's Prometheus server scrapes both daemons; the process counters are queryable through
// its API with the values /metrics shows, so the exposition is what a real scraper accepts.
TEST_F(Pipeline, PrometheusServerScrapesAggregatorAndSensor) {
  int code = -1;
  RunChild({"/bin/true"}, &code);
  const int prom_port = FreePort();
  dir_.Write("prometheus.yml",
             "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
             "scrape_configs:\n"
             "  - job_name: aggregator\n"
             "    static_configs: [{targets: ['127.0.0.1:" + std::to_string(http_port_) + "']}]\n"
             "  - job_name: sensor\n"
             "    static_configs: [{targets: ['127.0.0.1:" + std::to_string(sensor_port_) + "']}]\n");
  Subprocess prometheus({"/usr/bin/prometheus", "--config.file=" + dir_.File("prometheus.yml"),
                         "--storage.tsdb.path=" + dir_.File("tsdb"),
                         "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                        dir_.File("prometheus.log"));
  auto query = [&](const std::string& promql) {
    std::string encoded;
    for (unsigned char c : promql) {
      if (std::isalnum(c) || c == '_') {
        encoded += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof(hex), "%%%02X", c);
        encoded += hex;
      }
    }
    auto body = json::parse(HttpGet(prom_port, "/api/v1/query?query=" + encoded), nullptr, false);
    if (body.is_discarded() || body.value("status", "") != "success") return -1.0;
    auto result = body["data"]["result"];
    if (result.empty()) return -1.0;
    return std::stod(result[0]["value"][1].get<std::string>());
  };
  const std::string exec_series =
      std::string("nodescope_process_events_total{event=\"exec\",host=\"") + kHost + "\"}";
  ASSERT_TRUE(WaitFor([&] { return query("up{job=\"aggregator\"}") == 1.0 &&
                                   query("up{job=\"sensor\"}") == 1.0 &&
                                   query(exec_series) >= 1.0; },
                      60s))
      << "prometheus never scraped both targets\n" << prometheus.Log();
  // What Prometheus stored is what the aggregator exposes (no exec may happen in between but
  // ours, so compare against a fresh read bracketing the query).
  double before = MetricValue(HttpGet(http_port_, "/metrics"), exec_series);
  ASSERT_TRUE(WaitFor([&] { return query(exec_series) >= before; }, 10s));
  EXPECT_EQ(query("nodescope_probe_info{job=\"sensor\",probe=\"process\"}"), 1.0);
  EXPECT_EQ(query("nodescope_sensors_connected"), 1.0);
  prometheus.Stop(SIGTERM);
}

// Aggregator killed mid-stream and restarted: every record arrives exactly once in the log sink.
TEST_F(Pipeline, AggregatorRestartLosesAndDuplicatesNothing) {
  // A private copy of /bin/true: its exec records are ours alone.
  std::string marker = dir_.File("ns-marker");
  std::filesystem::copy_file("/bin/true", marker);
  constexpr int kChildren = 600;
  std::set<pid_t> pids;
  for (int i = 0; i < kChildren; ++i) {
    // Frozen first, so the sensor keeps writing batches that are never acknowledged; then
    // killed: those batches exist only in the sensor's buffer and must be sent again.
    if (i == kChildren / 3 - 50) kill(aggregator_->pid(), SIGSTOP);
    if (i == kChildren / 3) {
      std::this_thread::sleep_for(1s);  // several batch intervals: batches go out, unanswered
      ASSERT_EQ(aggregator_->Stop(SIGKILL, 10s), 128 + SIGKILL);
    }
    if (i == 2 * kChildren / 3) StartAggregator();
    int code = -1;
    pids.insert(RunChild({marker}, &code));
    ASSERT_EQ(code, 0);
    if (i % 50 == 0) std::this_thread::sleep_for(20ms);
  }
  auto exec_lines = [&] { return ExecCounts(dir_.File("records.jsonl"), marker); };

  ASSERT_TRUE(WaitFor([&] { return exec_lines().size() == pids.size(); }, 60s))
      << "arrived " << exec_lines().size() << " of " << pids.size();
  auto seen = exec_lines();
  for (pid_t pid : pids) EXPECT_EQ(seen[std::to_string(pid)], 1) << "pid " << pid;
  // The load fits the sensor's buffer: nothing may have been dropped on the way.
  std::string sensor_metrics = HttpGet(sensor_port_, "/metrics");
  EXPECT_GT(MetricValue(sensor_metrics, "nodescope_sensor_batches_resent_total"), 0.0)
      << "the kill did not catch unacknowledged batches; the test proved nothing\n"
      << sensor_metrics;
  EXPECT_GE(MetricValue(sensor_metrics, "nodescope_sensor_reconnects_total"), 1.0);
  EXPECT_EQ(MetricValue(sensor_metrics, "nodescope_sensor_dropped_total{reason=\"buffer_full\"}"),
            0.0)
      << sensor_metrics;
}

}  // namespace
}  // namespace nodescope::test
