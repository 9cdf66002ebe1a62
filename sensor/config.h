// The sensor's options: the reference collector's names where it has them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace nodescope::sensor {

// Plugins of the reference collector (and ebpf-kernel). enabled_plugins accepts these names;
// the ones this build does not contain yet are reported in status and in one warning line.
inline const std::vector<std::string> kKnownPlugins = {
    "ebpf-net", "ebpf-bash", "ebpf-conntrack", "ebpf-trace", "bpf-netlog", "ebpf-kernel"};
// Plugins this build contains. The process probe is not listed: it always runs, because every
// plugin resolves pids through the process cache it keeps.
inline const std::vector<std::string> kBuiltPlugins = {};

struct SensorConfig {
  std::string hostname;  // "" = the node's hostname
  std::string trace_server = "127.0.0.1:9970";
  std::string pprof_host = "127.0.0.1";
  int64_t pprof_port = 6061;
  std::vector<std::string> enabled_plugins = {"ebpf-net"};
  std::map<std::string, std::string> tags;
  std::map<std::string, std::string> probe_strategies;
  int64_t batch_size = 512;
  config::Duration batch_interval = std::chrono::milliseconds(200);
  int64_t buffer_size = 262144;
  std::string log_level = "info";
};

config::Schema BuildSchema(SensorConfig* config);

}  // namespace nodescope::sensor
