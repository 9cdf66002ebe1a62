// The aggregator on a second test host (its own network namespace, 198.18.0.2 behind a veth):
// everything it sends is dropped, so it commits batches whose acks never reach the sensor; then
// it is killed and restarted. The sensor resends what it never saw acknowledged, and the new
// aggregator must recognise the batches its predecessor committed (state_dir) and drop them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kAggregatorIp[] = "198.18.0.2";
constexpr int kGrpcPort = 9970;
constexpr int kHttpPort = 9971;

void Must(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error(cmd + "failed: " + r.err);
  }
}

// A network namespace joined to the host by a veth pair: host 198.18.0.1/30, inside .2/30.
// Deleting the namespace on destruction deletes the veth pair and its nftables rules with it.
class TestHost {
 public:
  TestHost() : name_("nsagg" + std::to_string(getpid())) {
    const std::string outside = "nsa" + std::to_string(getpid()) + "h";
    inside_ = "nsa" + std::to_string(getpid()) + "n";
    RunCommand({"/usr/sbin/ip", "netns", "del", name_});  // left over from a crashed run
    Must({"/usr/sbin/ip", "netns", "add", name_});
    Must({"/usr/sbin/ip", "link", "add", outside, "type", "veth", "peer", "name", inside_});
    Must({"/usr/sbin/ip", "link", "set", inside_, "netns", name_});
    Must({"/usr/sbin/ip", "addr", "add", "198.18.0.1/30", "dev", outside});
    Must({"/usr/sbin/ip", "link", "set", outside, "up"});
    Must({"/usr/sbin/ip", "-n", name_, "addr", "add", std::string(kAggregatorIp) + "/30", "dev",
          inside_});
    Must({"/usr/sbin/ip", "-n", name_, "link", "set", inside_, "up"});
    Must({"/usr/sbin/ip", "-n", name_, "link", "set", "lo", "up"});
  }
  ~TestHost() { RunCommand({"/usr/sbin/ip", "netns", "del", name_}); }

  std::vector<std::string> Exec(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", name_});
    return argv;
  }
  // Drops every packet the namespace sends (replies and acks included), or stops doing so.
  // nftables rather than netem: this kernel has no sch_netem, nf_tables is built in.
  void DropOutgoing(bool drop) const {
    if (drop) {
      Must(Exec({"/usr/sbin/nft", "add", "table", "inet", "nodescope_test"}));
      Must(Exec({"/usr/sbin/nft", "add", "chain", "inet", "nodescope_test", "out",
                 "{ type filter hook output priority 0; policy drop; }"}));
    } else {
      Must(Exec({"/usr/sbin/nft", "delete", "table", "inet", "nodescope_test"}));
    }
  }

 private:
  std::string name_;
  std::string inside_;
};

TEST(LostAcks, BatchesCommittedButNeverAcknowledgedAreNotDuplicated) {
  TempDir dir;
  TestHost host;
  const int sensor_port = FreePort();
  dir.Write("aggregator.yaml", "listen: " + std::string(kAggregatorIp) + ":" +
                                   std::to_string(kGrpcPort) + "\nhttp_listen: " + kAggregatorIp +
                                   ":" + std::to_string(kHttpPort) + "\nsinks: [\"jsonl:" +
                                   dir.File("records.jsonl") + "\"]\nstate_dir: " +
                                   dir.File("state") + "\n");
  dir.Write("sensor.yaml", "trace_server: " + std::string(kAggregatorIp) + ":" +
                               std::to_string(kGrpcPort) + "\npprof_port: " +
                               std::to_string(sensor_port) +
                               "\nhostname: lost-acks\nenabled_plugins: []\n");
  auto start_aggregator = [&] {
    auto p = std::make_unique<Subprocess>(
        host.Exec({BinDir() + "/nodescope-aggregator", "--config", dir.File("aggregator.yaml")}),
        dir.File("aggregator.log"));
    EXPECT_TRUE(WaitFor(
        [&] {
          int status = 0;
          HttpGet(kAggregatorIp, kHttpPort, "/readyz", &status);
          return status == 200;
        },
        30s))
        << ReadFile(dir.File("aggregator.log"));
    return p;
  };
  auto aggregator = start_aggregator();
  Subprocess sensor({BinDir() + "/nodescope-sensor", "--config", dir.File("sensor.yaml")},
                    dir.File("sensor.log"));
  auto sensor_metric = [&](const std::string& series) {
    return MetricValue(HttpGet(sensor_port, "/metrics"), series);
  };
  ASSERT_TRUE(WaitFor([&] { return sensor_metric("nodescope_sensor_connected") == 1.0; }, 60s))
      << sensor.Log();

  const std::string marker = dir.File("ns-marker");
  std::filesystem::copy_file("/bin/true", marker);
  auto committed = [&] { return ExecCounts(dir.File("records.jsonl"), marker); };


  std::set<pid_t> pids;
  for (int i = 0; i < 50; ++i) pids.insert(RunExecutable(marker));
  ASSERT_TRUE(WaitFor([&] { return committed().size() == pids.size(); }, 20s));
  ASSERT_TRUE(WaitFor([&] { return sensor_metric("nodescope_sensor_buffered_events") == 0; }, 20s));

  // From here the aggregator still receives and commits, but nothing it sends arrives.
  host.DropOutgoing(true);
  for (int i = 0; i < 50; ++i) pids.insert(RunExecutable(marker));
  ASSERT_TRUE(WaitFor([&] { return committed().size() > 50; }, 20s))
      << "no batch reached the aggregator once its replies were dropped";
  std::this_thread::sleep_for(1s);
  ASSERT_GT(sensor_metric("nodescope_sensor_buffered_events"), 0.0);

  ASSERT_EQ(aggregator->Stop(SIGKILL), 128 + SIGKILL);
  // The killed process's socket lives on in the kernel and would deliver the unsent acks as
  // soon as packets flow again; destroy it while they still cannot.
  Must(host.Exec({"/usr/bin/ss", "-K", "-t", "sport", "=", ":" + std::to_string(kGrpcPort)}));
  host.DropOutgoing(false);
  aggregator = start_aggregator();
  for (int i = 0; i < 20; ++i) pids.insert(RunExecutable(marker));

  ASSERT_TRUE(WaitFor([&] { return committed().size() == pids.size(); }, 60s))
      << "arrived " << committed().size() << " of " << pids.size() << "\n"
      << sensor.Log();
  auto seen = committed();
  for (pid_t pid : pids) EXPECT_EQ(seen[std::to_string(pid)], 1) << "pid " << pid;
  // The resent batches the first aggregator had committed were recognised, not stored again.
  std::string metrics = HttpGet(kAggregatorIp, kHttpPort, "/metrics");
  EXPECT_GT(MetricValue(metrics, "nodescope_records_deduplicated_total{source=\"process\"}"), 0.0)
      << metrics;
  EXPECT_EQ(sensor_metric("nodescope_sensor_dropped_total{reason=\"buffer_full\"}"), 0.0);
  EXPECT_EQ(sensor.Stop(SIGTERM, 20s), 0);
  aggregator->Stop(SIGTERM);
}

}  // namespace
}  // namespace nodescope::test
