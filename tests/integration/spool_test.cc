// Nothing lost across outages: the real sensor (with spool_dir) and aggregator, and the test's
// own execs of a marker binary as the events generated. After each outage, every exec the test
// ran is stored exactly once, or the sensor's and aggregator's drop counters account for the
// difference: generated = delivered + counted drops, with zero drops within the spool's bound.
//   - the aggregator is stopped and restarted;
//   - the network to the aggregator (in its own namespace) is cut with nftables, then healed;
//   - the sensor is stopped while the aggregator is down, and started again.
// Memory holds 100 events, so each outage of hundreds of execs goes through the spool.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/netns.h"

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    marker_ = dir_.File("ns-spool-marker");
    std::filesystem::copy_file("/bin/true", marker_);
    sensor_port_ = FreePort();
  }

  // The aggregator at `ip` (loopback or a namespace's address), with state_dir so batches
  // committed just before a stop are recognised when resent.
  void WriteAggregatorConfig(const std::string& ip, int grpc_port, int http_port,
                             bool spool = true) {
    agg_ip_ = ip;
    agg_http_ = http_port;
    dir_.Write("aggregator.yaml", "listen: " + ip + ":" + std::to_string(grpc_port) +
                                      "\nhttp_listen: " + ip + ":" + std::to_string(http_port) +
                                      "\nsinks: [\"jsonl:" + dir_.File("records.jsonl") +
                                      "\"]\nstate_dir: " + dir_.File("state") + "\n");
    dir_.Write("sensor.yaml", "trace_server: " + ip + ":" + std::to_string(grpc_port) +
                                  "\npprof_port: " + std::to_string(sensor_port_) +
                                  "\nhostname: spool-node\nenabled_plugins: []\n"
                                  "batch_size: 20\nbatch_interval: 50ms\nbuffer_size: 100\n" +
                                  (spool ? "spool_dir: " + dir_.File("spool") + "\nspool_size: 16\n"
                                         : std::string()));
  }

  std::unique_ptr<Subprocess> StartAggregator(const Netns* ns = nullptr) {
    std::vector<std::string> argv = {BinDir() + "/nodescope-aggregator", "--config",
                                     dir_.File("aggregator.yaml")};
    if (ns != nullptr) argv = ns->Exec(argv);
    auto p = std::make_unique<Subprocess>(argv, dir_.File("aggregator.log"));
    EXPECT_TRUE(WaitFor(
        [&] {
          int status = 0;
          HttpGet(agg_ip_, agg_http_, "/readyz", &status);
          return status == 200;
        },
        30s))
        << ReadFile(dir_.File("aggregator.log"));
    return p;
  }
  std::unique_ptr<Subprocess> StartSensor() {
    return std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config",
                                 dir_.File("sensor.yaml")},
        dir_.File("sensor.log"));
  }
  // A sensor streaming to the aggregator, which must be up.
  std::unique_ptr<Subprocess> StartConnectedSensor() {
    auto sensor = StartSensor();
    EXPECT_TRUE(WaitFor([&] { return SensorMetric("nodescope_sensor_connected") == 1.0; }, 60s))
        << sensor->Log();
    return sensor;
  }
  double SensorMetric(const std::string& series) {
    return MetricValue(HttpGet(sensor_port_, "/metrics"), series);
  }
  // Cuts what comes in over `veth` to `port` and goes out over it from `port` on `host`
  // (nftables), until Heal. The namespace's deletion removes the rules too.
  static Status Cut(const Netns& host, const std::string& veth, int port) {
    const std::string p = std::to_string(port);
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"add", "table", "inet", "nscut"},
             {"add", "chain", "inet", "nscut", "in", "{ type filter hook input priority 0; }"},
             {"add", "chain", "inet", "nscut", "out", "{ type filter hook output priority 0; }"},
             {"add", "rule", "inet", "nscut", "in", "iifname", veth, "tcp", "dport", p, "drop"},
             {"add", "rule", "inet", "nscut", "out", "oifname", veth, "tcp", "sport", p, "drop"}}) {
      args.insert(args.begin(), "nft");
      if (Status s = test::Run(host.Exec(args)); !s.ok()) return s;
    }
    return Status::Ok();
  }
  static Status Heal(const Netns& host) {
    return test::Run(host.Exec({"nft", "delete", "table", "inet", "nscut"}));
  }
  // Every drop the sensor counted, whatever the reason.
  double SensorDrops() {
    return MetricSum(HttpGet(sensor_port_, "/metrics"), "nodescope_sensor_dropped_total");
  }
  void Generate(int n) {
    for (int i = 0; i < n; ++i) pids_.insert(RunExecutable(marker_));
  }
  std::map<std::string, int> Delivered() { return ExecCounts(dir_.File("records.jsonl"), marker_); }
  // Waits until every generated exec is stored, then checks each is stored exactly once.
  void ExpectEveryExecOnce(Subprocess& sensor) {
    ASSERT_TRUE(WaitFor([&] { return Delivered().size() == pids_.size(); }, 90s))
        << "delivered " << Delivered().size() << " of " << pids_.size() << " (sensor drops "
        << SensorDrops() << ")\n"
        << sensor.Log() << "\n"
        << ReadFile(dir_.File("aggregator.log"));
    auto seen = Delivered();
    size_t twice = 0;
    for (pid_t pid : pids_) twice += seen[std::to_string(pid)] > 1 ? 1 : 0;
    EXPECT_EQ(twice, 0u) << "execs stored more than once";
  }

  TempDir dir_;
  std::string marker_;
  std::string agg_ip_;
  int agg_http_ = 0;
  int sensor_port_ = 0;
  std::set<pid_t> pids_;
};

