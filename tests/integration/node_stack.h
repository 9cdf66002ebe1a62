// One node's nodescope as the feature tests run it: the aggregator writing every record to a
// jsonl sink, and the sensor streaming to it. Both are stopped (SIGTERM) by Stop() or the
// destructor, so a failing test leaves nothing running.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"

namespace nodescope::test {

struct NodeStack {
  ~NodeStack() { Stop(); }

  // The aggregator on free ports; `extra` is appended to its YAML config.
  Status StartAggregator(const std::string& extra = "");
  // The sensor with ebpf-net (unless `extra` names enabled_plugins), host tag `host`, and `extra`
  // YAML; waits until netflow attached.
  Status StartSensor(const std::string& host, const std::string& extra = "");
  // Stops the sensor and then the aggregator; the sensor's exit code 0 is checked.
  void Stop();

  // The records of `source` the sink has written so far.
  std::vector<nlohmann::json> Records(const std::string& source) const;

  TempDir dir;
  int grpc_port = 0, http_port = 0;
  int sensor_http_port = 0;  // the sensor's /metrics and /debug/status
  std::unique_ptr<Subprocess> aggregator;
  std::unique_ptr<Subprocess> sensor;
};

}  // namespace nodescope::test
