#include "tests/integration/node_stack.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace nodescope::test {

using namespace std::chrono_literals;

Status NodeStack::StartAggregator(const std::string& extra) {
  grpc_port = FreePort();
  http_port = FreePort();
  dir.Write("aggregator.yaml", "listen: 127.0.0.1:" + std::to_string(grpc_port) + "\n" +
                                   "http_listen: 127.0.0.1:" + std::to_string(http_port) + "\n" +
                                   "sinks: [\"jsonl:" + dir.File("records.jsonl") + "\"]\n" +
                                   extra);
  bool ready = false;
  aggregator = test::StartAggregator(dir.File("aggregator.yaml"), dir.File("aggregator.log"),
                                     http_port, &ready);
  if (!ready) return Status::Error("aggregator not ready:\n" + aggregator->Log());
  return Status::Ok();
}

Status NodeStack::StartSensor(const std::string& host, const std::string& extra) {
  sensor_http_port = FreePort();
  dir.Write("sensor.yaml", "trace_server: 127.0.0.1:" + std::to_string(grpc_port) + "\n" +
                               "pprof_port: " + std::to_string(sensor_http_port) + "\n" +
                               "hostname: " + host + "\n" +
                               (extra.find("enabled_plugins:") == std::string::npos
                                    ? "enabled_plugins: [ebpf-net]\n"
                                    : "") +
                               extra);
  sensor = std::make_unique<Subprocess>(
      std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config", dir.File("sensor.yaml")},
      dir.File("sensor.log"));
  if (!WaitFor([&] { return sensor->Log().find("probe netflow: attached") != std::string::npos; },
               60s)) {
    return Status::Error("netflow did not attach:\n" + sensor->Log());
  }
  return Status::Ok();
}

void NodeStack::Stop() {
  if (sensor) {
    EXPECT_EQ(sensor->Stop(SIGTERM, 20s), 0) << sensor->Log();
    sensor.reset();
  }
  if (aggregator) {
    aggregator->Stop(SIGTERM, 20s);
    aggregator.reset();
  }
}

std::vector<nlohmann::json> NodeStack::Records(const std::string& source) const {
  std::vector<nlohmann::json> out;
  for (const std::string& line : CompleteLines(dir.File("records.jsonl"))) {
    nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (!r.is_discarded() && r.value("source", "") == source) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace nodescope::test