TEST_F(SpoolTest, AggregatorRestartLosesNothing) {
  const int http_port = FreePort();
  WriteAggregatorConfig("127.0.0.1", FreePort(), http_port);
  auto aggregator = StartAggregator();
  auto sensor = StartConnectedSensor();
  ASSERT_FALSE(HasFailure());
  Generate(100);

  ASSERT_EQ(aggregator->Stop(SIGTERM, 20s), 0);
  Generate(600);
  ASSERT_TRUE(WaitFor([&] { return SensorMetric("nodescope_sensor_spooled_events") > 100; }, 20s))
      << "the outage did not reach the spool\n"
      << sensor->Log();
  EXPECT_GT(SensorMetric("nodescope_sensor_spool_batches_total{op=\"write\"}"), 0.0);
  EXPECT_LE(SensorMetric("nodescope_sensor_buffered_events"), 100.0);

  aggregator = StartAggregator();
  Generate(100);
  ExpectEveryExecOnce(*sensor);
  EXPECT_EQ(SensorDrops(), 0.0);
  ASSERT_TRUE(WaitFor([&] { return SensorMetric("nodescope_sensor_spool_bytes") == 0; }, 20s));
  EXPECT_EQ(SensorMetric("nodescope_sensor_spool_batches_total{op=\"read\"}"),
            SensorMetric("nodescope_sensor_spool_batches_total{op=\"write\"}"));
  EXPECT_EQ(sensor->Stop(SIGTERM, 20s), 0);
  // Everything was acknowledged: the spool directory is left empty.
  EXPECT_TRUE(std::filesystem::is_empty(dir_.File("spool")));
  aggregator->Stop(SIGTERM);
}

TEST_F(SpoolTest, NetworkCutLosesNothing) {
  auto pair = NetnsPair::Create(NetnsPair::Mode::kNamespaceAndRoot);
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  const Netns& host = (*pair)->ns(NetnsPair::Side::kA);
  constexpr int kGrpcPort = 9970;
  WriteAggregatorConfig((*pair)->a().ipv4, kGrpcPort, 9971);
  auto aggregator = StartAggregator(&host);
  auto sensor = StartConnectedSensor();
  ASSERT_FALSE(HasFailure());
  Generate(100);
  ASSERT_TRUE(WaitFor([&] { return Delivered().size() == pids_.size(); }, 30s));

  // Cut: the aggregator's host neither receives nor sends anything on the port over the veth.
  ASSERT_TRUE(Cut(host, (*pair)->a().veth, kGrpcPort).ok());
  const size_t before = Delivered().size();
  Generate(600);
  ASSERT_TRUE(WaitFor([&] { return SensorMetric("nodescope_sensor_spooled_events") > 100; }, 20s))
      << "the cut did not reach the spool\n"
      << sensor->Log();
  EXPECT_EQ(Delivered().size(), before) << "records crossed a cut network";
  ASSERT_TRUE(Heal(host).ok());

  Generate(100);
  ExpectEveryExecOnce(*sensor);
  EXPECT_EQ(SensorDrops(), 0.0);
  EXPECT_EQ(sensor->Stop(SIGTERM, 20s), 0);
  aggregator->Stop(SIGTERM);
}

TEST_F(SpoolTest, SensorRestartReplaysWhatItSpooledAtStop) {
  const int http_port = FreePort();
  WriteAggregatorConfig("127.0.0.1", FreePort(), http_port);
  auto aggregator = StartAggregator();
  auto sensor = StartConnectedSensor();
  ASSERT_FALSE(HasFailure());
  Generate(50);
  ASSERT_TRUE(WaitFor([&] { return Delivered().size() == pids_.size(); }, 30s));

  ASSERT_EQ(aggregator->Stop(SIGTERM, 20s), 0);
  Generate(400);
  ASSERT_TRUE(WaitFor(
      [&] {
        return SensorMetric("nodescope_sensor_buffered_events") +
                   SensorMetric("nodescope_sensor_spooled_events") >=
               400;
      },
      20s))
      << sensor->Log();
  EXPECT_EQ(SensorDrops(), 0.0);
  // Stopped while the aggregator is away: what it holds goes to disk, not to the drop counters.
  ASSERT_EQ(sensor->Stop(SIGTERM, 30s), 0);
  EXPECT_NE(sensor->Log().find("for the next start"), std::string::npos) << sensor->Log();
  EXPECT_EQ(sensor->Log().find("unacked_at_stop"), std::string::npos) << sensor->Log();

  sensor = StartSensor();
  ASSERT_TRUE(WaitFor(
      [&] { return SensorMetric("nodescope_sensor_spool_replay_pending_events") >= 400; }, 30s))
      << sensor->Log();
  aggregator = StartAggregator();
  Generate(50);
  ExpectEveryExecOnce(*sensor);
  EXPECT_EQ(SensorDrops(), 0.0);
  EXPECT_GT(SensorMetric("nodescope_sensor_spool_replayed_batches_total"), 0.0);
  EXPECT_EQ(SensorMetric("nodescope_sensor_spool_replay_pending_events"), 0.0);
  EXPECT_NE(sensor->Log().find("replayed"), std::string::npos) << sensor->Log();
  EXPECT_EQ(sensor->Stop(SIGTERM, 20s), 0);
  EXPECT_TRUE(std::filesystem::is_empty(dir_.File("spool")));
  aggregator->Stop(SIGTERM);
}

