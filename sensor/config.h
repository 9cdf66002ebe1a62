// The sensor's options: the reference collector's names where it has them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace nodescope::sensor {

// Plugins of the reference collector (and ebpf-kernel). enabled_plugins accepts these names;
// the ones this build does not contain yet are reported in status and in one warning line.
inline const std::vector<std::string> kKnownPlugins = {"ebpf-net",   "ebpf-bash",  "ebpf-conntrack",
                                                       "ebpf-trace", "bpf-netlog", "ebpf-kernel"};
// Plugins this build contains. The process probe is not listed: it always runs, because every
// plugin resolves pids through the process cache it keeps.
inline const std::vector<std::string> kBuiltPlugins = {"ebpf-net", "ebpf-bash", "ebpf-conntrack",
                                                       "ebpf-kernel"};
// L7 parts of ebpf-net that l7net_enabled accepts (DataKit's names), and the ones built. dnsflow
// is always on with ebpf-net, as in DataKit.
inline const std::vector<std::string> kKnownL7 = {"httpflow", "httpflow-tls"};
inline const std::vector<std::string> kBuiltL7 = {"httpflow", "httpflow-tls"};

struct SensorConfig {
  std::string hostname;  // "" = the node's hostname
  std::string trace_server = "127.0.0.1:9970";
  std::string pprof_host = "127.0.0.1";
  int64_t pprof_port = 6061;
  std::vector<std::string> enabled_plugins = {"ebpf-net", "ebpf-kernel"};
  std::map<std::string, std::string> tags;
  std::map<std::string, std::string> probe_strategies;
  int64_t batch_size = 512;
  config::Duration batch_interval = std::chrono::milliseconds(200);
  int64_t buffer_size = 262144;
  std::string spool_dir;      // "" = no on-disk spool
  int64_t spool_size = 256;   // MiB
  std::string log_level = "info";

  // TLS to the aggregator: on when tls_ca is set; tls_cert/tls_key for mutual TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  config::Duration tls_reload_interval = std::chrono::minutes(1);

  // ebpf-net, L4 (netflow). Names of the reference collectors: DataKit's interval,
  // ipv6_disabled, ephemeral_port; Netdata's [network connections] ports, ips, hostnames and
  // [service name].
  config::Duration interval = std::chrono::seconds(60);
  bool ipv6_disabled = false;
  int64_t ephemeral_port = 0;  // 0: the start of /proc/sys/net/ipv4/ip_local_port_range
  std::string ports = "*";
  std::string ips = "*";
  std::string hostnames = "*";
  std::map<std::string, std::string> service_names;

  // ebpf-net, L7 (httpflow, dnsflow). l7net_enabled is DataKit's; the rest are ours.
  std::vector<std::string> l7net_enabled = {"httpflow"};
  int64_t l7_capture_bytes = 4096;
  int64_t l7_path_max = 256;
  config::Duration dns_timeout = std::chrono::seconds(5);

  // ebpf-kernel: Netdata's ebpf.d.conf options ("update every", "ebpf load mode", "pid table
  // size", "apps", "cgroups", the [ebpf programs] switches) and its apps_groups.conf.
  config::Duration update_every = std::chrono::seconds(1);
  std::vector<std::string> ebpf_programs = {"process", "fd",      "vfs",     "sync",   "mount",
                                            "socket",  "hardirq", "softirq", "oomkill"};
  std::string ebpf_load_mode = "entry";
  int64_t pid_table_size = 32768;
  bool apps = true;
  bool cgroups = true;
  std::map<std::string, std::string> apps_groups;

  // Resource limits: DataKit's cpu_limit ("2.0" cores), mem_limit ("4GiB") and net_limit
  // ("100MiB/s" on any interface), "" = none. DataKit exits beyond them; here on_limit "exit"
  // does that and "shed" (the default) sheds load in limit_shed_order first (sensor/limits/).
  std::string cpu_limit;
  std::string mem_limit;
  std::string net_limit;
  std::string on_limit = "shed";
  std::vector<std::string> limit_shed_order = {"sampling", "l7_payload", "kernel_families"};
  int64_t limit_sampling = 10;
  config::Duration limit_window = std::chrono::seconds(5);
};

config::Schema BuildSchema(SensorConfig* config);

}  // namespace nodescope::sensor
