// Helpers shared by the transport's tests: events with known pids, options for a local fake
// aggregator, and the batches a Recorder saw, deduplicated.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "sensor/transport/fake_sensor_service.h"
#include "sensor/transport/transport.h"

namespace nodescope::sensor {

using fake::Recorder;

inline v1::Event MakeEvent(uint32_t pid, uint32_t thread = 0) {
  v1::Event event;
  event.set_time_unix_nano(1763776000000000000 + pid);
  v1::ProcessEvent* process = event.mutable_process();
  process->set_kind(v1::ProcessEvent::EXEC);
  process->set_pid(pid);
  process->set_uid(thread);
  process->set_process_name("worker");
  process->set_filename("/usr/bin/worker-binary");
  return event;
}

inline v1::SensorStatus TestStatus() {
  v1::SensorStatus status;
  status.set_version("test-1");
  v1::ProbeStatus* probe = status.add_probes();
  probe->set_probe("process");
  probe->set_strategy("tracepoint");
  probe->set_state("attached");
  return status;
}

inline TransportOptions Options(int port) {
  TransportOptions options;
  options.trace_server = "127.0.0.1:" + std::to_string(port);
  options.node = "node-a";
  options.extra_tags = {{"cluster", "test"}, {"zone", "z1"}};
  options.batch_size = 100;
  // Only size and Flush() close batches here, so batch boundaries do not depend on scheduling;
  // BatchIntervalClosesASmallBatch covers the interval.
  options.batch_interval = std::chrono::seconds(60);
  options.buffer_size = 100000;
  options.backoff_initial = std::chrono::milliseconds(10);
  options.backoff_max = std::chrono::milliseconds(200);
  return options;
}

inline std::unique_ptr<Transport> MakeTransport(const TransportOptions& options) {
  auto transport = Transport::Create(options, TestStatus);
  EXPECT_TRUE(transport.ok()) << transport.status().message();
  return std::move(transport).value();
}

// The batches in seq order, each seq once; fails the test when two copies of a seq differ.
inline std::map<uint64_t, v1::Batch> Deduplicated(const std::vector<Recorder::Entry>& entries,
                                                  std::map<uint64_t, int>* copies) {
  std::map<uint64_t, v1::Batch> batches;
  for (const Recorder::Entry& entry : entries) {
    if (!entry.message.has_batch()) continue;
    const v1::Batch& batch = entry.message.batch();
    ++(*copies)[batch.seq()];
    auto [it, inserted] = batches.emplace(batch.seq(), batch);
    if (!inserted) {
      EXPECT_EQ(it->second.SerializeAsString(), batch.SerializeAsString())
          << "seq " << batch.seq() << " arrived twice with different content";
    }
  }
  return batches;
}

inline std::vector<uint32_t> Pids(const std::map<uint64_t, v1::Batch>& batches) {
  std::vector<uint32_t> pids;
  for (const auto& [seq, batch] : batches) {
    for (const v1::Event& event : batch.events()) pids.push_back(event.process().pid());
  }
  return pids;
}

inline std::vector<uint32_t> Range(uint32_t begin, uint32_t end) {
  std::vector<uint32_t> out;
  for (uint32_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

}  // namespace nodescope::sensor