// Without a spool, an outage longer than buffer_size drops events. The sensor counts them and
// then tells the aggregator (LostEvent in a batch), whose follower gets them as lost_events:
// what the sensor dropped = what the subscriber was told = nodescope_sensor_lost_total, and
// every exec not delivered is among them.
TEST_F(SpoolTest, DropsWithoutASpoolAreToldToSubscribers) {
  auto pair = NetnsPair::Create(NetnsPair::Mode::kNamespaceAndRoot);
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  const Netns& host = (*pair)->ns(NetnsPair::Side::kA);
  constexpr int kGrpcPort = 9970;
  const std::string ip = (*pair)->a().ipv4;
  WriteAggregatorConfig(ip, kGrpcPort, 9971, /*spool=*/false);
  auto aggregator = StartAggregator(&host);
  auto sensor = StartConnectedSensor();
  ASSERT_FALSE(HasFailure());
  // The follower runs on the aggregator's host, over its loopback: the cut below spares it.
  Subprocess observer(host.Exec({BinDir() + "/nodescope", "observe", "--server",
                                 ip + ":" + std::to_string(kGrpcPort), "--follow", "--source",
                                 "process", "-o", "json"}),
                      dir_.File("observer.log"));
  auto aggregator_metric = [&](const std::string& series) {
    return MetricValue(HttpGet(ip, agg_http_, "/metrics"), series);
  };
  ASSERT_TRUE(WaitFor([&] { return aggregator_metric("nodescope_subscribers") == 1.0; }, 20s))
      << observer.Log();

  // Cut the sensor's stream only: the follower's stream to the same port is on loopback.
  ASSERT_TRUE(Cut(host, (*pair)->a().veth, kGrpcPort).ok());
  Generate(600);
  const std::string buffer_full = "nodescope_sensor_dropped_total{reason=\"buffer_full\"}";
  ASSERT_TRUE(WaitFor([&] { return SensorMetric(buffer_full) > 0; }, 20s)) << sensor->Log();
  ASSERT_TRUE(Heal(host).ok());

  // What the follower printed on stderr: "lost N events on spool-node (buffer_full)".
  auto told = [&] {
    double sum = 0;
    std::istringstream in(observer.Log());
    for (std::string line; std::getline(in, line);) {
      long n = 0;
      char rest[64] = {};
      if (std::sscanf(line.c_str(), "lost %ld events on spool-node (%63[^)])", &n, rest) == 2 &&
          std::string(rest) == "buffer_full") {
        sum += static_cast<double>(n);
      }
    }
    return sum;
  };
  // Drops go on until the buffer has room again (the nft above and other execs of the machine
  // are events too): the three counts must meet once the sensor has caught up.
  const std::string lost_series =
      "nodescope_sensor_lost_total{host=\"spool-node\",probe=\"\",reason=\"buffer_full\"}";
  double dropped = -1;
  auto agree = [&] {
    dropped = SensorMetric(buffer_full);
    return told() == dropped && aggregator_metric(lost_series) == dropped;
  };
  EXPECT_TRUE(WaitFor(agree, 30s))
      << "sensor dropped " << SensorMetric(buffer_full) << ", subscriber told " << told()
      << ", aggregator counted " << aggregator_metric(lost_series) << "\n"
      << observer.Log();
  std::this_thread::sleep_for(1500ms);  // settled: nothing more is dropped or told
  EXPECT_TRUE(agree()) << told() << " " << dropped;
  // Every exec is delivered or among the events counted lost (an exec's or an exit's).
  const size_t delivered = Delivered().size();
  EXPECT_LT(delivered, pids_.size());
  EXPECT_GE(static_cast<double>(delivered) + dropped, static_cast<double>(pids_.size()));
  observer.Stop(SIGTERM);
  EXPECT_EQ(sensor->Stop(SIGTERM, 20s), 0);
  aggregator->Stop(SIGTERM);
}

}  // namespace
}  // namespace nodescope::test
